"""``create_project``, ``import_mailboxes`` and ``run_pass --wait``: a migration of several
users from a shell, no browser, on two real Dovecot servers; what each target holds is read
back with imaplib and compared byte for byte with its own source."""

import uuid

import pytest

from mailboxes.models import CopiedItem, Mailbox, MailboxPass
from projects.models import Project
from tests.servers.worker import wait_until

from .conftest import (
    account,
    all_bytes,
    create_project,
    held_messages,
    imap_url,
    import_csv,
    run,
    unique_messages,
)

# The progress line reads the passes from its own thread, hence its own connection.
pytestmark = pytest.mark.django_db(transaction=True)


def test_three_users_and_one_through_the_master_user_each_get_exactly_their_own_mail(
    tmp_path, dovecot_a, dovecot_b
):
    # The source tenant's account is the master user; three mailboxes have their own logins
    # (each a different password), the fourth has none and so the master user acts for it.
    master = f"{dovecot_a.master_user}:{dovecot_a.master_password}@"
    project_id = create_project(
        imap_url(dovecot_a, master, f"?master={dovecot_a.master_user}"), imap_url(dovecot_b)
    )
    users = [(account(dovecot_a), account(dovecot_b)) for _ in range(3)]
    users.append((account(dovecot_a, f"m{uuid.uuid4().hex[:10]}@old.example"), account(dovecot_b)))
    for i, ((_, login, password), _) in enumerate(users):
        dovecot_a.load(login, password, "INBOX", unique_messages(f"user{i}", 4 + i))
        dovecot_a.load(login, password, "Archive/2019", unique_messages(f"user{i}-old", 2 + i))
    rows = [
        (s_address, t_address, f"User {i}", s_login, s_password, t_login, t_password)
        for i, ((s_address, s_login, s_password), (t_address, t_login, t_password)) in enumerate(
            users
        )
    ]
    rows[3] = (*rows[3][:3], "", "", *rows[3][5:])
    imported = import_csv(tmp_path, project_id, rows)
    assert imported.code == 0, imported.message
    assert imported.out == "".join(f"{row[0]} created\n" for row in rows)

    done = run("run_pass", project_id, "--kind", "full", "--wait", "--inline")

    assert done.code == 0, done.out + done.message
    counts = [6, 8, 10, 12]
    assert done.out == "".join(
        f"{address} state=done copied={count} failed=0\n"
        for address, count in sorted(zip([row[0] for row in rows], counts, strict=True))
    )
    assert "100%" in done.err and "4 of 4 mailboxes finished" in done.err
    for (_, s_login, s_password), (_, t_login, t_password) in users:
        source = held_messages(dovecot_a, s_login, s_password)
        target = held_messages(dovecot_b, t_login, t_password)
        assert target["INBOX"] == source["INBOX"]
        assert all_bytes(target) == all_bytes(source)
    mailbox = Mailbox.objects.get(source_address=rows[3][0])
    assert mailbox.login_label("source") == f"admin acting for {rows[3][0]}"
    for password in [row[4] for row in rows[:3]] + [dovecot_a.master_password]:
        assert password not in done.out + done.err


def test_a_wrong_password_fails_that_mailbox_with_the_servers_reason_and_the_others_finish(
    tmp_path, dovecot_a, dovecot_b
):
    project_id = create_project(imap_url(dovecot_a), imap_url(dovecot_b))
    users = [(account(dovecot_a), account(dovecot_b)) for _ in range(3)]
    for i, ((_, login, password), _) in enumerate(users):
        dovecot_a.load(login, password, "INBOX", unique_messages(f"user{i}", 3))
    rows = [(s[0], t[0], "", s[1], s[2], t[1], t[2]) for s, t in users]
    rows[1] = (*rows[1][:4], "not-the-password", *rows[1][5:])
    assert import_csv(tmp_path, project_id, rows).code == 0

    done = run("run_pass", project_id, "--kind", "full", "--wait", "--inline")

    assert done.code == 1
    assert done.message == "1 of 3 mailbox(es) did not finish cleanly."
    lines = dict(line.split(" ", 1) for line in done.out.splitlines() if not line.startswith(" "))
    assert lines == {
        rows[0][0]: "state=done copied=3 failed=0",
        rows[1][0]: "state=failed copied=0 failed=0",
        rows[2][0]: "state=done copied=3 failed=0",
    }
    reason = (
        f"  mailbox: The source server refused the credentials: IMAP login refused for "
        f"{rows[1][3]} on 127.0.0.1:{dovecot_a.port}: [AUTHENTICATIONFAILED]"
    )
    assert reason in done.out
    assert "not-the-password" not in done.out + done.err + done.message
    assert held_messages(dovecot_b, rows[1][5], rows[1][6]) == {}
    for i in (0, 2):
        source = held_messages(dovecot_a, rows[i][3], rows[i][4])
        assert held_messages(dovecot_b, rows[i][5], rows[i][6]) == source


def test_two_mailboxes_on_one_login_are_refused_before_any_copy(tmp_path, dovecot_a, dovecot_b):
    project_id = create_project(imap_url(dovecot_a), imap_url(dovecot_b))
    project = Project.objects.get(pk=project_id)
    (_, login, password), targets = account(dovecot_a), [account(dovecot_b) for _ in range(2)]
    dovecot_a.load(login, password, "INBOX", unique_messages("shared", 2))
    # The import refuses such a file; here the mailboxes were set up by other means.
    for i, (t_address, t_login, t_password) in enumerate(targets):
        project.mailboxes.create(
            source_address=f"user{i}@old.example",
            target_address=t_address,
            source_login=login,
            source_password=password,
            target_login=t_login,
            target_password=t_password,
        )

    refused = run("run_pass", project_id, "--kind", "full", "--wait", "--inline")

    assert refused.code == 1
    assert refused.message.startswith("Refused before any copy:\n")
    assert (
        f"user0@old.example and user1@old.example would all log in to the source as {login}"
        in refused.message
    )
    assert refused.out == ""
    assert not MailboxPass.objects.exists() and not CopiedItem.objects.exists()
    for _, t_login, t_password in targets:
        assert held_messages(dovecot_b, t_login, t_password) == {}


def test_the_import_refuses_two_mailboxes_on_one_login_and_imports_nothing(
    tmp_path, dovecot_a, dovecot_b
):
    project_id = create_project(imap_url(dovecot_a), imap_url(dovecot_b))
    rows = [
        ("ann@old.example", "ann@new.example", "", "shared", "secret-1", "", ""),
        ("bob@old.example", "bob@new.example", "", "SHARED", "secret-2", "", ""),
    ]
    imported = import_csv(tmp_path, project_id, rows)
    assert imported.code == 1
    assert "Lines 2 and 3: ann@old.example and bob@old.example would all log in to the source" in (
        imported.message
    )
    assert "secret-1" not in imported.message and "secret-2" not in imported.message
    assert not Mailbox.objects.exists()


def test_only_the_named_mailboxes_and_a_delta_after_the_full_copies_only_what_is_new(
    tmp_path, dovecot_a, dovecot_b
):
    project_id = create_project(imap_url(dovecot_a), imap_url(dovecot_b))
    users = [(account(dovecot_a), account(dovecot_b)) for _ in range(3)]
    for i, ((_, login, password), _) in enumerate(users):
        dovecot_a.load(login, password, "INBOX", unique_messages(f"user{i}", 2))
    rows = [(s[0], t[0], "", s[1], s[2], t[1], t[2]) for s, t in users]
    assert import_csv(tmp_path, project_id, rows).code == 0
    first, second = rows[0][0], rows[2][0]

    done = run(
        "run_pass", project_id, "--kind", "full", "--mailbox", second.upper(),
        "--mailbox", first, "--wait", "--inline",
    )  # fmt: skip
    assert done.code == 0, done.message
    assert done.out == "".join(
        f"{address} state=done copied=2 failed=0\n" for address in sorted([first, second])
    )
    assert Mailbox.objects.get(source_address=rows[1][0]).state == Mailbox.State.NEW

    dovecot_a.load(rows[0][3], rows[0][4], "INBOX", unique_messages("late", 1))
    delta = run("run_pass", project_id, "--kind", "delta", "--mailbox", first, "--inline")
    assert delta.code == 0, delta.message
    assert delta.out == f"{first} state=done copied=1 failed=0\n"
    source = held_messages(dovecot_a, rows[0][3], rows[0][4])
    assert held_messages(dovecot_b, rows[0][5], rows[0][6]) == source


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--kind", "full", "--mailbox", "nobody@old.example"],
            "has no mailbox nobody@old.example",
        ),
        (["--kind", "prestage"], "--kind prestage needs --older-than DAYS"),
    ],
)
def test_bad_arguments_are_usage_errors(project, mailbox, args, message):
    refused = run("run_pass", project.pk, *args, "--inline")
    assert (refused.code, refused.out) == (2, "")
    assert message in refused.message
    assert not MailboxPass.objects.exists()


def test_an_unknown_project_is_a_usage_error(db):
    refused = run("run_pass", 999, "--kind", "full")
    assert (refused.code, refused.message) == (2, "There is no project 999.")


@pytest.mark.slow
def test_through_a_running_worker(tmp_path, dovecot_a, dovecot_b, celery_worker_process):
    project_id = create_project(imap_url(dovecot_a), imap_url(dovecot_b))
    users = [(account(dovecot_a), account(dovecot_b)) for _ in range(3)]
    for i, ((_, login, password), _) in enumerate(users):
        dovecot_a.load(login, password, "INBOX", unique_messages(f"user{i}", 2 + i))
    rows = [(s[0], t[0], "", s[1], s[2], t[1], t[2]) for s, t in users]
    assert import_csv(tmp_path, project_id, rows).code == 0

    done = run("run_pass", project_id, "--kind", "full", "--wait")

    assert done.code == 0, done.message
    assert "copying in this process" not in done.err
    assert "copy_folder_batch" in celery_worker_process.log()
    assert done.out == "".join(
        f"{row[0]} state=done copied={count} failed=0\n"
        for row, count in sorted(zip(rows, [2, 3, 4], strict=True))
    )
    for row in rows:
        source = held_messages(dovecot_a, row[3], row[4])
        assert held_messages(dovecot_b, row[5], row[6]) == source

    # Without --wait the worker is handed the passes and the command returns at once.
    dovecot_a.load(rows[0][3], rows[0][4], "INBOX", unique_messages("late", 1))
    queued = run("run_pass", project_id, "--kind", "delta")
    assert queued.code == 0, queued.message
    assert queued.out == "".join(f"{row[0]} queued\n" for row in sorted(rows))
    wait_until(
        lambda: not MailboxPass.objects.exclude(state=MailboxPass.State.DONE).exists(), timeout=60
    )
    source = held_messages(dovecot_a, rows[0][3], rows[0][4])
    assert held_messages(dovecot_b, rows[0][5], rows[0][6]) == source
