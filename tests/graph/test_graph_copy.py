"""Copies into Exchange Online through the Graph connector, checked on the server's side."""

import math

import pytest

from mailboxes.connectors.base import (
    CALENDAR,
    CONTACTS,
    MAIL,
    NOTES,
    RFC822,
    TASKS,
    ConnectorError,
    Item,
)
from mailboxes.connectors.graph import DELIVERY_TIME, EWS_FTS, FINGERPRINT, GRAPH_FTS
from tests.graph.seed import SEED, corpus_items, seed

# Each Graph request takes its turn in the mailbox budget, kept in the database here.
pytestmark = pytest.mark.django_db(transaction=True)


def copy_mailbox(source, target):
    """The engine's calls, folder by folder: folders, ensure_folder, changes, fetch, store."""
    fetch_calls = 0
    for folder in source.folders():
        if not folder.count:
            continue
        destination = target.ensure_folder(folder.path, folder.kind, folder.role)
        changes = source.changes(folder, {})
        ids = [ref.source_id for ref in changes.items]
        items = source.fetch(folder, ids, GRAPH_FTS)
        fetch_calls += math.ceil(len(ids) / 20)
        results = target.store(destination, items)
        assert all(r.target_id and not r.error for r in results), results
    return fetch_calls


def test_graph_to_graph_copies_every_kind_in_full_fidelity(graph_server, connect):
    source_box = graph_server.add_user("ann@source.example")
    target_box = graph_server.add_user("ann@target.example")
    seed(source_box)
    source, target = connect("ann@source.example"), connect("ann@target.example")

    expected_exports = copy_mailbox(source, target)

    total = sum(len(f.items) for f in source_box.folders.values())
    assert total == 60
    for name, message_class, count in SEED:
        copied = target_box.folder(name).items.values()
        original = source_box.folder(name).items.values()
        assert sorted(i.content for i in copied) == sorted(i.content for i in original)
        assert {i.type for i in copied} == {message_class}
        assert sum(i.is_read for i in copied) == math.ceil(count / 2)
    nested = [f for f in target.folders() if f.path == ("Projects", "2024")]
    assert len(nested) == 1 and nested[0].count == 1
    kinds = {f.role: f.kind for f in target.folders() if f.role}
    assert kinds["calendar"] == CALENDAR and kinds["contacts"] == CONTACTS
    assert kinds["tasks"] == TASKS and kinds["notes"] == NOTES and kinds["inbox"] == MAIL
    # 20 ids per exportItems; one import POST per item (the API takes one), and nothing more:
    # each copy keeps its source item's PR_SEARCH_KEY, so no stamp is needed to find it.
    assert graph_server.counts["exportItems"] == expected_exports == 3 + 1 + 1 + 1 + 1 + 1 + 1
    assert graph_server.counts["importItem"] == total
    assert graph_server.counts["createImportSession"] == 1
    patches = [name for name in graph_server.counts if name.endswith(".patch")]
    assert patches == [] and graph_server.counts["batch"] == 0
    for name, _, _ in SEED:
        copied = target_box.folder(name).items.values()
        assert not any(FINGERPRINT in i.properties for i in copied)
    source_keys = {
        folder: set(keys.values())
        for folder, keys in _keys_by_folder(source, source.folders()).items()
    }
    target_keys = {
        folder: set(keys.values())
        for folder, keys in _keys_by_folder(target, target.folders()).items()
    }
    assert target_keys == source_keys and len(set().union(*target_keys.values())) == total


def _keys_by_folder(connector, folders):
    return {f.path: connector.recovery_keys(f) for f in folders if f.count}


def test_imports_are_found_by_the_key_they_kept_or_the_stamp_on_mime(graph_server, connect):
    """Exported items, imported, are found by the PR_SEARCH_KEY their copies keep; MIME
    messages (from IMAP, maildir, Gmail) by the fingerprint their update stamps on them."""
    source_box = graph_server.add_user("bo@source.example")
    graph_server.add_user("bo@target.example")
    for n in range(12):
        source_box.add_item("inbox", "IPM.Note", f"message {n}".encode())
    source, target = connect("bo@source.example"), connect("bo@target.example")
    inbox = next(f for f in source.folders() if f.role == "inbox")
    exported = source.fetch(inbox, [r.source_id for r in source.changes(inbox, {}).items])
    mime = corpus_items()[:13]
    target_inbox = target.ensure_folder(inbox.path, inbox.kind, inbox.role)

    results = target.store(target_inbox, exported + mime)

    assert graph_server.counts["messages.patch"] == 13
    assert target.fingerprints(target_inbox) == {
        item.fingerprint: [r.target_id] for item, r in zip(mime, results[12:], strict=True)
    }
    source_keys, target_keys = source.recovery_keys(inbox), target.recovery_keys(target_inbox)
    assert all(
        target_keys[r.target_id] == source_keys[item.source_id]
        for item, r in zip(exported, results[:12], strict=True)
    )


def test_imap_messages_import_as_mime_with_read_state_and_dates(graph_server, connect):
    box = graph_server.add_user("cy@target.example")
    target = connect("cy@target.example")
    items = corpus_items()
    assert len(items) == 25
    archive = target.ensure_folder(("Old", "2019"), MAIL, None)

    results = target.store(archive, items)

    assert all(r.target_id and not r.error for r in results), results
    stored = box.folder(archive.native_id).items
    for item, result in zip(items, results, strict=True):
        landed = stored[result.target_id]
        assert landed.mime == item.data
        assert landed.is_read == ("\\Seen" in item.flags)
        assert landed.flagged == ("\\Flagged" in item.flags)
        assert landed.properties[DELIVERY_TIME] == item.received.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert graph_server.counts["importMime"] == 25
    assert graph_server.counts["messages.patch"] == 25
    assert graph_server.counts["batch"] == 2 * math.ceil(25 / 20)


def test_sent_items_of_imap_land_in_the_targets_sent_items(graph_server, connect):
    graph_server.add_user("dee@target.example")
    target = connect("dee@target.example")

    sent = target.ensure_folder(("Sent",), MAIL, None)
    sub = target.ensure_folder(("Sent", "Customers"), MAIL, None)

    assert sent.role == "sent" and sent.path == ("Sent Items",)
    assert sub.path == ("Sent Items", "Customers")


def test_ews_export_streams_import_unchanged(graph_server, connect):
    """EWS ExportItems data is the same FastTransfer stream: it is imported as it is."""
    box = graph_server.add_user("eve@target.example")
    target = connect("eve@target.example")
    calendar = target.ensure_folder(("Calendar",), CALENDAR, "calendar")
    blob = b"\x01\x00\x00\x00\x08\x00\x00\x00opaque EWS export stream"

    [result] = target.store(calendar, [Item("ews-1", blob, EWS_FTS, kind=CALENDAR)])

    assert box.folder("calendar").items[result.target_id].data == blob


def test_mime_is_refused_for_non_mail_folders(graph_server, connect):
    graph_server.add_user("fay@target.example")
    target = connect("fay@target.example")
    contacts = target.ensure_folder(("Contacts",), CONTACTS, "contacts")

    [result] = target.store(contacts, [Item("1:1", b"Subject: x\r\n\r\nx", RFC822)])

    assert result.target_id is None and "contacts" in result.error
    assert graph_server.counts["importMime"] == 0


def test_mail_leaves_as_mime_with_its_flags_and_date(graph_server, connect):
    """Graph to IMAP/maildir: the engine asks for RFC 822, the message's $value."""
    graph_server.add_user("gil@example.org")
    connector = connect("gil@example.org")
    inbox = connector.ensure_folder(("Inbox",), MAIL, "inbox")
    items = corpus_items()
    connector.store(inbox, items)
    ids = [ref.source_id for ref in connector.changes(inbox, {}).items]

    fetched = connector.fetch(inbox, ids, RFC822)

    # Two $batch requests import concurrently: the listing order is the server's, not ours.
    assert sorted(
        (i.data, i.flags & {"\\Seen", "\\Flagged"}, i.received) for i in fetched
    ) == sorted((i.data, i.flags, i.received) for i in items)
    assert graph_server.counts["messages.value"] == 25
    assert graph_server.counts["batch"] == 2 + 2 + math.ceil(50 / 20)


def test_mail_graph_cannot_hand_over_is_an_error_item_and_gone_mail_is_gone(graph_server, connect):
    box = graph_server.add_user("hal@example.org")
    for n in range(3):
        box.add_item("inbox", "IPM.Note", f"Subject: {n}\r\n\r\nbody {n}\r\n".encode())
    connector = connect("hal@example.org")
    inbox = next(f for f in connector.folders() if f.role == "inbox")
    ids = [ref.source_id for ref in connector.changes(inbox, {}).items]
    box.delete_item(box.folder("inbox"), ids[2])
    graph_server.refuse("messages.value", 500, "ErrorCorruptData", "The item is corrupt.")

    fetched = {item.source_id: item for item in connector.fetch(inbox, ids, RFC822)}

    assert set(fetched) == set(ids[:2])  # the deleted one (404) is gone, the other two not
    failed = [item for item in fetched.values() if item.error]
    assert len(failed) == 1
    assert (failed[0].error, failed[0].error_code) == ("The item is corrupt.", "ErrorCorruptData")
    assert failed[0].data == b""


def test_non_mail_items_do_not_leave_as_mime(graph_server, connect):
    box = graph_server.add_user("hal@example.org")
    box.add_item("calendar", "IPM.Appointment", b"BEGIN:VCALENDAR")
    connector = connect("hal@example.org")
    calendar = next(f for f in connector.folders() if f.role == "calendar")

    with pytest.raises(ConnectorError, match="cannot export calendar items as 'rfc822'"):
        connector.fetch(
            calendar, [r.source_id for r in connector.changes(calendar, {}).items], RFC822
        )


def test_mime_import_needs_the_beta_endpoint(graph_server, connect):
    graph_server.add_user("ivy@example.org")
    target = connect("ivy@example.org")
    v1 = connect("ivy@example.org")
    v1.base_url = f"{graph_server.url}/v1.0"
    inbox = target.ensure_folder(("Inbox",), MAIL, "inbox")

    [on_v1] = v1.store(inbox, [Item("1:1", b"Subject: x\r\n\r\nx\r\n", RFC822)])
    [on_beta] = target.store(inbox, [Item("1:1", b"Subject: x\r\n\r\nx\r\n", RFC822)])

    assert on_v1.target_id is None and on_v1.error_code == "BadRequest"
    assert on_beta.target_id and not on_beta.error


def test_a_mail_folder_never_lands_in_a_calendar_of_the_same_name(graph_server, connect):
    graph_server.add_user("jo@example.org")
    target = connect("jo@example.org")

    with pytest.raises(ConnectorError, match="Calendar already exists .* as a calendar folder"):
        target.ensure_folder(("Calendar",), MAIL, None)


@pytest.mark.parametrize("concurrency", [1, 3])
def test_exports_run_concurrently_within_the_tenants_limit(graph_server, connect, concurrency):
    box = graph_server.add_user("kim@example.org")
    for n in range(200):
        box.add_item("inbox", "IPM.Note", f"message {n}".encode())
    connector = connect("kim@example.org", concurrency=concurrency)
    inbox = next(f for f in connector.folders() if f.role == "inbox")
    ids = [ref.source_id for ref in connector.changes(inbox, {}).items]
    graph_server.max_in_flight, graph_server.latency = 0, 0.05

    assert len(connector.fetch(inbox, ids)) == 200

    assert graph_server.counts["exportItems"] == 10
    assert graph_server.max_in_flight == concurrency
