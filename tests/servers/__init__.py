"""Real servers for the tests, started as plain processes on loopback.

Locally a missing binary skips the tests that need it, with the package to install; under CI
(``CI=true``) it fails them: CI must never pass by skipping.
"""

import os
import shutil
import socket
import time

import pytest


def require_binary(name: str, package: str) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)), None
    )
    if path:
        return path
    message = f"{name} not found: install the Debian package {package!r} (.ci/run does)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


class PortTaken(RuntimeError):
    """Another process bound the port between our choosing it and the server binding it."""


def free_port(udp: bool = False) -> int:
    """A loopback port free for TCP (and UDP too with ``udp``) at this instant. Nothing holds it
    afterwards: a server that cannot bind port 0 and report it goes through
    ``start_on_free_ports``, which chooses again when the port was taken meanwhile."""
    while True:
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            if not udp:
                return port
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as datagram:
                try:
                    datagram.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port


def start_on_free_ports(start, ports: int = 1, udp: bool = False, attempts: int = 8):
    """``start(*ports)`` with ``ports`` free ports, chosen again each time it raises PortTaken."""
    for attempt in range(attempts):
        try:
            return start(*(free_port(udp) for _ in range(ports)))
        except PortTaken:
            if attempt == attempts - 1:
                raise


def in_use(text: str) -> bool:
    """Whether a server's log says it could not bind: the port went to another process."""
    return "already in use" in text.lower()


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 15.0, proc=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {host}:{port} after {timeout}s")
