"""A real Redis server on a free loopback port, started as a plain process."""

import socket
import subprocess

import pytest

from . import PortTaken, in_use, require_binary, start_on_free_ports, wait_for_port


class RedisServer:
    """A Redis that can be shut down and started again on the same port, as a broker restart
    looks to a worker."""

    def __init__(self, workdir):
        self.binary = require_binary("redis-server", "redis-server")
        self.port = 0
        self.workdir = workdir
        self.proc = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        """Start on a free port, again on another when Redis finds it taken; a restart keeps
        its port, as the workers' broker URL does."""
        if self.port:
            self._launch(self.port)
        else:
            start_on_free_ports(self._launch)
        return self

    def _launch(self, port: int) -> None:
        self.port = port
        command = [self.binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", str(self.workdir)]
        log = self.workdir / "redis.log"
        with open(log, "wb") as output:
            self.proc = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, proc=self.proc)
            if self._process_id() == self.proc.pid:
                return
        except (RuntimeError, OSError):
            pass
        self.stop()
        text = log.read_text(errors="replace")
        raise (PortTaken if in_use(text) else RuntimeError)(f"redis did not start:\n{text}")

    def _process_id(self) -> int:
        """The pid of the Redis answering on our port: another's when the port was taken."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as connection:
            connection.sendall(b"INFO server\r\n")
            reply = connection.makefile("rb")
            size = int(reply.readline()[1:])  # a bulk string: $N, then N bytes
            info = reply.read(size)
        return int(info.split(b"process_id:")[1].split(b"\r\n")[0])

    def stop(self) -> None:
        """Gone at once, with every message it held (no persistence), like ``shutdown nosave``."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_server(tmp_path):
    """A Redis of this test's own, which the test may stop and start again."""
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()
