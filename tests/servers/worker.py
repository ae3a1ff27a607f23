"""A real Celery worker process on the test database, for tests that need work done out of
process (connection tests, copies, a SIGKILL in the middle of a folder).

Use with ``@pytest.mark.django_db(transaction=True)`` so the worker sees committed rows.
"""

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    """The test database as a URL, for a process that is not pytest."""
    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        name = s["NAME"]
        if not name or str(name).startswith(("file:memorydb", ":memory:")):
            raise RuntimeError("a worker needs a file database: set DATABASES TEST NAME")
        return f"sqlite:///{name}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def purge_filesystem_broker() -> None:
    """Drop messages earlier tests left in the embedded broker's folder: their ids are gone."""
    folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("data_folder_in")
    for message in Path(folder).glob("*.msg") if folder else ():
        message.unlink(missing_ok=True)


def queued_tasks() -> list[tuple[str, list, dict]]:
    """(task name, arguments, keyword arguments) of every message waiting in the embedded
    broker's folder: what a worker would run next."""
    folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("data_folder_in")
    found = []
    for path in Path(folder).glob("*.msg") if folder else ():
        message = json.loads(path.read_text())
        args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        found.append((message["headers"]["task"], args, kwargs))
    return found


class Worker:
    def __init__(self, var_dir: Path, broker_url: str = "", extra_env: dict | None = None):
        self.var_dir = var_dir
        self.broker_url = broker_url
        self.extra_env = extra_env or {}
        self.proc = None
        self.log_path = var_dir / "worker.log"

    def env(self) -> dict:
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "DJANGO_SETTINGS_MODULE": "migrator.settings",
            **self.extra_env,
        }
        if self.broker_url:
            env["CELERY_BROKER_URL"] = self.broker_url
        return env

    def start(self, concurrency: int = 2, args: tuple = (), beat: bool = False) -> "Worker":
        """``args`` are more ``celery worker`` options: ``-Q checks``. ``beat`` embeds the
        scheduler as production runs it (scripts/run.sh), its state file in ``var_dir``."""
        self.var_dir.mkdir(parents=True, exist_ok=True)
        if not self.broker_url:
            purge_filesystem_broker()
        command = [sys.executable, "-m", "celery", "-A", "migrator", "worker"]
        command += ["--loglevel=INFO", f"--concurrency={concurrency}", "--without-gossip"]
        command += ["--without-mingle", "-n", f"test-{os.getpid()}-{time.monotonic_ns()}@%h"]
        command += args
        if beat:
            command += ["--beat", f"--schedule={self.var_dir / 'beat-schedule'}"]
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        # A restarted worker appends to the same log: only a "ready." after this point counts.
        self._log_start = log.tell()
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log()}")
            if b"ready." in self.log_path.read_bytes()[self._log_start :]:
                return
            time.sleep(0.1)
        raise RuntimeError(f"worker not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the whole process group: the main process and its pool children."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.1, message=""):
    """``predicate()`` once true; else fail with ``message`` (a callable is called only then,
    so it can describe the state at the time of failure, a worker's log say)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError((message() if callable(message) else message) or f"not met in {timeout}s")


@pytest.fixture
def start_worker(tmp_path):
    """``start_worker(name, broker_url="", env=None, **start_options)`` starts a real worker
    (its var dir ``tmp_path / name``); every one started is stopped after the test, pass or
    fail, so tests need no try/finally of their own."""
    workers = []

    def start(name: str = "worker", broker_url: str = "", env=None, **options) -> Worker:
        worker = Worker(tmp_path / name, broker_url, env)
        workers.append(worker)
        return worker.start(**options)

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def celery_worker_process(start_worker):
    """A started worker on the embedded filesystem broker; stopped after the test."""
    return start_worker("worker-var")
