"""Flags changed on the source after a copy (read, flagged, answered, tagged) reach the target on
the next pass: between two Dovecot servers through CONDSTORE, and between two maildirs."""

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailboxes.connectors.base import Endpoint, Item
from mailboxes.connectors.imap import ImapClient
from mailboxes.connectors.maildir import MaildirConnector
from mailboxes.models import CopiedItem
from tests.servers.dovecot import RawMessage
from tests.servers.imap_proxy import ImapProxy

from .conftest import make_mailbox, run_pass
from .messages import message
from .snapshots import snapshot

pytestmark = pytest.mark.django_db

WEEK_AGO = datetime.now(UTC) - timedelta(days=7)
# (flags when pre-staged, flags the user gives it during the week); None: left alone.
MESSAGES = [
    (set(), {"\\Seen"}),  # read
    (set(), {"\\Flagged"}),  # flagged
    ({"\\Seen"}, {"\\Seen", "\\Answered", "$Label1"}),  # answered and tagged
    ({"\\Seen", "\\Flagged"}, {"\\Flagged"}),  # marked unread again
    ({"\\Seen"}, {"\\Seen", "Kunde_A"}),  # a custom keyword
    (set(), None),
    ({"\\Seen"}, None),
    ({"\\Answered", "$Forwarded"}, None),
]
CHANGED = sum(1 for _, later in MESSAGES if later is not None)


def raw_messages() -> list[RawMessage]:
    return [
        RawMessage(
            message(f"Message {i}", f"body {i}", f"m{i}@example.org"), frozenset(flags), WEEK_AGO
        )
        for i, (flags, _) in enumerate(MESSAGES)
    ]


@pytest.fixture
def round_trips(monkeypatch):
    """The commands of every round trip our IMAP client makes."""
    trips = []
    original = ImapClient.pipeline

    def recording(self, commands, literal_plus=None):
        trips.append([" ".join(p for p in c if isinstance(p, str)) for c in commands])
        return original(self, commands, literal_plus)

    monkeypatch.setattr(ImapClient, "pipeline", recording)
    return trips


def imap_mailbox(dovecot_a, dovecot_b, dovecot_user, **source_options):
    source, target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
    uids = source.load("INBOX", raw_messages())
    source.load("Archive", [RawMessage(message("Old", "untouched"), frozenset(), WEEK_AGO)])
    endpoint = source.endpoint(**source_options)
    mailbox = make_mailbox(endpoint, target.endpoint(), source.name, target.name)
    return mailbox, source, target, uids


def change_flags_over_imap(user, uids) -> None:
    """What the user's mail client does during the week, through a plain imaplib client."""
    client = user.server.client(user.name, user.password)
    client.select("INBOX")
    for uid, (_, later) in zip(uids, MESSAGES, strict=True):
        if later is not None:
            typ, _ = client.uid("STORE", str(uid), "FLAGS", f"({' '.join(sorted(later))})")
            assert typ == "OK"
    client.logout()


def same(source_endpoint: Endpoint, source_name, target_endpoint: Endpoint, target_name) -> bool:
    return snapshot(source_endpoint, source_name) == snapshot(target_endpoint, target_name)


def test_a_delta_after_a_prestage_sets_the_flags_changed_on_the_source(
    dovecot_a, dovecot_b, dovecot_user, copy_settings, round_trips
):
    mailbox, source, target, uids = imap_mailbox(dovecot_a, dovecot_b, dovecot_user)
    prestage = run_pass(mailbox, "prestage", older_than_days=1)
    assert (prestage.state, prestage.items_copied) == ("done", len(MESSAGES) + 1)
    change_flags_over_imap(source, uids)
    source.load("INBOX", [RawMessage(message("New", "arrived during the week"), frozenset())])
    assert not same(source.endpoint(), source.name, target.endpoint(), target.name)

    delta = run_pass(mailbox, "delta")
    assert (delta.state, delta.items_copied, delta.items_failed) == ("done", 1, 0), delta.error
    assert delta.items_updated == mailbox.items_updated == CHANGED
    assert same(source.endpoint(), source.name, target.endpoint(), target.name)
    assert CopiedItem.objects.filter(mailbox=mailbox).count() == len(MESSAGES) + 2
    # One STORE per distinct flag set (two messages end up just \Flagged), in one round trip.
    stores = [trip for trip in round_trips if any("UID STORE" in c for c in trip)]
    flag_sets = {frozenset(later) for _, later in MESSAGES if later is not None}
    assert len(stores) == 1 and len(stores[0]) == len(flag_sets) == CHANGED - 1

    round_trips.clear()
    unchanged = run_pass(mailbox, "delta")
    assert (unchanged.items_total, unchanged.items_copied, unchanged.items_updated) == (0, 0, 0)
    sent = [command for trip in round_trips for command in trip]
    assert not [c for c in sent if "FETCH" in c or "UID STORE" in c or c.startswith("SELECT")]
    examined = [c for c in sent if c.startswith("EXAMINE")]
    assert len(examined) == len(set(examined)) >= 2, sent  # one per folder, nothing more
    assert same(source.endpoint(), source.name, target.endpoint(), target.name)


def test_a_pass_failing_after_setting_flags_leaves_them_to_the_next_pass(
    dovecot_a, dovecot_b, dovecot_user, copy_settings
):
    mailbox, source, target, uids = imap_mailbox(dovecot_a, dovecot_b, dovecot_user)
    run_pass(mailbox, "full")
    change_flags_over_imap(source, uids)

    # The target drops the connection once it has set flags, before the client hears so, then
    # stays away: the pass fails between setting the flags and recording them.
    before = target.holdings()
    away = ImapProxy(("127.0.0.1", dovecot_b.port), drop_after_stores=True, refuse_after_drop=True)
    away.start()
    try:
        mailbox.project.target.port = away.port
        mailbox.project.target.save()
        crashed = run_pass(mailbox, "delta")
    finally:
        away.stop()
    assert (crashed.state, crashed.items_updated, away.drops) == ("failed", 0, 1)
    assert target.holdings() != before  # flags were set, and the pass never heard so
    mailbox.project.target.port = dovecot_b.port
    mailbox.project.target.save()
    # The watermark stayed: a full pass asks again, sets the same flags again, counts them.
    full = run_pass(mailbox, "full")
    assert (full.state, full.items_copied, full.items_updated) == ("done", 0, CHANGED), full.error
    assert same(source.endpoint(), source.name, target.endpoint(), target.name)


def test_without_condstore_flags_are_not_synced_and_nothing_fails(
    dovecot_a, dovecot_b, dovecot_user, copy_settings, round_trips
):
    mailbox, source, target, uids = imap_mailbox(
        dovecot_a, dovecot_b, dovecot_user, options={"disable": ["CONDSTORE", "QRESYNC"]}
    )
    run_pass(mailbox, "full")
    change_flags_over_imap(source, uids)
    delta = run_pass(mailbox, "delta")
    assert (delta.state, delta.items_copied, delta.items_updated) == ("done", 0, 0), delta.error
    assert not any("CHANGEDSINCE" in c or "UID STORE" in c for trip in round_trips for c in trip)
    target_flags = {flags for (_, flags, _) in snapshot(target.endpoint(), target.name)[("INBOX",)]}
    assert frozenset() in target_flags  # the first message is still unread on the target


# --- maildir -----------------------------------------------------------------------------


def fill_maildir(root: Path) -> MaildirConnector:
    connector = MaildirConnector(Endpoint(kind="maildir", host=str(root)), "src")
    inbox = connector.ensure_folder(("INBOX",), "mail", "inbox")
    items = [
        Item(f"m{i}", m.data, flags=m.flags, received=m.internaldate)
        for i, m in enumerate(raw_messages())
    ]
    connector.store(inbox, items)
    archive = connector.ensure_folder(("Archive",), "mail", None)
    connector.store(archive, [Item("old", message("Old", "untouched"), received=WEEK_AGO)])
    return connector


def change_flags_in_maildir(root: Path) -> None:
    """A mail client renaming files, as maildir readers do; keywords get new letters."""
    cur = root / "src" / "cur"
    keywords_file = root / "src" / "dovecot-keywords"
    keywords = [line.split(" ", 1)[1] for line in keywords_file.read_text().splitlines()]
    keywords += ["$Label1", "Kunde_A"]
    keywords_file.write_text("".join(f"{i} {k}\n" for i, k in enumerate(keywords)))
    letters = {"\\Seen": "S", "\\Flagged": "F", "\\Answered": "R"}
    letters.update({keyword: chr(ord("a") + i) for i, keyword in enumerate(keywords)})
    by_subject = {}
    for name in os.listdir(cur):
        subject = next(
            line for line in (cur / name).read_bytes().split(b"\r\n") if line.startswith(b"Subject")
        )
        by_subject[subject.decode().removeprefix("Subject: Message ")] = name
    for index, (_, later) in enumerate(MESSAGES):
        if later is not None:
            name = by_subject[str(index)]
            info = "".join(sorted(letters[flag] for flag in later))
            os.rename(cur / name, cur / f"{name.split(':')[0]}:2,{info}")


def test_maildir_to_maildir_flags_follow_the_source(tmp_path, copy_settings):
    source, target = tmp_path / "source", tmp_path / "target"
    source.mkdir(), target.mkdir()
    fill_maildir(source)
    endpoints = (
        Endpoint(kind="maildir", host=str(source)),
        Endpoint(kind="maildir", host=str(target)),
    )
    mailbox = make_mailbox(*endpoints, "src", "dst")
    first = run_pass(mailbox, "full")
    assert (first.items_copied, first.items_updated) == (len(MESSAGES) + 1, 0)
    change_flags_in_maildir(source)

    delta = run_pass(mailbox, "delta")
    assert (delta.state, delta.items_copied, delta.items_failed) == ("done", 0, 0), delta.error
    assert delta.items_updated == CHANGED
    assert snapshot(endpoints[0], "src") == snapshot(endpoints[1], "dst")
    assert CopiedItem.objects.filter(mailbox=mailbox).count() == len(MESSAGES) + 1

    unchanged = run_pass(mailbox, "delta")
    assert (unchanged.items_total, unchanged.items_copied, unchanged.items_updated) == (0, 0, 0)
    assert snapshot(endpoints[0], "src") == snapshot(endpoints[1], "dst")
