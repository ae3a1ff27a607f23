"""An IMAP proxy in front of a test Dovecot that misbehaves the way real servers do.

- ``munge8bit``: every 8-bit byte in the header block of an APPENDed message becomes ``X``
  before Dovecot sees it, as Cyrus does by default (``munge8bit: 1`` in imapd.conf) while
  answering OK; the message keeps its length.
- ``drop_after_appends = N``: once N APPEND commands went through on one connection, the proxy
  waits for Dovecot's tagged answer to the last one (so the message is stored), keeps it from
  the client and closes the connection, as a server or network dropping at the worst moment.
  With ``refuse_after_drop``, every later connection is closed at once (the server stays away
  past the client's retries).
- ``drop_after_stores``: the same for ``UID STORE``: once Dovecot answered a STORE (the flags
  are set), the proxy keeps the answer from the client and closes the connection.
- ``appendlimit = N``: the server announces ``APPENDLIMIT=N`` in every CAPABILITY it sends
  (RFC 7889 §3) and refuses a larger APPEND with ``NO [TOOBIG]`` (RFC 7889 §4, RFC 4469 §4)
  without storing it, as servers that announce a limit do (Dovecot 2.3 enforces
  ``quota_max_mail_size`` without announcing it). MULTIAPPEND is no longer offered then, so
  that each APPEND carries one message to judge.

Threads, plain TCP, on 127.0.0.1 with a port of its own; it understands just enough IMAP to
find APPEND commands and their literals (``{N}`` and ``{N+}``, RFC 3501 §4.3, RFC 7888).
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from dataclasses import dataclass, field

_LITERAL = re.compile(rb"\{(\d+)(\+?)\}\r\n$")
_CAPABILITY = re.compile(rb"(?i)(CAPABILITY )")


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
    drop_after_stores: bool = False
    refuse_after_drop: bool = False
    appendlimit: int = 0
    host: str = "127.0.0.1"
    port: int = 0
    appends: int = 0  # APPEND commands forwarded, all connections
    drops: int = 0  # connections dropped after an APPEND
    too_big: int = 0  # APPENDs refused for exceeding ``appendlimit``
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
        self._to_client = threading.Lock()  # the proxy's own answers and the server's

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
                    words = line.split(b" ", 3)
                    tag = words[0]
                    in_append = len(words) > 1 and words[1].upper() == b"APPEND"
                    storing = b" ".join(words[1:3]).upper() == b"UID STORE"
                    if storing and self.proxy.drop_after_stores:
                        self.doomed_tag = tag
                literal = _LITERAL.search(line)
                if in_append and literal and self._too_big(tag, literal, reader):
                    in_append = False
                    continue
                self.upstream.sendall(line)
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

    def _too_big(self, tag: bytes, literal: re.Match, reader) -> bool:
        """Refuse an APPEND over ``appendlimit`` before Dovecot sees any of it: a synchronising
        literal is never sent (the client waits for "+"), a LITERAL+ one is read and dropped
        with the end of its command line."""
        size, limit = int(literal.group(1)), self.proxy.appendlimit
        if not limit or size <= limit:
            return False
        if literal.group(2):
            reader.read(size)
            reader.readline()
        with self.proxy._lock:
            self.proxy.too_big += 1
        self._to_client_send(tag + b" NO [TOOBIG] Message exceeds APPENDLIMIT=%d\r\n" % limit)
        return True

    def _to_client_send(self, data: bytes) -> None:
        with self._to_client:
            self.client.sendall(data)

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
                literal = _LITERAL.search(line)
                if self.proxy.appendlimit and not literal:
                    line = self._announce_limit(line)
                self._to_client_send(line)
                if literal:
                    self._to_client_send(reader.read(int(literal.group(1))))
        except OSError:
            pass
        finally:
            self.close()

    def _announce_limit(self, line: bytes) -> bytes:
        if b"CAPABILITY" not in line.upper():
            return line
        line = line.replace(b" MULTIAPPEND", b"")
        return _CAPABILITY.sub(rb"\1APPENDLIMIT=%d " % self.proxy.appendlimit, line, count=1)
