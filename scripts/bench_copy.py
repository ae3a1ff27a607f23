"""Copy benchmark: mailferry's worker against mbsync on the same mailbox, Dovecot to Dovecot.

Builds a reproducible mailbox (about 5,000 messages / 300 MB in 30+ folders: mostly 2-50 KB,
some 1-10 MB attachments, flags and keywords, years of dates, the real corpus and the hard
cases of the tests) on one Dovecot, copies it to the other with a real Celery worker process,
verifies the copy, copies it again with nothing new, then runs mbsync (Debian ``isync``,
``CopyArrivalDate yes``) on the same data to a fresh mailbox and prints the ratio.

    .venv/bin/python scripts/bench_copy.py [--messages 5000] [--megabytes 300]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORK = Path(tempfile.mkdtemp(prefix="mailferry-bench-"))
WORK.chmod(0o711)  # Dovecot's unprivileged mail processes must reach their homes
os.environ["MAILFERRY_VAR_DIR"] = str(WORK / "var")
os.environ.pop("DATABASE_URL", None)  # the benchmark keeps its own SQLite database
os.environ["DJANGO_SETTINGS_MODULE"] = "migrator.settings"

import django  # noqa: E402

django.setup()

from mailboxes import services  # noqa: E402
from mailboxes.connectors import open_connector  # noqa: E402
from mailboxes.connectors.base import Item  # noqa: E402
from mailboxes.models import MailboxPass  # noqa: E402
from projects.models import Project, Tenant  # noqa: E402
from tests.corpus import corpus_messages  # noqa: E402
from tests.engine.messages import hard_cases  # noqa: E402
from tests.servers.dovecot import start_dovecot  # noqa: E402

FOLDERS = (
    ["INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"]
    + [f"Archive/{year}" for year in range(2012, 2025)]
    + ["Projets & Co", "Ünïcode/Café", "Clients/O'Brien #1", "Clients/[Acme]", "Lists/python"]
    + [f"Lists/list-{n}" for n in range(6)]
    + ["Empty", "Empty/Nested"]
)
FLAGS = [(), ("\\Seen",), ("\\Seen", "\\Answered"), ("\\Seen", "$Forwarded"), ("\\Flagged",)]
KEYWORDS = [(), (), (), ("$Label1",), ("custom-tag",)]


def build_messages(count: int, megabytes: int, rng: random.Random) -> list[tuple[str, Item]]:
    """(folder, item) pairs; the same for the same arguments."""
    real = [Item("", m.data, flags=m.flags, received=m.internaldate) for m in corpus_messages()]
    real += [Item("", m.data, flags=m.flags, received=m.internaldate) for m in hard_cases()]
    big = max(1, count // 170)
    big_sizes = [rng.randint(1, 10) * 1024 * 1024 for _ in range(big)]
    small_budget = megabytes * 1024 * 1024 - sum(big_sizes) - sum(len(i.data) for i in real)
    small_count = count - big - len(real)
    mean = max(2048, small_budget // max(1, small_count))
    start = datetime(2012, 1, 1, tzinfo=UTC)
    items = list(real)
    for n in range(small_count + big):
        size = big_sizes[n - small_count] if n >= small_count else _small_size(rng, mean)
        flags = frozenset(rng.choice(FLAGS) + rng.choice(KEYWORDS))
        when = start + timedelta(seconds=rng.randrange(13 * 365 * 86400))
        items.append(Item("", _message(n, size, when, rng), flags=flags, received=when))
    mail = [f for f in FOLDERS if not f.startswith("Empty")]
    weights = [30 if f == "INBOX" else 10 if f == "Sent" else 1 for f in mail]
    return [(rng.choices(mail, weights)[0], item) for item in items]


def _small_size(rng: random.Random, mean: int) -> int:
    return int(min(50 * 1024, max(2 * 1024, rng.expovariate(1 / mean))))


def _message(n: int, size: int, when: datetime, rng: random.Random) -> bytes:
    head = (
        f"From: Sender {n % 97} <s{n % 97}@example.org>\r\nTo: Ann <ann@example.org>\r\n"
        f"Subject: Message {n}\r\nDate: {when:%a, %d %b %Y %H:%M:%S +0000}\r\n"
        f"Message-ID: <m{n}@bench.example>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        "Content-Type: text/plain\r\n\r\nHello.\r\n--b\r\n"
        "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    ).encode()
    raw = rng.randbytes(max(0, (size - len(head) - 10) * 57 // 78))
    lines = [_b64(raw[i : i + 57]) for i in range(0, len(raw), 57)]  # 76-character lines, RFC 2045
    return head + b"".join(lines) + b"--b--\r\n"


def _b64(chunk: bytes) -> bytes:
    import base64

    return base64.b64encode(chunk) + b"\r\n"


def load(endpoint, address: str, pairs) -> None:
    by_folder: dict[str, list[Item]] = {}
    for folder, item in pairs:
        by_folder.setdefault(folder, []).append(item)
    with open_connector(endpoint, address) as connector:
        for name in FOLDERS:
            path = tuple(name.split("/"))
            role = "inbox" if name == "INBOX" else None
            folder = connector.ensure_folder(path, "mail", role)
            items = by_folder.get(name, [])
            for start in range(0, len(items), 100):
                results = connector.store(folder, items[start : start + 100])
                refused = [r for r in results if r.target_id is None]
                if refused:
                    raise SystemExit(f"loading {name} failed: {refused[0].error}")


def digest(endpoint, address: str) -> dict:
    """{folder: Counter of (sha256, flags, INTERNALDATE instant)}: what a copy must equal."""
    result = {}
    with open_connector(endpoint, address) as connector:
        for folder in connector.folders():
            ids = [ref.source_id for ref in connector.changes(folder, {}).items]
            counter = Counter()
            for start in range(0, len(ids), 200):
                for item in connector.fetch(folder, ids[start : start + 200]):
                    key = hashlib.sha256(item.data).hexdigest()
                    counter[(key, item.flags, item.received.timestamp())] += 1
            result[folder.path] = counter
    return result


class WorkerProcess:
    """A real ``celery -A migrator worker`` on the benchmark's database and broker."""

    def __init__(self, concurrency: int):
        self.concurrency = concurrency
        self.log = WORK / "worker.log"

    def start(self) -> None:
        command = [sys.executable, "-m", "celery", "-A", "migrator", "worker", "--loglevel=WARNING"]
        command += [f"--concurrency={self.concurrency}", "--without-gossip", "--without-mingle"]
        command += ["-n", "bench@%h"]
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=os.environ.copy(),
            stdout=open(self.log, "wb"),  # noqa: SIM115 - the child owns it
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        from migrator.celery import app

        deadline = time.monotonic() + 60
        while not app.control.ping(timeout=0.5):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit(f"the worker did not start:\n{self.log.read_text()}")

    def processes(self) -> list[int]:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return [self.proc.pid, *map(int, children.split())]

    def cpu_seconds(self) -> float:
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.processes():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / ticks

    def peak_rss_mb(self) -> float:
        """The largest peak resident set of the worker's processes (VmHWM)."""
        peaks = []
        for pid in self.processes():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
        return max(peaks)

    def stop(self) -> None:
        os.killpg(self.proc.pid, 15)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)


def tenant(server, user: str, password: str) -> Tenant:
    return Tenant.objects.create(
        kind="imap",
        endpoint=server.host,
        port=server.port,
        security="plain",
        username=user,
        secret=password,
    )


def run_pass(mailbox, kind: str) -> tuple[MailboxPass, float]:
    started = time.monotonic()
    (mailbox_pass,) = services.start_passes([mailbox], kind)
    while mailbox_pass.state not in ("done", "failed"):
        time.sleep(0.02)
        mailbox_pass.refresh_from_db()
    return mailbox_pass, time.monotonic() - started


MBSYNC = """\
IMAPAccount far
Host 127.0.0.1
Port {far_port}
User {far_user}
Pass {far_password}
SSLType None
AuthMechs LOGIN PLAIN

IMAPStore far
Account far

IMAPAccount near
Host 127.0.0.1
Port {near_port}
User {near_user}
Pass {near_password}
SSLType None
AuthMechs LOGIN PLAIN

IMAPStore near
Account near

Channel copy
Far :far:
Near :near:
Patterns *
Create Near
Sync Pull
SyncState {state}/
CopyArrivalDate yes
"""


def run_mbsync(source, source_user, target, target_user) -> float:
    state = WORK / "mbsync-state"
    state.mkdir()
    config = WORK / "mbsyncrc"
    config.write_text(
        MBSYNC.format(
            far_port=source.port,
            far_user=source_user[0],
            far_password=source_user[1],
            near_port=target.port,
            near_user=target_user[0],
            near_password=target_user[1],
            state=state,
        )
    )
    started = time.monotonic()
    run = subprocess.run(["mbsync", "-q", "-c", str(config), "-a"], capture_output=True, text=True)
    seconds = time.monotonic() - started
    if run.returncode != 0:
        raise SystemExit(f"mbsync failed ({run.returncode}):\n{run.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--megabytes", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    if not shutil.which("mbsync"):
        raise SystemExit("mbsync not found: install the Debian package 'isync'")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=os.environ, check=True
    )
    limit = 64 * 1024 * 1024
    servers = [
        start_dovecot(WORK / "a", "a", "/", "maildir++", "UTC", limit),
        start_dovecot(WORK / "b", "b", ".", "fs", "IST-5:30", limit),
    ]
    worker = WorkerProcess(args.concurrency)
    try:
        source, target = servers
        source_user, target_user, mbsync_user = (
            source.add_user("ann"),
            target.add_user("ann"),
            target.add_user("mbsync"),
        )
        pairs = build_messages(args.messages, args.megabytes, random.Random(20240501))
        total_bytes = sum(len(item.data) for _, item in pairs)
        print(
            f"mailbox: {len(pairs)} messages, {total_bytes / 1e6:.1f} MB in {len(FOLDERS)} folders"
        )
        started = time.monotonic()
        load(source.endpoint(*source_user), source_user[0], pairs)
        print(f"loaded the source in {time.monotonic() - started:.1f} s")
        del pairs

        project = Project.objects.create(
            client_name="Benchmark",
            source=tenant(source, *source_user),
            target=tenant(target, *target_user),
        )
        mailbox = project.mailboxes.create(
            source_address=source_user[0], target_address=target_user[0]
        )
        worker.start()
        cpu_before = worker.cpu_seconds()
        full, full_seconds = run_pass(mailbox, "full")
        cpu_full = worker.cpu_seconds() - cpu_before
        if full.state != "done":
            raise SystemExit(f"the copy failed: {full.error}")
        again, again_seconds = run_pass(mailbox, "delta")
        rescan, rescan_seconds = run_pass(mailbox, "full")
        cpu_total = worker.cpu_seconds() - cpu_before
        peak = worker.peak_rss_mb()
        worker.stop()

        expected = digest(source.endpoint(*source_user), source_user[0])
        copied = digest(target.endpoint(*target_user), target_user[0])
        exact = expected == copied
        mbsync_seconds = run_mbsync(source, source_user, target, mbsync_user)
        by_mbsync = digest(target.endpoint(*mbsync_user), "mbsync")
        mbsync_count = sum(sum(c.values()) for c in by_mbsync.values())
        mbsync_exact = sum(
            sum((c & by_mbsync.get(p, Counter())).values()) for p, c in expected.items()
        )
        megabytes = full.bytes_copied / 1e6
        print(f"verified: {'identical' if exact else 'DIFFERENT'} (folders, bytes, flags, dates)")
        print(
            f"mailferry full copy: {full.items_copied} messages, {megabytes:.1f} MB in "
            f"{full_seconds:.2f} s = {full.items_copied / full_seconds:.0f} messages/s, "
            f"{megabytes / full_seconds:.1f} MB/s"
        )
        print(f"worker CPU: {cpu_full:.2f} s for the full copy, {cpu_total:.2f} s for all passes")
        print(f"worker peak RSS: {peak:.0f} MB (largest process)")
        print(
            f"second pass, nothing new: delta {again_seconds:.3f} s "
            f"(copied {again.items_copied}); full re-check {rescan_seconds:.2f} s "
            f"(copied {rescan.items_copied}, skipped {rescan.items_skipped})"
        )
        print(
            f"mbsync full copy: {mbsync_count} messages in {mbsync_seconds:.2f} s; "
            f"{mbsync_exact} of {sum(sum(c.values()) for c in expected.values())} identical "
            "in bytes, flags and date"
        )
        print(f"ratio mailferry/mbsync: {full_seconds / mbsync_seconds:.2f}x (target <= 1.25x)")
        if not exact:
            raise SystemExit(1)
    finally:
        if worker.__dict__.get("proc") and worker.proc.poll() is None:
            worker.stop()
        for server in servers:
            server.stop()
        if not args.keep:
            shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
