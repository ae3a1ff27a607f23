"""EWS copy throughput against the wire-level test server: `make bench-ews`.

Copies one folder EWS to EWS (ExportItems -> UploadItems) and as MIME (GetItem -> CreateItem),
once with exchangelib's stock response reading (1-byte chunks) and once with the connector's
64 KB reads, and prints items/s and MB/s for each. Options: --items N --size BYTES.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exchangelib.protocol import Protocol  # noqa: E402

from mailboxes.connectors.base import RFC822, Endpoint  # noqa: E402
from mailboxes.connectors.ews import EWS_FTS, EwsConnector  # noqa: E402
from tests.servers.ews_server import start_ews_server  # noqa: E402

SOURCE, TARGET = "alice@bench.test", "bob@bench.test"


class StockReads(EwsConnector):
    """The connector with exchangelib's own Protocol: what we measure the fix against."""

    def _protocol_class(self):
        return Protocol


def populate(server, items: int, size: int):
    server.add_user(SOURCE)
    inbox = server.state.folder(SOURCE, "Inbox")
    filler = (b"Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n" * (size // 58 + 1))[
        :size
    ]
    for n in range(items):
        server.state.add_item(inbox, b"Subject: bench %d\r\n\r\n" % n + filler, is_read=n % 3 == 0)


def run(connector_class, source, target, format):
    endpoint = dict(kind="ews", secret="secret")
    src = connector_class(Endpoint(host=source.url, username=SOURCE, **endpoint), SOURCE)
    dst = connector_class(Endpoint(host=target.url, username=TARGET, **endpoint), TARGET)
    inbox = next(f for f in src.folders() if f.role == "inbox")
    destination = dst.ensure_folder(inbox.path, inbox.kind, inbox.role)
    started = time.perf_counter()
    refs = src.changes(inbox, {}).items
    moved = 0
    for start in range(0, len(refs), 200):  # the engine's batch
        items = src.fetch(inbox, [r.source_id for r in refs[start : start + 200]], format=format)
        results = dst.store(destination, items)
        assert all(r.target_id for r in results), "the benchmark copy failed"
        moved += sum(len(i.data) for i in items)
    seconds = time.perf_counter() - started
    return len(refs), moved, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--size", type=int, default=20_000)
    args = parser.parse_args()
    source = start_ews_server()
    populate(source, args.items, args.size)
    print(f"EWS copy of {args.items} items of {args.size} bytes, loopback test server")
    for label, connector_class in (
        ("stock 1-byte reads", StockReads),
        ("64 KB reads", EwsConnector),
    ):
        for format in (EWS_FTS, RFC822):
            target = start_ews_server()
            target.add_user(TARGET)
            count, moved, seconds = run(connector_class, source, target, format)
            target.stop()
            print(
                f"  {label:<20} {format:<8} {count / seconds:8.1f} items/s "
                f"{moved / seconds / 1e6:7.2f} MB/s  ({seconds:.2f} s)"
            )
    source.stop()


if __name__ == "__main__":
    main()
