"""Graph copy throughput against the loopback Graph test server: `make bench-graph`.

Exports 5,000 mixed items (mail of real corpus sizes, calendar, contacts, tasks, notes) from one
fake mailbox and imports them into another through the connector interface, batch by batch as
the engine does (changes -> fetch -> store). Prints the request mix, then the closing line
``items=N items_per_s=N requests_per_100=N`` (requests: every HTTPS request the server saw,
token and $batch envelopes included). Options: --items N --batch N --concurrency N
--latency SECONDS (added to every request, to see what the per-tenant concurrency buys).
"""

import argparse
import atexit
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def django_with_redis_budgets() -> str:
    """Django set up with a Redis of the benchmark's own as broker, so the connectors keep
    their request budgets in Redis as production does; its URL."""
    from tests.servers.redis import RedisServer

    redis = RedisServer(Path(tempfile.mkdtemp(prefix="mailferry-bench-redis-"))).start()
    atexit.register(redis.stop)
    os.environ["CELERY_BROKER_URL"] = redis.url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "migrator.settings")
    import django

    django.setup()
    return redis.url


if __name__ == "__main__":
    django_with_redis_budgets()

from mailboxes.connectors.base import Endpoint  # noqa: E402
from mailboxes.connectors.graph import GRAPH_FTS, GraphConnector  # noqa: E402
from tests.corpus import corpus_files  # noqa: E402
from tests.servers.graph_server import TENANT_ID, GraphServer  # noqa: E402

# (well-known folder, message class, share of the items)
MIX = [
    ("inbox", "IPM.Note", 0.6),
    ("sentitems", "IPM.Note", 0.15),
    ("calendar", "IPM.Appointment", 0.1),
    ("contacts", "IPM.Contact", 0.08),
    ("tasks", "IPM.Task", 0.04),
    ("notes", "IPM.StickyNote", 0.03),
]


def seed(server: GraphServer, total: int) -> None:
    mailbox = server.add_user("source@bench.test")
    bodies = [p.read_bytes() for p in corpus_files("cpython-test_email", "msg_*.txt")]
    made = 0
    for n, (folder, message_class, share) in enumerate(MIX):
        count = total - made if n == len(MIX) - 1 else round(total * share)
        for i in range(count):
            mailbox.add_item(folder, message_class, bodies[(made + i) % len(bodies)], i % 2 == 0)
        made += count
    server.add_user("target@bench.test")


def endpoint(server: GraphServer, concurrency: int) -> Endpoint:
    server.register_app("bench-app", "bench-secret")
    return Endpoint(
        kind="exchange_online",
        host=server.graph_url,
        secret="bench-secret",
        oauth_tenant_id=TENANT_ID,
        oauth_client_id="bench-app",
        oauth_authority=server.authority,
        options={"ca_file": str(server.cert_file), "concurrency": concurrency},
    )


def copy(source: GraphConnector, target: GraphConnector, batch: int) -> int:
    copied = 0
    for folder in source.folders():
        if not folder.count:
            continue
        destination = target.ensure_folder(folder.path, folder.kind, folder.role)
        ids = [ref.source_id for ref in source.changes(folder, {}).items]
        for start in range(0, len(ids), batch):
            items = source.fetch(folder, ids[start : start + batch], GRAPH_FTS)
            results = target.store(destination, items)
            copied += sum(1 for r in results if r.target_id and not r.error)
    return copied


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()

    server = GraphServer().start()
    try:
        seed(server, args.items)
        server.latency = args.latency
        settings = endpoint(server, args.concurrency)
        with (
            GraphConnector(settings, "source@bench.test") as source,
            GraphConnector(settings, "target@bench.test") as target,
        ):
            started = time.perf_counter()
            copied = copy(source, target, args.batch)
            elapsed = time.perf_counter() - started
    finally:
        server.stop()
    if copied != args.items:
        sys.exit(f"only {copied} of {args.items} items arrived")
    requests = server.counts["http"]
    mix = {k: v for k, v in sorted(server.counts.items()) if k != "http"}
    print("requests by endpoint (inside $batch too):", mix)
    print(
        f"items={copied} items_per_s={copied / elapsed:.0f} "
        f"requests_per_100={100 * requests / copied:.1f}"
    )


if __name__ == "__main__":
    main()
