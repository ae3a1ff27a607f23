"""An IMAP proxy in front of a test Dovecot that misbehaves the way real servers do.

- ``munge8bit``: every 8-bit byte in the header block of an APPENDed message becomes ``X``
  before Dovecot sees it, as Cyrus does by default (``munge8bit: 1`` in imapd.conf) while
  answering OK; the message keeps its length.
- ``drop_after_appends = N``: once N APPEND commands went through on one connection, the proxy
  waits for Dovecot's tagged answer to the last one (so the message is stored), keeps it from
  the client and closes the connection, as a server or network dropping at the worst moment.
  With ``refuse_after_drop``, every later connection is closed at once (the server stays away
  past the client's retries).

Threads, plain TCP, on 127.0.0.1 with a port of its own; it understands just enough IMAP to
find APPEND commands and their literals (``{N}`` and ``{N+}``, RFC 3501 §4.3, RFC 7888).
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from dataclasses import dataclass, field

_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")


def munge8bit(message: bytes) -> bytes:
    """The message with each 8-bit byte of its header block replaced by ``X``."""
    end = message.find(b"\r\n\r\n")
    end = len(message) if end < 0 else end
    header = bytes(ord("X") if byte >= 0x80 else byte for byte in message[:end])
    return header + message[end:]


@dataclass
class ImapProxy:
    upstream: tuple[str, int]
    munge: bool = False
    drop_after_appends: int = 0
    refuse_after_drop: bool = False
    host: str = "127.0.0.1"
    port: int = 0
    appends: int = 0  # APPEND commands forwarded, all connections
    drops: int = 0  # connections dropped after an APPEND
    _server: socket.socket | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def start(self) -> ImapProxy:
        self._server = socket.create_server((self.host, 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.close()

    def endpoint_changes(self) -> dict:
        return {"host": self.host, "port": self.port, "security": "plain"}

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self.refuse_after_drop and self.drops:
                client.close()
                continue
            upstream = socket.create_connection(self.upstream)
            _Connection(self, client, upstream).start()


class _Connection:
    def __init__(self, proxy: ImapProxy, client: socket.socket, upstream: socket.socket):
        self.proxy, self.client, self.upstream = proxy, client, upstream
        self.appends = 0
        self.doomed_tag: bytes | None = None  # the APPEND whose answer ends the connection
        self.closed = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._from_client, daemon=True).start()
        threading.Thread(target=self._from_server, daemon=True).start()

    def close(self) -> None:
        self.closed.set()
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _from_client(self) -> None:
        reader = self.client.makefile("rb")
        in_append, tag = False, b""
        try:
            while not self.closed.is_set():
                line = reader.readline()
                if not line:
                    break
                if not in_append:  # the first line of a command
                    words = line.split(b" ", 2)
                    tag = words[0]
                    in_append = len(words) > 1 and words[1].upper() == b"APPEND"
                self.upstream.sendall(line)
                literal = _LITERAL.search(line)
                if literal:
                    data = reader.read(int(literal.group(1)))
                    if in_append and self.proxy.munge:
                        data = munge8bit(data)
                    self.upstream.sendall(data)
                    continue
                if in_append:
                    self._appended(tag)
                in_append = False
        except OSError:
            pass
        finally:
            if self.doomed_tag is None:
                self.close()

    def _appended(self, tag: bytes) -> None:
        self.appends += 1
        with self.proxy._lock:
            self.proxy.appends += 1
        limit = self.proxy.drop_after_appends
        if limit and self.appends >= limit:
            self.doomed_tag = tag

    def _from_server(self) -> None:
        reader = self.upstream.makefile("rb")
        try:
            while not self.closed.is_set():
                line = reader.readline()
                if not line:
                    break
                doomed = self.doomed_tag
                if doomed is not None and line.startswith(doomed + b" "):
                    with self.proxy._lock:
                        self.proxy.drops += 1
                    break  # stored upstream; the client never hears of it
                self.client.sendall(line)
                literal = _LITERAL.search(line)
                if literal:
                    self.client.sendall(reader.read(int(literal.group(1))))
        except OSError:
            pass
        finally:
            self.close()
