"""Gmail API read throughput against the loopback Gmail API server: `make bench-google`.

Copies one Google Workspace mailbox of 5,000 messages (real corpus bytes; a third of them with
two or three folder labels, some only IMPORTANT/CATEGORY_* for All Mail) into a maildir through
the connector interface, folder by folder and batch by batch as the engine does (changes ->
fetch -> store). Prints the call mix, then the closing line ``items=N items_per_s=N
quota_units_per_item=N requests_per_100=N``: items are messages (each downloaded once however
many label folders it lands in), quota units are Google's per-user units spent, requests every
HTTPS request the server saw (token and batch envelopes included) per 100 messages.

Google's default per-user quota (15,000 units a minute) is off unless --quota is given: the
figure is then what the client, its batching and its quota budget (one database turn per
request) cost, and ``quota_bound_items_per_s`` says what the quota alone would allow.
Options: --items N --batch N --quota UNITS_PER_MINUTE (the server's and the budget's).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORK = Path(tempfile.mkdtemp(prefix="bench-google-"))
# The quota budget lives in the database (or Redis): the benchmark keeps its own SQLite one.
os.environ["MAILFERRY_VAR_DIR"] = str(WORK / "var")
os.environ.pop("DATABASE_URL", None)
os.environ.pop("CELERY_BROKER_URL", None)
os.environ["DJANGO_SETTINGS_MODULE"] = "migrator.settings"

import django  # noqa: E402

django.setup()

from mailboxes.connectors.base import Endpoint  # noqa: E402
from mailboxes.connectors.gmail import READ_SCOPE, GmailConnector  # noqa: E402
from mailboxes.connectors.maildir import MaildirConnector  # noqa: E402
from tests.corpus import corpus_files  # noqa: E402
from tests.servers.gmail_server import USER_UNITS_PER_MINUTE, GmailServer  # noqa: E402

USER = "source@bench.example"
LABEL_SETS = [
    ("INBOX", "UNREAD"),
    ("INBOX", "Projects/2024"),
    ("SENT",),
    ("IMPORTANT", "CATEGORY_UPDATES"),
    ("INBOX", "Projects/2024", "Receipts", "STARRED"),
    ("Receipts",),
]


def seed(server: GmailServer, total: int) -> None:
    box = server.add_user(USER)
    bodies = [p.read_bytes() for p in corpus_files("cpython-test_email", "msg_*.txt")]
    start = 1_600_000_000_000
    for n in range(total):
        box.add_message(bodies[n % len(bodies)], LABEL_SETS[n % len(LABEL_SETS)], start + n * 1000)


def copy(source: GmailConnector, target: MaildirConnector, batch: int) -> tuple[int, set]:
    placed, messages = 0, set()
    for folder in source.folders():
        destination = target.ensure_folder(folder.path, folder.kind, folder.role)
        ids = [ref.source_id for ref in source.changes(folder, {}).items]
        for start in range(0, len(ids), batch):
            items = source.fetch(folder, ids[start : start + batch])
            results = target.store(destination, items)
            placed += sum(1 for r in results if r.target_id and not r.error)
            messages.update(item.source_id for item in items)
    return placed, messages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--quota", type=int, default=0, help="units per user per minute")
    args = parser.parse_args()

    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)
    work = WORK
    server = GmailServer(work / "server").start()
    try:
        key = server.add_service_account("bench")
        server.delegate(key["client_id"], [READ_SCOPE])
        seed(server, args.items)
        server.set_quota(args.quota or 10**12, 60.0)
        source_settings = Endpoint(
            kind="google",
            host=server.url,
            secret=json.dumps(key),
            options={
                "ca_file": str(server.cert_file),
                "spool_dir": str(work / "spool"),
                "user_units": args.quota or 10**9,
            },
        )
        (work / "target").mkdir()
        target_settings = Endpoint(kind="maildir", host=str(work / "target"))
        with (
            GmailConnector(source_settings, USER) as source,
            MaildirConnector(target_settings, USER) as target,
        ):
            started = time.perf_counter()
            placed, messages = copy(source, target, args.batch)
            elapsed = time.perf_counter() - started
    finally:
        server.stop()
    downloads = sum(server.gets.values())
    if len(messages) != args.items or downloads != args.items:
        sys.exit(f"{len(messages)} of {args.items} messages copied, {downloads} downloads")
    units = server.units[USER]
    mix = {k: v for k, v in sorted(server.counts.items()) if k != "http"}
    print("calls by endpoint (inside batches too):", mix)
    print(f"placed={placed} (messages in every label folder) downloads={downloads}")
    bound = USER_UNITS_PER_MINUTE / 60 / (units / args.items)
    print(f"quota_bound_items_per_s={bound:.0f} (Google's 15,000 units per user per minute)")
    print(
        f"items={args.items} items_per_s={args.items / elapsed:.0f} "
        f"quota_units_per_item={units / args.items:.2f} "
        f"requests_per_100={100 * server.counts['http'] / args.items:.1f}"
    )


if __name__ == "__main__":
    main()
