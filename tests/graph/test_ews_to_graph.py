"""EWS (exchangelib against the fake EWS server) into Exchange Online (Graph, fake Graph server)."""

from datetime import UTC, datetime

import pytest

from mailboxes.connectors.base import RFC822, Endpoint
from mailboxes.connectors.ews import EwsConnector
from mailboxes.connectors.graph import DELIVERY_TIME, EWS_FTS
from tests.graph.conftest import ALICE

# Each Graph request takes its turn in the mailbox budget, kept in the database here.
pytestmark = pytest.mark.django_db(transaction=True)


def test_every_kind_moves_from_ews_to_graph_in_the_shared_fts_format(
    ews_source, graph_server, connect
):
    box = graph_server.add_user("alice@cloud.example")
    target = connect("alice@cloud.example")
    with EwsConnector(
        Endpoint("ews", ews_source.url, username=ALICE, secret="secret"), ALICE
    ) as src:
        for folder in [f for f in src.folders() if f.count]:
            destination = target.ensure_folder(folder.path, folder.kind, folder.role)
            ids = [ref.source_id for ref in src.changes(folder, {}).items]
            items = src.fetch(folder, ids, EWS_FTS)
            results = target.store(destination, items)

            landed = box.folder(destination.native_id).items
            assert sorted(landed[r.target_id].data for r in results) == sorted(
                i.data for i in items
            )
            assert destination.kind == folder.kind
            # Each copy kept its source item's PR_SEARCH_KEY: recovery and deep verification
            # pair them without a stamp.
            source_keys, kept = src.recovery_keys(folder), target.recovery_keys(destination)
            assert len(set(source_keys.values())) == len(items)
            assert all(
                kept[r.target_id] == source_keys[i.source_id]
                for i, r in zip(items, results, strict=True)
            )

    assert {f.role: f.count for f in target.folders() if f.count} == {
        "inbox": 24,
        "calendar": 1,
        "contacts": 1,
        "tasks": 1,
        "notes": 1,
    }
    assert graph_server.counts["importItem"] == 28
    # One request an item: no stamp, no $batch.
    assert graph_server.counts["batch"] == 0
    assert not [name for name in graph_server.counts if name.endswith(".patch")]


def test_ews_mail_as_mime_keeps_read_state_and_received_date(ews_source, graph_server, connect):
    box = graph_server.add_user("alice@cloud.example")
    target = connect("alice@cloud.example")
    with EwsConnector(
        Endpoint("ews", ews_source.url, username=ALICE, secret="secret"), ALICE
    ) as src:
        inbox = next(f for f in src.folders() if f.role == "inbox")
        items = src.fetch(inbox, [r.source_id for r in src.changes(inbox, {}).items], RFC822)
    destination = target.ensure_folder(inbox.path, inbox.kind, inbox.role)

    results = target.store(destination, items)

    stored = box.folder("inbox").items
    for item, result in zip(items, results, strict=True):
        landed = stored[result.target_id]
        assert landed.mime == item.data
        assert landed.is_read == ("\\Seen" in item.flags)
        received = datetime.fromtimestamp(item.received.timestamp(), UTC)
        assert landed.properties[DELIVERY_TIME] == received.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert sum(stored[r.target_id].is_read for r in results) == 12
