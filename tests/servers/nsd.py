"""Real authoritative DNS servers (Debian ``nsd``) on loopback, for the DNS check tests.

Each server runs ``nsd -d -c CONFIG`` as a plain process with its own config, zone files and
pidfile in a temp dir; remote control is off (no keys to set up) and it stays root
(``username: ""``) so it can read the files the test writes. A test writes zones, then calls
``reload()`` mid-test to simulate the records changing at cutover::

    new = nsd_factory({"example.test": ["@ 300 IN MX 0 example-test.mail.protection.outlook.com."]})
    new.address            # "127.0.0.1:PORT"
    new.set_zone("example.test", [...]); new.reload()

``silent_dns_server`` is a UDP (and TCP) socket that never answers: a server that times out.
"""

from __future__ import annotations

import random
import signal
import socket
import subprocess
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import pytest

from . import PortTaken, in_use, require_binary, start_on_free_ports, wait_for_port

CONFIG = """\
server:
  ip-address: 127.0.0.1@{port}
  port: {port}
  username: ""
  chroot: ""
  zonesdir: "{root}"
  pidfile: "{root}/nsd.pid"
  database: ""
  zonelistfile: "{root}/zone.list"
  xfrdfile: "{root}/xfrd.state"
  xfrdir: "{root}"
  logfile: "{root}/nsd.log"
  server-count: 1
  verbosity: 1
remote-control:
  control-enable: no
{zones}"""

ZONE_HEADER = """\
$ORIGIN {zone}.
$TTL 300
@ 3600 IN SOA ns1.{zone}. hostmaster.{zone}. {serial} 3600 600 86400 60
"""


class NsdServer:
    def __init__(self, root: Path, zones: dict[str, list[str]]):
        self.root = root
        self.port = 0
        # A serial of its own tells this server's answers from another's on a port taken
        # meanwhile (other tests serve the same zone names).
        self.serial = random.randrange(1, 2**31)
        self.zones = dict(zones)
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set_zone(self, zone: str, records: list[str]) -> None:
        self.zones[zone] = records

    def _write(self) -> None:
        self.serial += 1
        for zone, records in self.zones.items():
            header = ZONE_HEADER.format(zone=zone, serial=self.serial)
            (self.root / f"{zone}.zone").write_text(header + "\n".join(records) + "\n")
        zones = "".join(
            f'zone:\n  name: "{z}"\n  zonefile: "{z}.zone"\n' for z in sorted(self.zones)
        )
        (self.root / "nsd.conf").write_text(
            CONFIG.format(port=self.port, root=self.root, zones=zones)
        )

    def start(self, binary: str) -> None:
        """Start on a port free for UDP and TCP, again on another when NSD finds it taken; a
        restart keeps its port, which the test already handed out."""
        self.binary = binary
        self.served = set(self.zones)
        if self.port:
            self._launch(self.port)
        else:
            start_on_free_ports(self._launch, udp=True)

    def _launch(self, port: int) -> None:
        self.port = port
        self._write()
        (self.root / "nsd.log").unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [self.binary, "-d", "-c", str(self.root / "nsd.conf")],
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "stderr.log", "wb"),  # noqa: SIM115 - the child owns it
        )
        try:
            wait_for_port(self.port, proc=self.proc)
            for zone in self.zones:
                self.wait_for_serial(zone)
        except RuntimeError:
            self.stop()
            if in_use(self.log()):
                raise PortTaken(self.log()) from None
            raise

    def log(self) -> str:
        return "".join(
            (self.root / name).read_text(errors="replace")
            for name in ("stderr.log", "nsd.log")
            if (self.root / name).exists()
        )

    def reload(self) -> None:
        """Re-read the zone files (SIGHUP); returns once every zone serves the new serial.

        SIGHUP re-reads zone files but not the list of zones: a new zone needs a restart.
        """
        if set(self.zones) != self.served:
            self.stop()
            self.start(self.binary)
            return
        self._write()
        self.proc.send_signal(signal.SIGHUP)
        for zone in self.zones:
            self.wait_for_serial(zone)

    def wait_for_serial(self, zone: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                reply = dns.query.udp(
                    dns.message.make_query(zone, "SOA"), "127.0.0.1", timeout=0.5, port=self.port
                )
                if reply.answer and reply.answer[0][0].serial == self.serial:
                    return
            except (dns.exception.Timeout, OSError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"nsd did not serve {zone} serial {self.serial}:\n{self.log()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def nsd_factory(tmp_path):
    """Start NSD servers for the zones given ({zone: [record lines]}); stopped after the test."""
    binary = require_binary("nsd", "nsd")
    servers: list[NsdServer] = []

    def start(zones: dict[str, list[str]]) -> NsdServer:
        root = tmp_path / f"nsd{len(servers)}"
        root.mkdir()
        server = NsdServer(root, zones)
        servers.append(server)
        server.start(binary)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def silent_dns_server():
    """host:port of a server that receives queries and never answers (UDP and TCP)."""
    udp, tcp = start_on_free_ports(_silent_sockets, udp=True)
    try:
        yield f"127.0.0.1:{udp.getsockname()[1]}"
    finally:
        udp.close()
        tcp.close()


def _silent_sockets(port: int) -> tuple[socket.socket, socket.socket]:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        udp.bind(("127.0.0.1", port))
        tcp.bind(("127.0.0.1", port))
    except OSError as exc:
        udp.close()
        tcp.close()
        raise PortTaken(str(exc)) from exc
    tcp.listen(16)
    return udp, tcp
