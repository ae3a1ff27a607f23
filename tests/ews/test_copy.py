"""Folders, EWS to EWS blob copies and mail as MIME, through the real exchangelib."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from exchangelib.protocol import Protocol

from mailboxes.connectors.base import (
    CALENDAR,
    MAIL,
    RFC822,
    SENT,
    ConnectorError,
    Item,
)
from mailboxes.connectors.ews import EWS_FTS, EwsConnector, EwsProtocol
from tests.corpus import corpus_mime
from tests.ews.conftest import ALICE, BOB, CATEGORIES, endpoint


def copy_folder(source, target, folder, format):
    listed = source.changes(folder, {})
    items = source.fetch(folder, [ref.source_id for ref in listed.items], format=format)
    destination = target.ensure_folder(folder.path, folder.kind, folder.role)
    return items, target.store(destination, items)


def test_folder_tree_has_kinds_and_roles(source, source_connector):
    tree = {f.path: (f.kind, f.role, f.count) for f in source_connector.folders()}
    assert source.requests["GetFolder"] + source.requests["FindFolder"] <= 5  # not one per folder

    assert tree[("Inbox",)] == (MAIL, "inbox", 6)
    assert tree[("Inbox", "Projects")] == (MAIL, None, 1)
    assert tree[("Sent Items",)][:2] == (MAIL, "sent")
    assert tree[("Deleted Items",)][:2] == (MAIL, "trash")
    assert tree[("Calendar",)] == ("calendar", "calendar", 1)
    assert tree[("Team Calendar",)] == ("calendar", None, 0)
    assert tree[("Contacts",)][:2] == ("contacts", "contacts")
    assert tree[("Tasks",)][:2] == ("tasks", "tasks")
    assert tree[("Notes",)][:2] == ("notes", "notes")
    assert ("Settings",) not in tree  # IPF.Configuration holds no items we migrate


def test_ensure_folder_maps_roles_and_creates_the_rest_once(target, target_connector):
    sent = target_connector.ensure_folder(("Sent",), MAIL, SENT)
    assert sent.path == ("Sent Items",)
    assert sent.native_id == target.state.folder(BOB, "Sent Items").id

    created = target_connector.ensure_folder(("Team Calendar",), CALENDAR, None)
    again = target_connector.ensure_folder(("Team Calendar",), CALENDAR, None)

    assert again.native_id == created.native_id
    assert target.state.folders[created.native_id].folder_class == "IPF.Appointment"
    assert target.requests["CreateFolder"] == 1


def test_subfolders_of_well_known_folders_land_under_the_targets_own(target, target_connector):
    target.state.folder(BOB, "Inbox").name = "Posteingang"

    projects = target_connector.ensure_folder(("Inbox", "Projects"), MAIL, None)

    assert projects.path == ("Posteingang", "Projects")
    assert (
        target.state.folders[projects.native_id].parent_id
        == target.state.folder(BOB, "Posteingang").id
    )


def test_ews_to_ews_copies_every_item_kind_as_blobs(
    source, target, source_connector, target_connector
):
    copied = 0
    for folder in source_connector.folders():
        if not folder.count:
            continue
        items, results = copy_folder(source_connector, target_connector, folder, EWS_FTS)
        assert all(r.target_id and not r.error for r in results)
        for item, result in zip(items, results, strict=True):
            original = source.state.items[item.source_id]
            copy = target.state.items[result.target_id]
            assert (copy.mime, copy.item_class, copy.is_read) == (
                original.mime,
                original.item_class,
                original.is_read,
            )
            assert copy.received == original.received
            assert copy.extended.get(CATEGORIES) == original.extended.get(CATEGORIES)
            copied += 1

    assert copied == 11
    kinds = {i.item_class for i in target.state.items.values()}
    assert kinds == {"IPM.Note", "IPM.Appointment", "IPM.Contact", "IPM.Task", "IPM.StickyNote"}
    # One export and one upload per folder, not one per item.
    assert source.requests["ExportItems"] == 6
    assert target.requests["UploadItems"] == 6


def test_mail_travels_as_mime_with_read_state_and_date(
    source, target, source_connector, target_connector
):
    inbox = next(f for f in source_connector.folders() if f.role == "inbox")

    items, results = copy_folder(source_connector, target_connector, inbox, RFC822)

    assert [i.data for i in items] == corpus_mime(6)
    for item, result in zip(items, results, strict=True):
        original = source.state.items[item.source_id]
        assert ("\\Seen" in item.flags) == original.is_read
        assert item.received == original.received
        copy = target.state.items[result.target_id]
        assert copy.mime == original.mime
        assert copy.is_read == original.is_read
        assert copy.received == original.received
        assert not copy.is_draft  # PR_MESSAGE_FLAGS set, never MSGFLAG_UNSENT
    assert target.requests["CreateItem"] == 1
    assert source.requests["GetItem"] == 2  # properties and sizes, then the MIME of all six


def test_mail_from_another_protocol_keeps_date_and_read_state(target, target_connector):
    inbox = target_connector.ensure_folder(("INBOX",), MAIL, "inbox")
    messages = corpus_mime(2)
    arrived = datetime(2021, 5, 1, 10, 0, tzinfo=timezone(timedelta(hours=2)))  # as IMAP says it
    items = [
        Item("imap:1", messages[0], flags=frozenset({"\\Seen", "\\Flagged"}), received=arrived),
        Item("imap:2", messages[1], received=arrived.replace(tzinfo=None)),
    ]

    results = target_connector.store(inbox, items)

    first, second = (target.state.items[r.target_id] for r in results)
    assert (first.mime, first.is_read, first.received) == (messages[0], True, arrived)
    assert (second.is_read, second.received) == (False, arrived.replace(tzinfo=UTC))
    assert not first.is_draft and not second.is_draft
    back = target_connector.fetch(inbox, [r.target_id for r in results], format=RFC822)
    assert [i.flags for i in back] == [frozenset({"\\Seen", "\\Flagged"}), frozenset()]


def test_other_kinds_refuse_rfc822(source_connector):
    calendar = next(f for f in source_connector.folders() if f.role == "calendar")
    ids = [r.source_id for r in source_connector.changes(calendar, {}).items]

    with pytest.raises(ConnectorError, match="ews-fts"):
        source_connector.fetch(calendar, ids, format=RFC822)


@pytest.mark.parametrize("format", [EWS_FTS, RFC822])
def test_fingerprints_find_what_was_stored(source_connector, target_connector, format):
    inbox = next(f for f in source_connector.folders() if f.role == "inbox")
    ids = [r.source_id for r in source_connector.changes(inbox, {}).items]
    items = source_connector.fetch(inbox, ids, format=format)
    destination = target_connector.ensure_folder(inbox.path, inbox.kind, inbox.role)
    results = target_connector.store(destination, items + items[:1])  # the first one twice

    found = target_connector.fingerprints(destination)

    assert set(found) == {i.fingerprint for i in items}
    assert sorted(found[items[0].fingerprint]) == sorted(
        [results[0].target_id, results[-1].target_id]
    )
    assert found[items[1].fingerprint] == [results[1].target_id]


def test_a_re_export_with_different_bytes_still_matches_its_copy(
    source, source_connector, target_connector
):
    inbox = next(f for f in source_connector.folders() if f.role == "inbox")
    ids = [r.source_id for r in source_connector.changes(inbox, {}).items]
    first = source_connector.fetch(inbox, ids, format=EWS_FTS)
    destination = target_connector.ensure_folder(inbox.path, inbox.kind, inbox.role)
    results = target_connector.store(destination, first)
    source.state.items[ids[1]].is_read = not source.state.items[ids[1]].is_read

    again = source_connector.fetch(inbox, ids, format=EWS_FTS)

    assert again[1].data != first[1].data
    found = target_connector.fingerprints(destination)
    assert [found[i.fingerprint] for i in again] == [[r.target_id] for r in results]


@pytest.mark.parametrize(
    ("format", "operation", "requests"),
    [(EWS_FTS, "ExportItems", 2), (RFC822, "GetItem", 3)],  # GetItem: once more for sizes
)
def test_huge_items_travel_in_smaller_batches(
    source, source_connector, format, operation, requests
):
    folder = source.state.add_folder(ALICE, "", "Scans", "IPF.Note")
    for n in range(3):
        size = 7_000_000 if n < 2 else 1000
        source.state.add_item(folder, b"Subject: scan\r\n\r\n" + bytes([65 + n]) * size)
    scans = next(f for f in source_connector.folders() if f.path == ("Scans",))
    ids = [r.source_id for r in source_connector.changes(scans, {}).items]

    items = source_connector.fetch(scans, ids, format=format)

    assert [i.source_id for i in items] == ids
    assert source.requests[operation] == requests  # 7 MB alone, then 7 MB with the small one


def test_many_items_go_in_batches(source, target, source_connector, target_connector):
    folder = source.state.add_folder(ALICE, "", "Bulk", "IPF.Note")
    for n in range(120):
        source.state.add_item(folder, b"Subject: %d\r\n\r\nbody\r\n" % n)
    bulk = next(f for f in source_connector.folders() if f.path == ("Bulk",))

    items, results = copy_folder(source_connector, target_connector, bulk, EWS_FTS)

    assert len(results) == 120 and all(r.target_id for r in results)
    assert source.requests["ExportItems"] == 3  # 50 per request
    assert source.requests["SyncFolderItems"] == 1
    assert target.requests["UploadItems"] == 3
    assert target.requests["UpdateItem"] == 3  # fingerprints tagged per batch


def test_reading_is_chunked_and_protocol_follows_new_retry_policy(source):
    patient = EwsConnector(endpoint(source, ALICE, options={"max_wait": 30}), ALICE)
    assert patient.account.protocol.retry_policy.max_wait == 30
    assert isinstance(patient.account.protocol, EwsProtocol)

    hasty = EwsConnector(endpoint(source, ALICE, options={"max_wait": 0}), ALICE)
    assert hasty.account.protocol.retry_policy.max_wait == 0

    config = hasty.account.protocol.config
    hasty.close()
    with pytest.raises(KeyError):
        Protocol[config]  # closing forgets the protocol, so nothing reuses its sessions
