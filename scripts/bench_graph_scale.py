"""Exchange Online at tenant scale: `make bench-graph-scale`.

N source mailboxes (each its own mail and events) are copied into N target mailboxes by real
worker processes (Celery, Redis broker, so the budgets live in Redis as in production) on the
loopback Graph server, which enforces Exchange Online's per-mailbox limits with the windows
scaled down to seconds; the tenant's options tell the connector the same limits.

Prints the closing line
``mailboxes=N workers=N budget_used=0.NN throttled_per_100=N requests_per_item=N failed=N``:
- budget_used: each target mailbox's budget use (``GraphConnector.budget_use``: its most used
  of requests in flight, requests in the window and imported bytes in theirs), sampled every
  0.1 s while the mailbox still lacks items, averaged over all samples;
- throttled_per_100: 429 answers per 100 requests the server served to mailboxes;
- requests_per_item: mailbox requests the server served per item copied (exports, imports,
  stamps, listings; token and $batch envelopes not counted);
- failed: passes not done, item errors and items missing or doubled on a target.

Options: --mailboxes 12 --workers 4 --items 300 --window 5 --requests 80 --megabytes 0.5
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
WORK = Path(tempfile.mkdtemp(prefix="mailferry-bench-scale-"))
os.environ["MAILFERRY_VAR_DIR"] = str(WORK / "var")
os.environ.pop("DATABASE_URL", None)  # the benchmark keeps its own SQLite database

from bench_graph import django_with_redis_budgets  # noqa: E402

BROKER = django_with_redis_budgets()

import subprocess  # noqa: E402

from mailboxes import services  # noqa: E402
from mailboxes.connectors.graph import GraphConnector  # noqa: E402
from mailboxes.models import ItemError, MailboxPass  # noqa: E402
from tests.servers.graph_scale import (  # noqa: E402
    contents,
    endpoint,
    limit_options,
    project,
    scaled_limits,
    seed_pairs,
)
from tests.servers.graph_server import GraphServer  # noqa: E402
from tests.servers.worker import Worker  # noqa: E402

# The Graph server is on loopback, which tenants may reach only when local endpoints are allowed.
WORKER_ENV = {
    "COPY_BATCH_ITEMS": "20",
    "TENANT_CONNECTION_LIMIT": "64",
    "ALLOW_LOCAL_ENDPOINTS": "1",
}


def sample_budgets(server, pairs, options, stop, samples) -> None:
    connectors = {
        target: GraphConnector(endpoint(server, **options), target) for _, target in pairs
    }
    while not stop.is_set():
        for source, target in pairs:
            if len(server.users[target].folder("inbox").items) < len(
                server.users[source].folder("inbox").items
            ):
                samples.append(connectors[target].budget_use())
        time.sleep(0.1)


def failures(server, pairs) -> int:
    failed = MailboxPass.objects.exclude(state="done").count() + ItemError.objects.count()
    for source, target in pairs:
        want, got = contents(server, source), contents(server, target)
        for folder, items in want.items():
            landed = got.get(folder, [])
            failed += len(set(items) ^ set(landed)) + abs(len(items) - len(landed))
    return failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=12)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--window", type=float, default=5.0)
    parser.add_argument("--requests", type=int, default=80)
    parser.add_argument("--megabytes", type=float, default=0.5)
    args = parser.parse_args()

    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)
    server = GraphServer(WORK).start()
    limits = scaled_limits(args.window, args.requests, args.megabytes)
    server.enforce(limits, mailbox_time=0.01)
    pairs = seed_pairs(server, args.mailboxes, args.items)
    options = limit_options(limits)
    moving = project(server, pairs, **options)
    per_worker = -(-args.mailboxes // args.workers)
    workers = [
        Worker(WORK / f"worker{n}", BROKER, WORKER_ENV).start(concurrency=per_worker)
        for n in range(args.workers)
    ]
    stop, samples = threading.Event(), []
    sampler = threading.Thread(target=sample_budgets, args=(server, pairs, options, stop, samples))
    try:
        started = time.monotonic()
        services.start_passes(moving.mailboxes.all(), "full")
        sampler.start()
        while MailboxPass.objects.filter(state__in=("done", "failed")).count() < len(pairs):
            if time.monotonic() - started > 1800:
                sys.exit("the passes did not finish in 30 minutes")
            time.sleep(0.5)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        for worker in workers:
            worker.stop()
        server.stop()
    errors = set(MailboxPass.objects.exclude(state="done").values_list("error", flat=True))
    if errors or not server.use:
        print("passes not done:", errors or "none copied", file=sys.stderr)
    served = sum(use.served for use in server.use.values())
    items = sum(len(i) for source, _ in pairs for i in contents(server, source).values())
    print(
        f"items={items} seconds={elapsed:.1f} max_in_flight="
        f"{max([use.max_in_flight for use in server.use.values()] or [0])} samples={len(samples)}"
    )
    print(
        f"mailboxes={len(pairs)} workers={args.workers} "
        f"budget_used={sum(samples) / max(len(samples), 1):.2f} "
        f"throttled_per_100={100 * server.counts['throttled'] / max(served, 1):.1f} "
        f"requests_per_item={served / items:.2f} failed={failures(server, pairs)}"
    )


if __name__ == "__main__":
    main()
