"""`make run` restarts a worker that exits, as compose does, and stops it on request."""

import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

from tests.servers.worker import ROOT, wait_until


def running(pid: int) -> bool:
    """Alive and not a zombie (a container's init may never reap what it inherits)."""
    try:
        return "\tZ" not in Path(f"/proc/{pid}/status").read_text().split("State:")[1][:4]
    except FileNotFoundError:
        return False


def test_supervise_restarts_what_exits_and_stops_on_sigterm(tmp_path):
    starts, stopped, orphan = tmp_path / "starts", tmp_path / "stopped", tmp_path / "orphan"
    # Dies the first time leaving a child behind (a worker's pool or beat after a SIGKILL); the
    # second run stays up until told to stop.
    command = (
        f"echo start >> {starts}; "
        f'if [ "$(wc -l < {starts})" -eq 1 ]; then sleep 300 & echo $! > {orphan}; exit 3; fi; '
        f"trap 'echo stopped > {stopped}; exit 0' TERM; while true; do sleep 0.1; done"
    )
    script = f"source scripts/supervise.sh; supervise fake-worker bash -c {shlex.quote(command)}"
    proc = subprocess.Popen(
        ["bash", "-c", script],
        cwd=ROOT,
        env={**os.environ, "RESTART_DELAY": "0.2"},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: starts.exists() and starts.read_text().count("start") == 2, 10)
        time.sleep(0.5)
        assert starts.read_text().count("start") == 2  # the running one is left alone
        assert not running(int(orphan.read_text()))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        proc.kill()
    assert stopped.read_text() == "stopped\n"
    assert "fake-worker exited with status 3; starting it again in 0.2 s" in proc.stderr.read()
