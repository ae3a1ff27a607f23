"""What a mailbox holds, read through a connector, to compare a source with its copy."""

from collections import Counter

from mailboxes.connectors import open_connector


def snapshot(endpoint, address, rename=None) -> dict:
    """{folder path: Counter of (bytes, flags, INTERNALDATE instant)} of every folder.

    ``rename`` maps a path to the one expected on the other side (role folders)."""
    rename = rename or {}
    result = {}
    with open_connector(endpoint, address) as connector:
        for folder in connector.folders():
            ids = [ref.source_id for ref in connector.changes(folder, {}).items]
            items = connector.fetch(folder, ids) if ids else []
            result[rename.get(folder.path, folder.path)] = Counter(
                (item.data, frozenset(item.flags), item.received.timestamp()) for item in items
            )
    return result


def total(snap: dict) -> int:
    return sum(sum(counter.values()) for counter in snap.values())
