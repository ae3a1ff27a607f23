"""The engine's record follows the target, not only its own rows: a target reset between
passes is refilled, the batch an interrupted pass was storing is not stored twice, and the
final report counts a message that failed under two UIDVALIDITYs once."""

import csv
import io
import shutil
import time

import pytest

from mailboxes import engine, services
from mailboxes.models import CopiedItem, FolderJob, ItemError, MailboxPass
from mailboxes.report import write_report
from tests.servers.dovecot import RawMessage
from tests.servers.imap_proxy import ImapProxy

from .conftest import make_mailbox, run_pass
from .messages import hard_cases, message

pytestmark = pytest.mark.django_db


def bulk(prefix: str, count: int) -> list[RawMessage]:
    return [
        RawMessage(message(f"{prefix} {i}", f"line {i}\r\n" * 20, f"{prefix}{i}@example.org"))
        for i in range(count)
    ]


def drop_pooled_connections():
    """The engine keeps connections open between tasks; a test that resets an account under
    them must not reuse a session that still sees the old folders."""
    for key in list(engine._pool._idle):
        engine._close_quietly(engine._pool._idle.pop(key)[0])


def uidvalidity(user, folder="INBOX") -> int:
    client = user.server.client(user.name, user.password)
    try:
        _, data = client.status(folder, "(UIDVALIDITY)")
        return int(data[0].split(b"UIDVALIDITY ")[1].rstrip(b")"))
    finally:
        client.logout()


@pytest.fixture
def three_mailboxes(dovecot_a, dovecot_b, dovecot_user, copy_settings):
    """Three mailboxes, each with its own logins and its own content, in one project."""
    pairs = []
    project = None
    for index in range(3):
        source, target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
        source.load("INBOX", bulk(f"Inbox{index}", 10 + index) + hard_cases())
        source.load("Projects", bulk(f"Projects{index}", 4 + index))
        if project is None:
            mailbox = make_mailbox(source.endpoint(), target.endpoint(), source.name, target.name)
            project = mailbox.project
        else:
            mailbox = project.mailboxes.create(
                source_address=source.name,
                target_address=target.name,
                source_login=source.name,
                source_password=source.password,
                target_login=target.name,
                target_password=target.password,
            )
        pairs.append((mailbox, source, target))
    return pairs


def run_all(mailboxes, kind):
    scheduler = engine.InlineScheduler("test:1")
    passes = services.start_passes(mailboxes, kind, scheduler=scheduler)
    scheduler.run()
    for mailbox_pass in passes:
        mailbox_pass.refresh_from_db()
    return passes


@pytest.mark.parametrize("kind", ["full", "delta"])
def test_a_target_account_reset_between_passes_is_filled_again(three_mailboxes, kind):
    mailboxes = [mailbox for mailbox, _, _ in three_mailboxes]
    first = run_all(mailboxes, "full")
    assert [p.state for p in first] == ["done"] * 3
    for _, source, target in three_mailboxes:
        assert target.holdings().bodies() == source.holdings().bodies()
    reset_box, reset_source, reset_target = three_mailboxes[0]
    before = uidvalidity(reset_target)

    # The target account is deleted and made again (an admin's reset): every folder comes back
    # empty with a new UIDVALIDITY. Dovecot takes a new folder's UIDVALIDITY from the clock,
    # in seconds: a reset within the second of the creation would keep it.
    time.sleep(max(0.0, before + 1.1 - time.time()))
    drop_pooled_connections()
    shutil.rmtree(reset_target.maildir)
    assert reset_target.holdings().messages == 0
    assert uidvalidity(reset_target) != before

    second = run_all(mailboxes, kind)
    held = reset_source.holdings()
    assert second[0].state == "done", second[0].error
    assert (second[0].items_copied, second[0].items_failed) == (held.messages, 0)
    assert reset_target.holdings().bodies() == held.bodies()
    reset_box.refresh_from_db()
    assert (reset_box.items_on_target, reset_box.bytes_on_target) == (held.messages, held.size)
    assert CopiedItem.objects.filter(mailbox=reset_box).count() == held.messages
    # The other two mailboxes' targets were not touched: nothing copied again.
    for mailbox_pass, (mailbox, source, target) in zip(
        second[1:], three_mailboxes[1:], strict=True
    ):
        assert (mailbox_pass.state, mailbox_pass.items_copied) == ("done", 0)
        assert target.holdings().bodies() == source.holdings().bodies()
        mailbox.refresh_from_db()
        assert mailbox.items_on_target == source.holdings().messages


def test_a_new_pass_after_an_interrupted_one_stores_its_batch_in_flight_once(
    three_mailboxes, dovecot_b
):
    mailbox, source, target = three_mailboxes[0]
    # The target drops the connection right after storing the second batch, before the client
    # hears so, and stays away past the retries: the pass fails with that batch stored on the
    # target and not recorded.
    away = ImapProxy(("127.0.0.1", dovecot_b.port), drop_after_appends=2, refuse_after_drop=True)
    away.start()
    tenant = mailbox.project.target
    try:
        tenant.port = away.port
        tenant.save()
        interrupted = run_pass(mailbox, "full")
    finally:
        away.stop()
        tenant.port = dovecot_b.port
        tenant.save()
    assert interrupted.state == "failed" and away.drops == 1
    (stuck,) = FolderJob.objects.filter(mailbox_pass=interrupted).exclude(inflight=[])
    assert not CopiedItem.objects.filter(source_id__in=stuck.inflight).exists()
    # A new pass is started instead of the failed one being taken over.
    again = run_pass(mailbox, "full")
    assert again.state == "done", again.error
    held = source.holdings()
    assert target.holdings().bodies() == held.bodies()  # every message exactly once
    assert CopiedItem.objects.filter(mailbox=mailbox).count() == held.messages
    assert again.items_copied + again.items_skipped == held.messages
    mailbox.refresh_from_db()
    assert mailbox.items_on_target == held.messages
    assert FolderJob.objects.get(pk=stuck.pk).inflight == []


def test_the_report_counts_a_message_that_failed_under_two_uidvalidities_once(
    three_mailboxes,
):
    mailbox = three_mailboxes[0][0]
    reason = "[LIMIT] Mail size is larger than the maximum size allowed"
    for uidvalidity_now, state in ((1700000000, "done"), (1700000555, "done")):
        mailbox_pass = MailboxPass.objects.create(mailbox=mailbox, kind="full", state=state)
        job = mailbox_pass.folder_jobs.create(mailbox=mailbox, source_path="INBOX")
        ItemError.objects.create(
            folder_job=job, source_id=f"{uidvalidity_now}:7", size=5000, reason=reason
        )
        # Another message, of another size, that happens to get UID 8 after the reset.
        uid = 9 if uidvalidity_now == 1700000000 else 8
        ItemError.objects.create(
            folder_job=job, source_id=f"{uidvalidity_now}:{uid}", size=9000, reason=reason
        )
    out = io.StringIO()
    write_report(mailbox.project, out)
    out.seek(0)
    rows = {row["source_address"]: row for row in csv.DictReader(out)}
    row = rows[mailbox.source_address]
    assert row["items_failed"] == "3"
    assert row["failure_reasons"] == f"3 × {reason}"
