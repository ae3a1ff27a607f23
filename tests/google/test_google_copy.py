"""The engine copying Google Workspace mailboxes (the Gmail API server on loopback) into a
maildir and into Dovecot: every message byte-identical in every folder its labels place it in,
with read and flagged state and received date, each downloaded once; deltas from the history,
an expired history id, and throttling."""

import time

import pytest
from django.urls import reverse

from mailboxes import engine, services
from mailboxes.connectors.base import ARCHIVE, DRAFTS, INBOX, JUNK, SENT, TRASH, Endpoint
from mailboxes.connectors.imap import ImapConnector
from mailboxes.connectors.maildir import MaildirConnector
from mailboxes.discovery import discover_mailbox
from mailboxes.models import FolderJob, ItemError
from tests.engine.conftest import make_mailbox, run_pass

from .conftest import google_endpoint
from .seed import USERS, expected, holdings, seed

pytestmark = pytest.mark.django_db


def maildir(root, user) -> MaildirConnector:
    return MaildirConnector(Endpoint(kind="maildir", host=str(root)), user)


@pytest.fixture
def to_maildir(gmail, google_tenant, tmp_path):
    """Three Gmail mailboxes and a maildir target: (boxes, {user: Mailbox row})."""
    boxes = seed(gmail)
    target = Endpoint(kind="maildir", host=str(tmp_path / "target"))
    (tmp_path / "target").mkdir()
    first = make_mailbox(google_tenant, target, USERS[0], USERS[0])
    rows = {USERS[0]: first}
    for user in USERS[1:]:
        rows[user] = first.project.mailboxes.create(source_address=user, target_address=user)
    return boxes, rows


def downloads(gmail, box) -> dict:
    return {m: gmail.gets[(box.address, m)] for m in box.messages}


def test_google_to_maildir_places_each_message_in_every_label_folder_downloaded_once(
    gmail, to_maildir, tmp_path
):
    boxes, rows = to_maildir
    for user, row in rows.items():
        done = run_pass(row, "full")
        assert (done.state, done.items_failed) == ("done", 0)
        held = holdings(maildir(tmp_path / "target", user))
        assert held == expected(boxes[user])
        # Several labels, several folders, one download each.
        assert sum(len(v) for v in held.values()) > len(boxes[user].messages)
        assert set(downloads(gmail, boxes[user]).values()) == {1}
    assert ItemError.objects.count() == 0


def test_a_delta_follows_label_changes_new_mail_and_deletions(gmail, to_maildir, tmp_path):
    boxes, rows = to_maildir
    for row in rows.values():
        run_pass(row, "full")
    before = {user: expected(box) for user, box in boxes.items()}
    ann, bo, cy = (boxes[user] for user in USERS)
    inbox_only = next(m for m in ann.messages.values() if "INBOX" in m.labels)
    ann.change_labels(inbox_only.id, add=["Receipts"])  # a new label: a new folder to fill
    archived = next(m for m in bo.messages.values() if "INBOX" in m.labels)
    bo.change_labels(archived.id, remove=sorted(archived.labels))  # archived: now All Mail
    late = cy.add_message(b"Subject: late\r\n\r\narrived during cutover\r\n", ["INBOX", "Travel"])
    gone = cy.add_message(b"Subject: gone\r\n\r\ndeleted before the delta\r\n", ["INBOX"])
    cy.delete_message(gone.id)
    old = next(iter(cy.messages.values()))
    cy.delete_message(old.id)  # copied already: the target keeps its copy

    for row in rows.values():
        delta = run_pass(row, "delta")
        assert (delta.state, delta.items_failed) == ("done", 0)
    copied_ann = holdings(maildir(tmp_path / "target", USERS[0]))
    assert [i[0] for i in copied_ann[("Receipts",)]] == [inbox_only.raw]
    assert {k: v for k, v in copied_ann.items() if k != ("Receipts",)} == before[USERS[0]]
    copied_bo = holdings(maildir(tmp_path / "target", USERS[1]))
    assert archived.raw in [i[0] for i in copied_bo["archive"]]
    copied_cy = holdings(maildir(tmp_path / "target", USERS[2]))
    inbox = [i[0] for i in copied_cy["inbox"]]
    assert late.raw in inbox and late.raw in [i[0] for i in copied_cy[("Travel",)]]
    assert gone.raw not in inbox
    assert (
        sum(len(v) for v in copied_cy.values())
        == sum(len(v) for v in before[USERS[2]].values()) + 2
    )
    assert gmail.gets[(cy.address, late.id)] == 1 and gmail.gets[(cy.address, gone.id)] == 0
    assert ItemError.objects.count() == 0


def test_an_expired_history_id_is_listed_again_without_duplicates(gmail, to_maildir, tmp_path):
    boxes, rows = to_maildir
    for row in rows.values():
        run_pass(row, "full")
    lates = {}
    for user, box in boxes.items():
        lates[user] = box.add_message(
            f"Subject: late for {user}\r\n\r\nafter the history expired\r\n".encode(),
            ["INBOX", "Work"],
        )
        box.expire_history()
    for user, row in rows.items():
        delta = run_pass(row, "delta")
        assert (delta.state, delta.items_failed, delta.items_copied) == ("done", 0, 2)
        assert holdings(maildir(tmp_path / "target", user)) == expected(boxes[user])
        assert set(downloads(gmail, boxes[user]).values()) == {1}


def test_google_to_dovecot_byte_identical_with_flags_and_dates(
    gmail, google_tenant, dovecot_b, dovecot_user
):
    boxes = seed(gmail)
    targets = {user: dovecot_user(dovecot_b) for user in USERS}
    for user, target in targets.items():
        row = make_mailbox(google_tenant, target.endpoint(), user, target.name)
        done = run_pass(row, "full")
        assert (done.state, done.items_failed) == ("done", 0)
    for user, target in targets.items():
        with ImapConnector(target.endpoint(), target.name) as imap:
            assert holdings(imap) == expected(boxes[user])
        assert set(downloads(gmail, boxes[user]).values()) == {1}


@pytest.mark.slow
def test_a_mailbox_throttled_by_google_finishes_with_no_failed_item(gmail, tmp_path, settings):
    """A per-user quota far below what the copy asks: Google's 429s are waited out."""
    settings.COPY_RETRY_BASE_SECONDS = 0.01
    gmail.set_quota(units=150, window=1.0)
    boxes = seed(gmail, per_user=36)
    source = google_endpoint(gmail, gmail.key, tmp_path / "spool", max_inline_wait=4.0)
    (tmp_path / "target").mkdir()
    target = Endpoint(kind="maildir", host=str(tmp_path / "target"))
    for user in USERS:
        row = make_mailbox(source, target, user, user)
        done = run_pass(row, "full")
        assert (done.state, done.items_failed) == ("done", 0)
        assert holdings(maildir(tmp_path / "target", user)) == expected(boxes[user])
        assert gmail.refused[user] > 0
    assert not FolderJob.objects.filter(state="failed").exists()


def test_a_delta_gives_copies_the_read_and_starred_state_they_have_now(gmail, to_maildir, tmp_path):
    boxes, rows = to_maildir
    for row in rows.values():
        run_pass(row, "full")
    changed = {}
    for user, box in boxes.items():
        unread = next(m for m in box.messages.values() if "UNREAD" in m.labels)
        starred = next(m for m in box.messages.values() if "STARRED" in m.labels)
        box.change_labels(unread.id, remove=["UNREAD"], add=["STARRED"])
        box.change_labels(starred.id, remove=["STARRED"])
        changed[user] = (unread, starred)
    for user, row in rows.items():
        delta = run_pass(row, "delta")
        assert (delta.state, delta.items_copied, delta.items_failed) == ("done", 0, 0)
        held = holdings(maildir(tmp_path / "target", user))
        assert held == expected(boxes[user])
        unread, starred = changed[user]
        flags = {data: f for entries in held.values() for data, f, _ in entries}
        assert (
            flags[unread.raw] == {"\\Seen", "\\Flagged"} and "\\Flagged" not in flags[starred.raw]
        )


@pytest.mark.slow
def test_the_quota_budget_waits_for_the_window_instead_of_meeting_googles_429s(
    gmail, tmp_path, settings
):
    """With the mailbox's budget set to the quota Google enforces, the client waits for the
    window itself: Google refuses nothing, and every message arrives."""
    gmail.set_quota(units=120, window=2.0)
    boxes = seed(gmail, per_user=12)
    source = google_endpoint(gmail, gmail.key, tmp_path / "spool", user_units=120, quota_window=2.0)
    (tmp_path / "target").mkdir()
    target = Endpoint(kind="maildir", host=str(tmp_path / "target"))
    for user in USERS:
        row = make_mailbox(source, target, user, user)
        started = time.monotonic()
        done = run_pass(row, "full")
        assert (done.state, done.items_failed) == ("done", 0)
        assert holdings(maildir(tmp_path / "target", user)) == expected(boxes[user])
        assert gmail.refused[user] == 0
        # More units than one window holds: the budget made it wait at least one window.
        assert gmail.units[user] > 120 and time.monotonic() - started > 2.0


@pytest.mark.slow
def test_a_5000_message_mailbox_throttled_by_google_finishes_with_no_failed_item(
    gmail, tmp_path, settings
):
    """Google's per-user quota set far below what the copy spends (the budget left high, as
    when another app spends the same quota): the 429s are waited out, nothing fails."""
    settings.COPY_RETRY_BASE_SECONDS = 0.01
    gmail.set_quota(units=2_000, window=1.0)
    boxes = seed(gmail, per_user=20)
    bulk = [data for box in boxes.values() for data in (m.raw for m in box.messages.values())]
    big = boxes[USERS[0]]
    for n in range(5_000 - len(big.messages)):
        big.add_message(bulk[n % len(bulk)], ["INBOX", "Archive/2020"][: 1 + n % 2])
    source = google_endpoint(gmail, gmail.key, tmp_path / "spool", user_units=10**9)
    (tmp_path / "target").mkdir()
    target = Endpoint(kind="maildir", host=str(tmp_path / "target"))
    for user in USERS:
        row = make_mailbox(source, target, user, user)
        done = run_pass(row, "full")
        assert (done.state, done.items_failed) == ("done", 0)
        assert holdings(maildir(tmp_path / "target", user)) == expected(boxes[user])
    assert len(big.messages) == 5_000 and gmail.refused[USERS[0]] > 0
    assert set(downloads(gmail, big).values()) == {1}


def test_one_folder_strategy_places_each_message_once_with_its_other_labels_as_keywords(
    gmail, tmp_path, settings, dovecot_b, dovecot_user
):
    """The labels option one_folder: Deleted Items, Junk, Drafts, Sent Items and Inbox win,
    then user labels by name; the other user labels travel as IMAP keywords."""
    settings.COPY_RETRY_BASE_SECONDS = 0.01
    boxes = seed(gmail)
    source = google_endpoint(gmail, gmail.key, tmp_path / "spool", labels="one_folder")
    targets = {user: dovecot_user(dovecot_b) for user in USERS}
    for user, target in targets.items():
        done = run_pass(make_mailbox(source, target.endpoint(), user, target.name), "full")
        assert (done.state, done.items_failed) == ("done", 0)
        assert done.items_copied == len(boxes[user].messages)
    for user, target in targets.items():
        with ImapConnector(target.endpoint(), target.name) as imap:
            assert holdings(imap) == expected(boxes[user], "one_folder")


def test_a_prestage_copies_only_mail_received_before_its_date(gmail, to_maildir, tmp_path):
    """Pre-stage asks Gmail for ``before:<epoch seconds>``: the older mail now, the rest in
    the full pass after it."""
    boxes, rows = to_maildir
    for user, row in rows.items():
        box = boxes[user]
        recent = box.add_message(b"Subject: recent\r\n\r\nthis week\r\n", ["INBOX", "Work"])
        prestage = run_pass(row, "prestage", older_than_days=3)
        assert (prestage.state, prestage.items_failed) == ("done", 0)
        held = holdings(maildir(tmp_path / "target", user))
        copied = {data for entries in held.values() for data, _, _ in entries}
        older = {m.raw for m in box.messages.values() if m.id != recent.id}
        assert copied == older
        full = run_pass(row, "full")
        assert full.items_copied == 2  # the recent message, in Inbox and in Work
        assert holdings(maildir(tmp_path / "target", user)) == expected(box)


def test_discovery_counts_each_label_folders_messages(gmail, to_maildir):
    boxes, rows = to_maildir
    for user, row in rows.items():
        report = discover_mailbox(row)
        counted = {folder["path"]: folder["items"] for folder in report["folders"]}
        held = expected(boxes[user])
        names = {INBOX: "Inbox", SENT: "Sent Items", JUNK: "Junk", TRASH: "Deleted Items"}
        names |= {DRAFTS: "Drafts", ARCHIVE: "All Mail"}
        wanted = {names.get(key) or "/".join(key): len(items) for key, items in held.items()}
        assert {path: n for path, n in counted.items() if n} == wanted
        assert report["items"] == sum(wanted.values())


def test_the_mailbox_page_says_throttled_by_google_while_the_folder_waits(
    gmail, google_tenant, tmp_path, client, alice
):
    """Throttling longer than the worker waits in-process goes back to the engine: the
    folder says so on the mailbox page until its retry copies it."""
    boxes = seed(gmail, per_user=6)
    source = google_endpoint(gmail, gmail.key, tmp_path / "spool", max_inline_wait=0)
    (tmp_path / "target").mkdir()
    target = Endpoint(kind="maildir", host=str(tmp_path / "target"))
    first = make_mailbox(source, target, USERS[0], USERS[0])
    first.project.members.add(alice)
    rows = [first] + [
        first.project.mailboxes.create(source_address=u, target_address=u) for u in USERS[1:]
    ]
    client.force_login(alice)
    for row in rows:
        gmail.throttle("messages.get", 1)
        scheduler = engine.InlineScheduler("test:1")
        services.start_passes([row], "full", None, scheduler)
        waiting = FolderJob.objects.filter(mailbox=row, error__contains="Throttled by Google")
        for _ in range(100):  # a step is a plan or a folder job: far fewer are needed
            if waiting.exists():
                break
            scheduler.run(steps=1)
        page = client.get(reverse("mailbox_detail", args=[row.project_id, row.pk]))
        assert "Source server: Throttled by Google (Quota exceeded for quota metric" in (
            page.content.decode()
        )
        scheduler.run()
        done = row.passes.get()
        assert (done.state, done.items_failed) == ("done", 0)
        assert holdings(maildir(tmp_path / "target", row.source_address)) == expected(
            boxes[row.source_address]
        )
    assert sum(gmail.refused.values()) == 3
