"""Verification through the EWS protocol test servers: three mailboxes, each with its own
password on both sides and its own mail, and a fourth first copied into the wrong account.
Items deleted on a target, items added to a source, a copy in another account and an item the
target refuses are named by ``verify``; "Copy what is missing" puts exactly
the source's mail back and ``verify`` exits 0. Counts are compared with the servers' state."""

import pytest

from mailboxes.connectors.base import Endpoint
from mailboxes.models import Mailbox
from projects.models import Project
from tests.engine.conftest import tenant_for
from tests.servers.ews_server import start_ews_server

from .conftest import run, unique_messages, verify_lines

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ews_pair():
    servers = start_ews_server(), start_ews_server()
    yield servers
    for server in servers:
        server.stop()


def test_ews_differences_are_named_and_copy_what_is_missing_restores_them(ews_pair):
    source, target = ews_pair
    project = Project.objects.create(
        client_name="Litware",
        source=tenant_for(Endpoint(kind="ews", host=source.url)),
        target=tenant_for(Endpoint(kind="ews", host=target.url)),
    )
    mailboxes = []
    target.state.add_user("decoy@dst.test", "pw-decoy")
    for i in range(4):
        old, new = f"user{i}@src.test", f"user{i}@dst.test"
        source.state.add_user(old, f"pw-src-{i}")
        target.state.add_user(new, f"pw-dst-{i}")
        inbox = source.state.folder(old, "Inbox")
        for raw in unique_messages(f"ews{i}", 4 + i):
            source.state.add_item(inbox, raw.data)
        projects = source.state.add_folder(old, "Inbox", "Projects", "IPF.Note")
        for raw in unique_messages(f"ews{i}-projects", 2):
            source.state.add_item(projects, raw.data)
        mailboxes.append(
            project.mailboxes.create(
                source_address=old,
                target_address=new,
                source_login=old,
                source_password=f"pw-src-{i}",
                target_login=new,
                target_password=f"pw-dst-{i}",
            )
        )
    deleted, grown, refused, misdirected = mailboxes
    misdirected_to = misdirected.target_address
    # The fourth mailbox's first copy goes to another account (a wrong target address).
    Mailbox.objects.filter(pk=misdirected.pk).update(
        target_address="decoy@dst.test", target_login="decoy@dst.test"
    )
    misdirected.target_password = "pw-decoy"
    misdirected.save(update_fields=["target_password"])
    # The target refuses one of the third user's messages, with its own code.
    target.state.reject_items_containing(b"ews2 body 1 ", "ErrorMessageSizeExceeded")

    full = run("run_pass", project.pk, "--kind", "full", "--wait", "--inline")
    assert full.code == 1  # one item failed
    first = run("verify", project.pk, "--inline")
    assert first.code == 0, first.out + first.message
    assert f"{refused.source_address} verified=yes missing=0 failed=1 excluded=0 extra=0" in (
        first.out
    )
    assert "  folder Inbox: failed=1 reason: " in first.out
    assert target.state.held("decoy@dst.test") == source.state.held(misdirected.source_address)
    Mailbox.objects.filter(pk=misdirected.pk).update(
        target_address=misdirected_to, target_login=misdirected_to
    )
    misdirected.refresh_from_db()
    misdirected.target_password = "pw-dst-3"
    misdirected.save(update_fields=["target_password"])

    target_inbox = target.state.folder(deleted.target_address, "Inbox")
    for item in target.state.items_in(target_inbox)[:2]:
        del target.state.items[item.id]
    for raw in unique_messages("ews1-late", 2):
        source.state.add_item(source.state.folder(grown.source_address, "Inbox"), raw.data)

    checked = run("verify", project.pk, "--inline")

    assert checked.code == 1, checked.out
    lines = verify_lines(checked)
    assert lines[deleted.source_address] == (
        f"{deleted.source_address} verified=no missing=2 failed=0 excluded=0 extra=0"
    )
    assert lines[grown.source_address] == (
        f"{grown.source_address} verified=no missing=2 failed=0 excluded=0 extra=0"
    )
    # Nothing of the misdirected copy is in the right account: all 9 items are missing.
    assert lines[misdirected.source_address] == (
        f"{misdirected.source_address} verified=no missing=9 failed=0 excluded=0 extra=0"
    )
    assert target.state.held(misdirected_to) == {}
    assert "  folder Inbox: missing=7 (7 gone from the target)" in checked.out
    assert "  folder Inbox: missing=2 (2 gone from the target)" in checked.out
    assert "  folder Inbox: missing=2 (2 new on the source)" in checked.out
    for mailbox in mailboxes:
        mailbox.refresh_from_db()
        totals = mailbox.verification["totals"]
        on_target = target.state.held(mailbox.target_address)
        assert totals["target_items"] == sum(len(items) for items in on_target.values())
        on_source = source.state.held(mailbox.source_address)
        assert totals["source_items"] == sum(len(items) for items in on_source.values())

    fixed = run("run_pass", project.pk, "--kind", "missing", "--wait", "--inline")
    assert f"{deleted.source_address} state=done copied=2 failed=0" in fixed.out
    assert f"{grown.source_address} state=done copied=2 failed=0" in fixed.out
    assert f"{misdirected.source_address} state=done copied=9 failed=0" in fixed.out

    again = run("verify", project.pk, "--inline")
    assert again.code == 0, again.out
    for mailbox in (deleted, grown, misdirected):
        assert target.state.held(mailbox.target_address) == source.state.held(
            mailbox.source_address
        )
    assert Mailbox.objects.filter(verified=True).count() == 4
