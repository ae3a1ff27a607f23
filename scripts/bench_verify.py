"""Verification benchmark: how long verifying the 5,000-message benchmark mailbox takes,
cheap (ids and sizes) and deep (content fingerprints), against a delta pass on it.

Builds the copy benchmark's mailbox (``scripts/bench_copy.py``: about 5,000 messages / 300 MB
in 30+ folders) on one Dovecot, copies it to another with a full pass in this process, then:
50 messages (1 %) arrive on the source and a delta pass copies them (``delta_s``: the usual
delta before a cutover); the mailbox is verified cheaply (``verify_s``) and deeply
(``deep_verify_s``); both must find it verified. Prints::

    items=N verify_s=N deep_verify_s=N delta_s=N

and, on a second line, a delta with nothing new (one EXAMINE per folder) for comparison.

    .venv/bin/python scripts/bench_verify.py [--messages 5000] [--megabytes 300]
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import time

from bench_copy import FOLDERS, ROOT, WORK, build_messages, load, tenant  # sets Django up

# isort: split

from mailboxes import engine, services, verification
from mailboxes.connectors.base import Item
from mailboxes.models import Mailbox
from projects.models import Project
from tests.servers.dovecot import start_dovecot


def run_pass(mailbox, kind: str) -> float:
    started = time.monotonic()
    scheduler = engine.InlineScheduler("bench:1")
    (mailbox_pass,) = services.start_passes([mailbox], kind, scheduler=scheduler)
    scheduler.run()
    mailbox_pass.refresh_from_db()
    if mailbox_pass.state != "done":
        raise SystemExit(f"the {kind} pass failed: {mailbox_pass.error}")
    return time.monotonic() - started


def verify(mailbox, deep: bool) -> float:
    started = time.monotonic()
    verification.verify(mailbox, deep)
    seconds = time.monotonic() - started
    mailbox = Mailbox.objects.get(pk=mailbox.pk)
    if not mailbox.verified:
        raise SystemExit(f"not verified: {verification.folder_lines(mailbox)}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--megabytes", type=int, default=300)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--profile", action="store_true", help="profile the cheap verification")
    args = parser.parse_args()
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=None, check=True)
    limit = 64 * 1024 * 1024
    servers = [
        start_dovecot(WORK / "a", "a", "/", "maildir++", "UTC", limit),
        start_dovecot(WORK / "b", "b", ".", "fs", "IST-5:30", limit),
    ]
    try:
        source, target = servers
        source_user, target_user = source.add_user("ann"), target.add_user("ann")
        rng = random.Random(20240501)
        pairs = build_messages(args.messages, args.megabytes, rng)
        load(source.endpoint(*source_user), source_user[0], pairs)
        project = Project.objects.create(
            client_name="Benchmark",
            source=tenant(source, *source_user),
            target=tenant(target, *target_user),
        )
        mailbox = project.mailboxes.create(
            source_address=source_user[0], target_address=target_user[0]
        )
        full_s = run_pass(mailbox, "full")
        arrivals = [
            ("INBOX", Item("", item.data.replace(b"@bench.example", b"@late.example", 1)))
            for _, item in pairs[:50]
        ]
        load(source.endpoint(*source_user), source_user[0], arrivals)
        items = len(pairs) + len(arrivals)
        del pairs
        delta_s = run_pass(mailbox, "delta")
        idle_delta_s = run_pass(mailbox, "delta")
        verify_s = verify(mailbox, deep=False)
        if args.profile:
            import cProfile

            cProfile.runctx("verify(mailbox, False)", globals(), locals(), sort="cumtime")
        deep_s = verify(mailbox, deep=True)
        print(
            f"items={items} verify_s={verify_s:.2f} deep_verify_s={deep_s:.2f} "
            f"delta_s={delta_s:.2f}"
        )
        print(
            f"(full pass {full_s:.1f} s; a delta with nothing new {idle_delta_s:.2f} s; "
            f"{len(FOLDERS)} folders)"
        )
    finally:
        for server in servers:
            server.stop()
        if not args.keep:
            shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
