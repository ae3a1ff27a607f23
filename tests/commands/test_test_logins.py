"""``test_logins``: each mailbox's source and target login tried on real Dovecot servers, one
line per mailbox, the result recorded for the project page, exit 1 when any was refused."""

import pytest

from mailboxes.models import Mailbox

from .conftest import account, create_project, imap_url, import_csv, run

pytestmark = pytest.mark.django_db(transaction=True)


def test_each_mailbox_logs_in_with_its_own_account_and_a_refused_one_is_named(
    tmp_path, dovecot_a, dovecot_b
):
    project_id = create_project(imap_url(dovecot_a), imap_url(dovecot_b))
    users = [(account(dovecot_a), account(dovecot_b)) for _ in range(3)]
    rows = [(s[0], t[0], "", s[1], s[2], t[1], t[2]) for s, t in users]
    rows[2] = (*rows[2][:6], "not-the-password")
    assert import_csv(tmp_path, project_id, rows).code == 0

    tested = run("test_logins", project_id)

    assert tested.code == 1
    assert tested.message == "1 of 3 mailbox(es) could not log in."
    lines = {line.split(" ")[0]: line for line in tested.out.splitlines()}
    for address, *_ in rows[:2]:
        assert lines[address].startswith(f"{address} ok source: Connected")
    refused = lines[rows[2][0]]
    assert refused.startswith(f"{rows[2][0]} failed source: Connected")
    assert f"target: IMAP login refused for {rows[2][5]}" in refused
    assert "AUTHENTICATIONFAILED" in refused and "not-the-password" not in tested.out
    recorded = dict(Mailbox.objects.values_list("source_address", "login_check_ok"))
    assert recorded == {rows[0][0]: True, rows[1][0]: True, rows[2][0]: False}

    only = run("test_logins", project_id, "--mailbox", rows[0][0])
    assert only.code == 0 and only.out.count("\n") == 1
