"""The engine between two maildirs, in process: full, again, delta, pre-stage, mappings,
item errors, pause and resume, and a copy interrupted between storing and recording."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailboxes import engine, services
from mailboxes.connectors.base import Endpoint, Item
from mailboxes.connectors.maildir import MaildirConnector
from mailboxes.models import CopiedItem, FolderJob, FolderMapping, ItemError, MailboxPass
from tests.corpus import corpus_messages

from .conftest import make_mailbox, run_pass
from .messages import hard_cases
from .snapshots import snapshot, total

pytestmark = pytest.mark.django_db

FOLDERS = [("INBOX",), ("Archive",), ("Archive", "2014"), ("Projets & Co",), ("Ünïcode",)]


def fill(root, folders=FOLDERS, messages=None):
    connector = MaildirConnector(Endpoint(kind="maildir", host=str(root)), "src")
    messages = messages if messages is not None else corpus_messages() + hard_cases()
    for index, path in enumerate(folders):
        role = "inbox" if path == ("INBOX",) else None
        folder = connector.ensure_folder(path, "mail", role)
        chosen = messages[index :: len(folders)]
        connector.store(
            folder,
            [
                Item(f"m{i}", m.data, flags=m.flags, received=m.internaldate)
                for i, m in enumerate(chosen)
            ],
        )
    connector.ensure_folder(("Empty", "Nested"), "mail", None)
    return connector


@pytest.fixture
def pair(tmp_path, copy_settings):
    source, target = tmp_path / "source", tmp_path / "target"
    source.mkdir(), target.mkdir()
    fill(source)
    endpoints = (
        Endpoint(kind="maildir", host=str(source)),
        Endpoint(kind="maildir", host=str(target)),
    )
    mailbox = make_mailbox(*endpoints, "src", "dst")
    return mailbox, endpoints


def test_full_copy_is_exact_and_a_second_pass_copies_nothing(pair):
    mailbox, (source, target) = pair
    first = run_pass(mailbox, "full")
    expected = snapshot(source, "src")
    count = total(expected)
    assert (first.state, first.items_copied, first.items_failed) == ("done", count, 0)
    assert snapshot(target, "dst") == expected
    assert ("Empty", "Nested") in expected
    assert mailbox.state == "done" and mailbox.items_copied == count
    assert first.bytes_copied == sum(
        len(d) * n for c in expected.values() for (d, *_), n in c.items()
    )

    second = run_pass(mailbox, "full")
    assert (second.items_copied, second.items_skipped) == (0, count)
    delta = run_pass(mailbox, "delta")
    assert (delta.items_total, delta.items_copied) == (0, 0)
    assert snapshot(target, "dst") == expected


def test_delta_copies_only_what_arrived(pair):
    mailbox, (source, target) = pair
    run_pass(mailbox, "full")
    connector = MaildirConnector(source, "src")
    archive = next(f for f in connector.folders() if f.path == ("Archive", "2014"))
    connector.store(archive, [Item("n1", b"Subject: new\r\n\r\nnew\r\n"), Item("n2", b"x\r\n")])
    delta = run_pass(mailbox, "delta")
    # A maildir has no UIDs: a changed folder is listed again, what was copied is skipped.
    assert delta.items_copied == 2
    assert delta.items_total == delta.items_skipped + 2 == 2 + 18
    assert snapshot(target, "dst") == snapshot(source, "src")


def test_prestage_copies_old_items_and_delta_the_rest(pair):
    mailbox, (source, target) = pair
    connector = MaildirConnector(source, "src")
    inbox = next(f for f in connector.folders() if f.role == "inbox")
    recent = datetime.now(UTC) - timedelta(days=2)
    connector.store(inbox, [Item("r", b"Subject: recent\r\n\r\nhi\r\n", received=recent)])
    expected = snapshot(source, "src")
    cutoff = (datetime.now(UTC) - timedelta(days=30)).timestamp()
    old = sum(n for c in expected.values() for (_, _, when), n in c.items() if when < cutoff)
    assert 0 < old < total(expected)

    prestage = run_pass(mailbox, "prestage", older_than_days=30)
    assert prestage.items_copied == old
    delta = run_pass(mailbox, "delta")
    assert delta.items_copied == total(expected) - old
    assert snapshot(target, "dst") == snapshot(source, "src")


def test_folder_mappings_rename_and_exclude(pair):
    mailbox, (source, target) = pair
    project = mailbox.project
    FolderMapping.objects.create(project=project, source_path="Archive", target_path="Old/Archive")
    FolderMapping.objects.create(project=project, source_path="Projets & Co", exclude=True)
    run_pass(mailbox, "full")
    expected = snapshot(source, "src")
    copied = snapshot(target, "dst")
    assert copied[("Old", "Archive")] == expected[("Archive",)]
    assert copied[("Old", "Archive", "2014")] == expected[("Archive", "2014")]
    assert ("Projets & Co",) not in copied and ("Archive",) not in copied


def test_rejected_item_is_an_error_and_the_folder_goes_on(pair):
    mailbox, (source, target) = pair
    # A maildir folder numbers keywords with the 26 letters a-z: the target's INBOX has used
    # them all, so a message with one more keyword cannot be stored there.
    full = MaildirConnector(target, "dst").ensure_folder(("INBOX",), "mail", "inbox")
    keywords = "".join(f"{i} other{i}\n" for i in range(26))
    (Path(target.host) / "dst" / "dovecot-keywords").write_text(keywords)
    connector = MaildirConnector(source, "src")
    inbox = next(f for f in connector.folders() if f.role == "inbox")
    connector.store(inbox, [Item("k", b"Subject: kw\r\n\r\nkw\r\n", flags={"$Label1"})])
    assert full.native_id == ""
    done = run_pass(mailbox, "full")
    expected = snapshot(source, "src")
    with_keywords = sum(
        n for (_, flags, _), n in expected[("INBOX",)].items() if any(f[0] != "\\" for f in flags)
    )
    assert done.state == "done" and done.items_failed == with_keywords >= 1
    errors = ItemError.objects.all()
    assert {e.reason for e in errors} == {"A maildir folder holds at most 26 keywords."}
    assert {e.folder_job.source_path for e in errors} == {"INBOX"}
    assert errors[0].folder_job.state == "done"
    assert done.items_copied == total(expected) - with_keywords


def test_pause_stops_and_resume_finishes(pair):
    mailbox, (source, target) = pair
    scheduler = engine.InlineScheduler("test:1")
    services.start_passes([mailbox], "full", scheduler=scheduler)
    services.pause_mailboxes([mailbox])
    scheduler.run()
    mailbox.refresh_from_db()
    assert mailbox.state == "paused" and mailbox.items_copied == 0
    services.resume_mailboxes([mailbox], scheduler=scheduler)
    scheduler.run()
    mailbox.refresh_from_db()
    assert mailbox.state == "done"
    assert snapshot(target, "dst") == snapshot(source, "src")


class Crash(BaseException):
    """Stands for the process dying: nothing in the engine may catch it."""


def test_items_stored_but_not_recorded_are_found_by_fingerprint(pair, monkeypatch):
    mailbox, (source, target) = pair
    scheduler = engine.InlineScheduler("node-1:42")
    services.start_passes([mailbox], "full", scheduler=scheduler)
    original = FolderJob.record_batch
    calls = []

    def dies_on_the_third_batch(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise Crash
        return original(self, *args, **kwargs)

    monkeypatch.setattr(FolderJob, "record_batch", dies_on_the_third_batch)
    with pytest.raises(Crash):
        scheduler.run()
    stuck = FolderJob.objects.get(lease_owner="node-1:42")
    assert stuck.inflight  # stored on the target, not recorded

    restarted = engine.InlineScheduler("node-1:43")
    assert engine.requeue_stalled(restarted, node="node-1") >= 1
    restarted.run()
    mailbox.refresh_from_db()
    assert mailbox.state == "done"
    expected = snapshot(source, "src")
    assert snapshot(target, "dst") == expected  # every message exactly once
    assert CopiedItem.objects.count() == total(expected)
    mailbox_pass = MailboxPass.objects.get()
    assert mailbox_pass.items_copied + mailbox_pass.items_skipped == total(expected)


def test_role_folders_land_on_the_targets_own_and_their_subfolders_follow(tmp_path, copy_settings):
    source, target = tmp_path / "s", tmp_path / "t"
    fill(source, [("INBOX",), ("Sent Messages",), ("Sent Messages", "2019")], hard_cases())
    ends = Endpoint(kind="maildir", host=str(source)), Endpoint(kind="maildir", host=str(target))
    MaildirConnector(ends[1], "dst").ensure_folder(("Sent Items",), "mail", None)
    mailbox = make_mailbox(*ends, "src", "dst")
    assert run_pass(mailbox, "full").state == "done"
    expected = snapshot(ends[0], "src")
    copied = snapshot(ends[1], "dst")
    assert copied[("Sent Items",)] == expected[("Sent Messages",)]
    assert copied[("Sent Items", "2019")] == expected[("Sent Messages", "2019")]
    assert ("Sent Messages",) not in copied
