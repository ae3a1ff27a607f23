"""The IMAP connector against two real Dovecot servers ("a": "/" separator, UTC; "b": ".",
UTC+05:30). Messages are loaded and checked with plain imaplib clients, never our connector."""

import imaplib
import re
import shutil
import socket
import tempfile
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from mailboxes.connectors import imap as imap_module
from mailboxes.connectors.base import (
    ARCHIVE,
    DRAFTS,
    INBOX,
    JUNK,
    MAIL,
    SENT,
    TRASH,
    AuthError,
    ConnectorError,
    Endpoint,
    Item,
    TransientError,
    fingerprint,
)
from mailboxes.connectors.imap import ImapClient, ImapConnector, parse_internaldate
from tests.corpus import corpus_split
from tests.servers import require_binary
from tests.servers.dovecot import RawMessage, start_dovecot

FLAG_SETS = [
    frozenset(),
    frozenset({"\\Seen"}),
    frozenset({"\\Seen", "\\Flagged", "$Forwarded"}),
    frozenset({"\\Answered", "$Label1", "ProjectX"}),
    frozenset({"\\Draft", "$MDNSent", "NonJunk"}),
]
OFFSETS = [timedelta(0), timedelta(hours=2), timedelta(hours=-7), timedelta(hours=5, minutes=30)]


def raw_corpus() -> list[RawMessage]:
    messages = []
    for index, (_, data) in enumerate(corpus_split()):
        offset = OFFSETS[index % len(OFFSETS)]
        when = datetime(2019, 1, 1, 8, 30, 15, tzinfo=timezone(offset)) + timedelta(days=index)
        messages.append(RawMessage(data, FLAG_SETS[index % len(FLAG_SETS)], when))
    return messages


def read_back(user, mailbox: str) -> list[tuple[bytes, frozenset, datetime]]:
    """What the server holds, read with imaplib: (bytes, flags, INTERNALDATE) in UID order."""
    client = user.server.client(user.name, user.password)
    try:
        typ, _ = client.select(f'"{mailbox}"', readonly=True)
        assert typ == "OK"
        typ, data = client.uid("FETCH", "1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
        assert typ == "OK"
    finally:
        client.logout()
    found = []
    for entry in data:
        if not isinstance(entry, tuple):
            continue
        header, body = entry
        flags = frozenset(imaplib.ParseFlags(header)) - {b"\\Recent"}
        when = re.search(rb'INTERNALDATE "([^"]+)"', header).group(1).decode()
        found.append((body, frozenset(f.decode() for f in flags), parse_internaldate(when)))
    return found


def open_imap(user, **changes) -> ImapConnector:
    connector = ImapConnector(user.endpoint(**changes), user.name)
    connector.open()
    return connector


def folder_named(connector: ImapConnector, path: tuple[str, ...]):
    return next(f for f in connector.folders() if f.path == path)


@pytest.fixture
def commands(monkeypatch):
    """Every command line our client sends, to see how many round trips a call costs."""
    sent = []
    original = ImapClient._send

    def recording(self, tag, parts, literal_plus):
        sent.append("".join(p for p in parts if isinstance(p, str)))
        return original(self, tag, parts, literal_plus)

    monkeypatch.setattr(ImapClient, "_send", recording)
    return sent


def test_corpus_round_trips_byte_identical_with_flags_and_dates(dovecot_a, dovecot_b, dovecot_user):
    source, target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
    originals = raw_corpus()
    # Byte-identical duplicates and a message without Message-ID stored twice must both land.
    originals += [originals[0], originals[3]]
    source.load("INBOX", originals)
    assert len(originals) > 100

    with open_imap(source) as src, open_imap(target) as dst:
        inbox = folder_named(src, ("INBOX",))
        listed = src.changes(inbox, {})
        assert len(listed.items) == len(originals)
        assert [ref.size for ref in listed.items] == [len(m.data) for m in originals]
        ids = [ref.source_id for ref in listed.items]
        items = []
        for start in range(0, len(ids), 40):
            items += src.fetch(inbox, ids[start : start + 40])
        assert [item.data for item in items] == [m.data for m in originals]
        target_inbox = dst.ensure_folder(("INBOX",), MAIL, INBOX)
        results = []
        for start in range(0, len(items), 40):
            results += dst.store(target_inbox, items[start : start + 40])

    assert [r.error for r in results] == [""] * len(originals)
    assert len({r.target_id for r in results}) == len(originals)
    stored = read_back(target, "INBOX")
    assert [body for body, _, _ in stored] == [m.data for m in originals]
    assert [flags for _, flags, _ in stored] == [m.flags for m in originals]
    ist = timedelta(hours=5, minutes=30)
    for (_, _, when), message in zip(stored, originals, strict=True):
        assert when == message.internaldate  # the same instant...
        assert when.utcoffset() == ist  # ...told in the target server's own zone
    # Reading never marks the source as read.
    assert [flags for _, flags, _ in read_back(source, "INBOX")] == [m.flags for m in originals]


def test_messages_sharing_a_message_id_or_lacking_one_are_all_kept(
    dovecot_a, dovecot_b, dovecot_user, monkeypatch
):
    # One message per UID FETCH when reading the target back: chunking must not lose any.
    monkeypatch.setattr(imap_module, "FETCH_CHUNK_BYTES", 1)
    source, target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
    header = b"Message-ID: <same@example.org>\r\nSubject: %d\r\n\r\nbody %d\r\n"
    messages = [RawMessage(header % (n, n)) for n in range(3)]
    messages += [RawMessage(b"Subject: no id\r\n\r\nx\r\n")] * 2
    source.load("INBOX", messages)
    with open_imap(source) as src, open_imap(target) as dst:
        inbox = folder_named(src, ("INBOX",))
        items = src.fetch(inbox, [ref.source_id for ref in src.changes(inbox, {}).items])
        target_inbox = dst.ensure_folder(("INBOX",), MAIL, INBOX)
        dst.store(target_inbox, items)
        held = dst.fingerprints(target_inbox)
    assert [body for body, _, _ in read_back(target, "INBOX")] == [m.data for m in messages]
    assert len(held[fingerprint(messages[3].data)]) == 2  # duplicates keep two target ids
    assert sum(len(ids) for ids in held.values()) == 5


ODD_NAMES = [
    ("R&D",),
    ("v1.2 notes",),
    ("[Gmail]", "All Mail"),
    ("#channel",),
    ("O'Brien's mail",),
    ("Überweisungen", "日本語", "café ☕"),
    ("a/b",),
    ("Kunden", "Müller & Söhne", "2024.Q1"),
]


@pytest.mark.parametrize("server", ["a", "b"])
def test_odd_folder_names_round_trip(server, dovecot_pair, dovecot_user):
    user = dovecot_user(dovecot_pair[0] if server == "a" else dovecot_pair[1])
    with open_imap(user) as imap:
        created = [imap.ensure_folder(path, MAIL, None) for path in ODD_NAMES]
        assert [f.path for f in created] == ODD_NAMES
        again = [imap.ensure_folder(path, MAIL, None) for path in ODD_NAMES]
        assert [f.native_id for f in again] == [f.native_id for f in created]
    with open_imap(user) as fresh:
        listed = {f.path: f for f in fresh.folders()}
    for path in ODD_NAMES:
        assert path in listed
    # Parents that exist only as containers (\Noselect) are not folders; their children are.
    assert ("[Gmail]",) not in listed and ("Kunden",) not in listed
    # The server's own listing: real hierarchy, modified UTF-7, separator lookalikes.
    client = user.server.client(user.name, user.password)
    names = {re.sub(r'^\(.*?\) ".*?" ', "", line.decode()).strip('"') for line in client.list()[1]}
    client.logout()
    if server == "a":
        assert {"a&,w8-b", "v1.2 notes", "Kunden/M&APw-ller &- S&APY-hne/2024.Q1"} <= names
        assert "&ANw-berweisungen/&ZeVnLIqe-" in names
    else:
        assert {"a/b", "v1&,w4-2 notes", "Kunden.M&APw-ller &- S&APY-hne.2024&,w4-Q1"} <= names
        assert "&ANw-berweisungen.&ZeVnLIqe-" in names


def test_a_nested_folder_keeps_its_path_across_separators(dovecot_a, dovecot_b, dovecot_user):
    source, target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
    source.load("Projects/2024/Q1", [RawMessage(b"Subject: q1\r\n\r\nq1\r\n")])
    with open_imap(source) as src, open_imap(target) as dst:
        folder = folder_named(src, ("Projects", "2024", "Q1"))
        assert folder.native_id == "Projects/2024/Q1" and folder.count == 1
        copy = dst.ensure_folder(folder.path, MAIL, folder.role)
        assert copy.native_id == "Projects.2024.Q1"
        ids = [ref.source_id for ref in src.changes(folder, {}).items]
        (result,) = dst.store(copy, src.fetch(folder, ids))
    assert result.target_id and not result.error
    assert read_back(target, "Projects.2024.Q1")[0][0] == b"Subject: q1\r\n\r\nq1\r\n"


def test_special_use_folders_have_roles_and_map_onto_the_targets_own(dovecot_b, dovecot_user):
    user = dovecot_user(dovecot_b)
    with open_imap(user) as imap:
        roles = {f.native_id: f.role for f in imap.folders()}
        assert roles == {
            "INBOX": INBOX,
            "Sent": SENT,
            "Trash": TRASH,
            "Drafts": DRAFTS,
            "Junk": JUNK,
            "Archive": ARCHIVE,
        }
        mapped = {
            role: imap.ensure_folder((name,), MAIL, role).native_id
            for name, role in [
                ("Sent Items", SENT),
                ("Deleted Items", TRASH),
                ("Junk E-mail", JUNK),
                ("Brouillons", DRAFTS),
                ("Archives", ARCHIVE),
                ("Inbox", INBOX),
            ]
        }
        assert mapped == {
            SENT: "Sent",
            TRASH: "Trash",
            JUNK: "Junk",
            DRAFTS: "Drafts",
            ARCHIVE: "Archive",
            INBOX: "INBOX",
        }
        # No folder was created for them.
        assert len(imap.folders()) == 6


@pytest.fixture(scope="module")
def dovecot_without_special_use():
    require_binary("dovecot", "dovecot-imapd")
    root = Path(tempfile.mkdtemp(prefix="mailferry-dovecot-plain-"))
    server = start_dovecot(root, "plain", special_use={})
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


def test_a_missing_role_folder_is_created_once_under_its_usual_name(
    dovecot_without_special_use, dovecot_user
):
    user = dovecot_user(dovecot_without_special_use)
    with open_imap(user) as imap:
        assert [f.path for f in imap.folders()] == [("INBOX",)]
        created = imap.ensure_folder(("Sent Items",), MAIL, SENT)
        again = imap.ensure_folder(("Gesendete Objekte",), MAIL, SENT)
        listed = imap.folders()
    assert created.native_id == again.native_id == "Sent"
    assert {(f.native_id, f.role) for f in listed} == {("INBOX", INBOX), ("Sent", SENT)}


def test_unchanged_folder_is_answered_without_listing(dovecot_a, dovecot_user, commands):
    user = dovecot_user(dovecot_a)
    user.load("INBOX", [RawMessage(b"Subject: 1\r\n\r\n1\r\n")])
    with open_imap(user) as imap:
        inbox = folder_named(imap, ("INBOX",))
        first = imap.changes(inbox, {})
        assert len(first.items) == 1 and first.state["highestmodseq"]
        commands.clear()
        unchanged = imap.changes(inbox, first.state)
        assert unchanged.items == [] and not unchanged.reset
        assert unchanged.state == first.state
        assert not any("FETCH" in c or "SEARCH" in c for c in commands), commands

        user.load("INBOX", [RawMessage(b"Subject: 2\r\n\r\n2\r\n")])
        commands.clear()
        later = imap.changes(inbox, unchanged.state)
        assert [c.split(" (")[0] for c in commands] == ['EXAMINE "INBOX"', "UID FETCH 2:*"]
    assert [ref.source_id.split(":")[1] for ref in later.items] == ["2"]
    assert later.state["uidnext"] == 3
    assert later.state["highestmodseq"] > first.state["highestmodseq"]


def test_before_limits_to_older_messages_and_leaves_the_rest_for_later(dovecot_a, dovecot_user):
    user = dovecot_user(dovecot_a)
    cutoff = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    dates = [
        cutoff - timedelta(days=30),
        cutoff + timedelta(minutes=1),
        cutoff - timedelta(minutes=1),
        cutoff + timedelta(days=1),
    ]
    # The same calendar day on both sides of the cutoff: filtering must be exact, not by date.
    user.load(
        "INBOX",
        [RawMessage(b"Subject: %d\r\n\r\n" % n, internaldate=d) for n, d in enumerate(dates)],
    )
    with open_imap(user) as imap:
        inbox = folder_named(imap, ("INBOX",))
        prestage = imap.changes(inbox, {}, before=cutoff)
        assert [ref.source_id.split(":")[1] for ref in prestage.items] == ["1", "3"]
        assert all(ref.received < cutoff for ref in prestage.items)
        delta = imap.changes(inbox, prestage.state)
    # The delta pass sees what pre-stage left (the engine skips what it copied already).
    assert [ref.source_id.split(":")[1] for ref in delta.items] == ["2", "3", "4"]
    assert delta.state["uidnext"] == 5


def test_a_new_uidvalidity_resets_the_watermark(dovecot_a, dovecot_user):
    user = dovecot_user(dovecot_a)
    user.load("Box", [RawMessage(b"Subject: old\r\n\r\nold\r\n")])
    with open_imap(user) as imap:
        box = folder_named(imap, ("Box",))
        state = imap.changes(box, {}).state
    client = user.server.client(user.name, user.password)
    assert client.delete("Box")[0] == "OK"
    client.logout()
    user.load("Box", [RawMessage(b"Subject: new %d\r\n\r\n" % n) for n in range(2)])
    with open_imap(user) as imap:
        box = folder_named(imap, ("Box",))
        changes = imap.changes(box, state)
        with pytest.raises(ConnectorError, match="reset"):
            imap.fetch(box, [f"{state['uidvalidity']}:1"])
    assert changes.reset
    assert changes.state["uidvalidity"] != state["uidvalidity"]
    assert len(changes.items) == 2


@pytest.mark.parametrize(
    "options", [{}, {"disable": ["MULTIAPPEND"]}, {"disable": ["MULTIAPPEND", "LITERAL+"]}]
)
def test_a_too_large_message_fails_alone(options, dovecot_b, dovecot_user, commands):
    user = dovecot_user(dovecot_b)
    big = b"Subject: big\r\n\r\n" + b"x" * 76 + b"\r\n"
    big = big * (dovecot_b.max_message_size // len(big) + 10)
    items = [
        Item("s:1", b"Subject: one\r\n\r\n1\r\n", flags=frozenset({"\\Seen"})),
        Item("s:2", big),
        Item("s:3", b"Subject: three\r\n\r\n3\r\n", received=datetime(2021, 3, 4, tzinfo=UTC)),
    ]
    with open_imap(user, options=options) as imap:
        results = imap.store(folder_named(imap, ("INBOX",)), items)
    assert [r.source_id for r in results] == ["s:1", "s:2", "s:3"]
    assert results[1].target_id is None
    assert "size" in results[1].error.lower() and results[1].error_code
    assert results[0].target_id and results[2].target_id
    stored = read_back(user, "INBOX")
    assert [body for body, _, _ in stored] == [items[0].data, items[2].data]
    assert stored[1][2] == datetime(2021, 3, 4, tzinfo=UTC)
    appends = [c for c in commands if c.startswith("APPEND")]
    if not options:
        assert len(appends) == 4  # the MULTIAPPEND, then one APPEND per message
        assert appends[0].count("(") == 3


def test_wrong_password_is_an_auth_error(dovecot_a, dovecot_user):
    user = dovecot_user(dovecot_a)
    connector = ImapConnector(user.server.endpoint(user.name, "not-the-password"), user.name)
    with pytest.raises(AuthError) as raised:
        connector.open()
    assert user.name in str(raised.value)
    assert "not-the-password" not in str(raised.value)


def test_closed_port_is_transient(refused_port):
    endpoint = Endpoint(kind="imap", host="127.0.0.1", port=refused_port, security="plain")
    with pytest.raises(TransientError, match="Cannot connect"):
        ImapConnector(endpoint, "someone").open()


def test_a_server_hanging_up_is_transient():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def greet_and_hang_up():
            connection, _ = listener.accept()
            connection.sendall(b"* OK ready\r\n")
            connection.close()

        thread = threading.Thread(target=greet_and_hang_up)
        thread.start()
        endpoint = Endpoint(
            kind="imap", host="127.0.0.1", port=listener.getsockname()[1], security="plain"
        )
        with pytest.raises(TransientError, match="lost"):
            ImapConnector(endpoint, "someone").open()
        thread.join()


def test_a_silent_server_times_out_as_transient():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        endpoint = Endpoint(
            kind="imap", host="127.0.0.1", port=port, security="plain", options={"timeout": 0.3}
        )
        with pytest.raises(TransientError, match="lost"):
            ImapConnector(endpoint, "someone").open()


def test_master_user_acts_for_the_mailbox_with_plain_authzid(dovecot_b, dovecot_user):
    user = dovecot_user(dovecot_b)
    user.load("INBOX", [RawMessage(b"Subject: mine\r\n\r\nmine\r\n")])
    with ImapConnector(dovecot_b.master_endpoint(), user.name) as imap:
        inbox = folder_named(imap, ("INBOX",))
        assert inbox.count == 1
        item = imap.fetch(inbox, [imap.changes(inbox, {}).items[0].source_id])[0]
    assert item.data == b"Subject: mine\r\n\r\nmine\r\n"
    wrong = dovecot_b.master_endpoint(password="wrong")
    with pytest.raises(AuthError, match=f"admin acting for {user.name}"):
        ImapConnector(wrong, user.name).open()


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_tls_and_starttls(security, dovecot_a, dovecot_user):
    user = dovecot_user(dovecot_a)
    with open_imap(user, security=security) as imap:
        assert {f.path for f in imap.folders()} >= {("INBOX",), ("Sent",)}
    untrusted = ImapConnector(user.endpoint(security=security, verify_tls=True), user.name)
    with pytest.raises(ConnectorError, match="certificate") as raised:
        untrusted.open()
    assert not isinstance(raised.value, TransientError)


BARE_IMAP4 = [
    "SASL-IR",
    "AUTH=PLAIN",
    "LITERAL+",
    "MULTIAPPEND",
    "LIST-EXTENDED",
    "LIST-STATUS",
    "STATUS=SIZE",
    "NAMESPACE",
    "CONDSTORE",
]


def test_a_server_without_extensions_still_works(dovecot_a, dovecot_b, dovecot_user):
    source, target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
    messages = [RawMessage(b"Subject: %d\r\n\r\n%d\r\n" % (n, n), FLAG_SETS[n]) for n in range(3)]
    source.load("Sent", messages)
    bare = {"disable": BARE_IMAP4}
    with open_imap(source, options=bare) as src, open_imap(target, options=bare) as dst:
        assert "LITERAL+" not in src.client.capabilities
        sent = next(f for f in src.folders() if f.role == SENT)
        assert (sent.native_id, sent.count) == ("Sent", 3)
        changes = src.changes(sent, {})
        assert changes.state["highestmodseq"] is None
        items = src.fetch(sent, [ref.source_id for ref in changes.items])
        results = dst.store(dst.ensure_folder(("Sent Items",), MAIL, SENT), items)
        assert src.changes(sent, changes.state).items == []
    assert all(r.target_id and not r.error for r in results)
    stored = read_back(target, "Sent")
    assert [(body, flags) for body, flags, _ in stored] == [(m.data, m.flags) for m in messages]


@pytest.mark.parametrize(
    "line",
    [
        "12 FETCH (UID 40 RFC822.SIZE 2291)",
        "3 FETCH (FLAGS (\\Seen $Forwarded) UID 9 MODSEQ (12345))",
        "1 FETCH (UID 1 FLAGS ())",
        "STATUS INBOX (MESSAGES 3 UIDNEXT 4 UIDVALIDITY 1700000000)",
        "CAPABILITY IMAP4rev1 LITERAL+ nil NIL",
        "SEARCH",
        'LIST (\\HasNoChildren) "." "Sent Items"',
        "5 FETCH (BODY[HEADER.FIELDS (MESSAGE-ID)] NIL)",
    ],
)
def test_the_quick_reading_of_plain_lines_agrees_with_the_tokenizer(line, monkeypatch):
    quick = imap_module.parse([line])
    monkeypatch.setattr(imap_module, "_NEEDS_TOKENIZER", re.compile(r"."))
    assert quick == imap_module.parse([line])


@pytest.mark.parametrize("line", ["1 FETCH (UID 2", "1 FETCH UID 2)"])
def test_unbalanced_lines_are_refused_by_either_reading(line, monkeypatch):
    with pytest.raises(ConnectorError, match="Unbalanced"):
        imap_module.parse([line])
    monkeypatch.setattr(imap_module, "_NEEDS_TOKENIZER", re.compile(r"."))
    with pytest.raises(ConnectorError, match="Unbalanced"):
        imap_module.parse([line])


def test_a_listing_is_read_whatever_the_order_of_its_items():
    """Servers may answer ``(UID RFC822.SIZE)`` in either order and mix in flag updates."""
    reply = imap_module.Reply("OK", "done")
    for line in [
        "1 FETCH (UID 7 RFC822.SIZE 120)",
        "2 FETCH (RFC822.SIZE 3400 UID 9)",
        "3 FETCH (FLAGS (\\Seen) UID 11)",
        "4 fetch (uid 12 rfc822.size 56)",
        "EXISTS 4",
    ]:
        reply.raw.append([line])
    assert imap_module._uid_sizes(reply) == {"7": 120, "9": 3400, "12": 56}
    assert reply.data("FETCH")[0] == ["1", ["UID", "7", "RFC822.SIZE", "120"]]
