"""Wall time of one DNS check against real NSD servers, with and without a silent server.

Starts N NSD servers on loopback serving a Microsoft 365 domain plus one server that never
answers, then prints one line per setup: ``SETUP questions=N median_ms=N``. With every question
in its own thread, the silent server costs one timeout in total, not one per question.

    make bench-dnscheck         # or: .venv/bin/python scripts/bench_dnscheck.py [--servers 4]
"""

import argparse
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dnscheck.checker import Server, check  # noqa: E402
from dnscheck.records import microsoft365  # noqa: E402
from tests.dnscheck.zones import DOMAIN, new_zones  # noqa: E402
from tests.servers.nsd import NsdServer  # noqa: E402


def timed(runs: int, **kwargs) -> tuple[int, float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        report = check(DOMAIN, microsoft365(DOMAIN, sip=True), **kwargs)
        times.append(time.perf_counter() - started)
    return len(report.results), statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--servers", type=int, default=4)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=1.0)
    args = parser.parse_args()
    binary = shutil.which("nsd") or "/usr/sbin/nsd"
    root = Path(tempfile.mkdtemp(prefix="bench-dns-"))
    servers = []
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for n in range(args.servers):
            (root / str(n)).mkdir()
            server = NsdServer(root / str(n), new_zones())
            server.start(binary)
            servers.append(server)
        silent.bind(("127.0.0.1", 0))
        answering = [Server("127.0.0.1", s.port) for s in servers]
        quiet = Server("127.0.0.1", silent.getsockname()[1])
        for label, used in (
            (f"{args.servers}_answering", answering),
            (f"{args.servers}_answering+1_silent", [*answering, quiet]),
        ):
            questions, median = timed(args.runs, servers=used, timeout=args.timeout)
            print(f"{label} questions={questions} median_ms={median:.0f} timeout_s={args.timeout}")
    finally:
        silent.close()
        for server in servers:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
