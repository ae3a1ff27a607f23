"""IMAP4rev1 connector over a thin socket client of our own.

imaplib sends one literal per command and waits for each continuation, which rules out
MULTIAPPEND (RFC 3502) and LITERAL+ (RFC 7888) pipelining; the copy benchmark moves thousands of
messages, so a batch must cost about one round trip. The client below speaks just what the
connector needs: tagged commands with literals, pipelining, and a parser for untagged data.

Folder names: a path component that contains the target's hierarchy separator is stored with
that character replaced by its fullwidth form (``/`` -> ``／``, ``.`` -> ``．``), which looks
alike, is deterministic, and is mapped back when listing, so a path round-trips. The price: a
name that already held the fullwidth form reads back as the ASCII character.
"""

from __future__ import annotations

import base64
import contextlib
import email
import email.policy
import json
import logging
import re
import socket
import ssl
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone

from . import utf7
from .base import (
    INBOX,
    MAIL,
    AuthError,
    Changes,
    Connector,
    ConnectorError,
    Folder,
    Item,
    ItemRef,
    Reach,
    StoreResult,
    TargetLimits,
    TransientError,
    fingerprint,
)
from .oauth import token_source
from .reach import connect
from .roles import DEFAULT_ROLE_NAMES, IMAP_SPECIAL_USE, role_for_imap

log = logging.getLogger(__name__)

# Bytes of message bodies per UID FETCH when reading a whole folder (fingerprints), and UIDs per
# command: a scattered UID set must stay far below Dovecot's 64 KB command line limit.
FETCH_CHUNK_BYTES = 32 * 1024 * 1024
FETCH_CHUNK_UIDS = 1000
# Literals bigger than this are handed to the socket as they are instead of being joined into the
# command buffer, so a large message is never copied.
_INLINE_LITERAL = 64 * 1024

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NUMBERS = {name: number for number, name in enumerate(_MONTHS, 1)}
_INTERNALDATE = re.compile(r" ?(\d{1,2})-(\w{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)")
_TOKEN = re.compile(
    r' *(?:(\()|(\))|"((?:[^"\\]|\\.)*)"|((?:[^\s()"\[\]]|\[[^\]]*\])+))', re.DOTALL
)
_UID_SIZE = re.compile(r"\d+ FETCH \(UID (\d+) RFC822\.SIZE (\d+)\)", re.IGNORECASE)
# What only the full tokenizer reads: quoted strings, bracketed sections, control characters.
_NEEDS_TOKENIZER = re.compile(r'["\[\]\x00-\x08\x0b-\x1f]')
_LITERAL_AT_END = re.compile(rb"\{(\d+)\}\r\n$")
_CODE = re.compile(r"^\[([A-Z0-9.=-]+)(?: ([^\]]*))?\]")
_ATOM = re.compile(r"[^\x00-\x20\x7f(){%*\"\\\]]+")
_ROLE_ATTRIBUTES = {role: attribute for attribute, role in IMAP_SPECIAL_USE.items()}
# OAuth2 SASL mechanisms in order of preference, and how each ends an exchange the server
# refused (its error challenge must be answered before the tagged NO comes).
OAUTH_MECHANISMS = ("OAUTHBEARER", "XOAUTH2")
OAUTH_ABORT = {"OAUTHBEARER": b"\1", "XOAUTH2": b""}


@dataclass
class Literal:
    data: bytes


@dataclass
class Reply:
    """The end of one command: its status, text and what the server said meanwhile."""

    status: str
    text: str
    raw: list = field(default_factory=list)  # data responses as read: text, literal, text...
    codes: dict = field(default_factory=dict)  # response codes from untagged and tagged OK/NO
    challenge: str = ""  # AUTHENTICATE: the server's last challenge (its error, for OAuth2)
    _parsed: list = field(default_factory=list, repr=False)

    @property
    def untagged(self) -> list:
        """The data responses (FETCH, LIST, ...) parsed, when first asked for: a listing read
        by ``_uid_sizes`` is never parsed token by token."""
        if len(self._parsed) != len(self.raw):
            self._parsed = [parse(parts) for parts in self.raw]
        return self._parsed

    @property
    def ok(self) -> bool:
        return self.status == "OK"

    @property
    def code(self) -> str:
        match = _CODE.match(self.text)
        return match.group(1) if match else ""

    def data(self, name: str) -> list[list]:
        """Untagged responses of one kind (``LIST``, ``FETCH``...), without the keyword."""
        found = []
        for response in self.untagged:
            if response and response[0] == name:
                found.append(response[1:])
            elif len(response) > 1 and response[1] == name:  # "* 12 FETCH (...)"
                found.append([response[0]] + response[2:])
        return found


class ImapClient:
    """One IMAP connection. Every socket failure becomes a TransientError."""

    def __init__(
        self,
        host: str,
        port: int,
        security: str,
        verify_tls: bool,
        timeout: float,
        reach: Reach,
        disabled: frozenset[str] = frozenset(),
    ):
        self.host = host
        self.where = f"{host}:{port}"
        self.disabled = disabled
        self._capabilities: set[str] = set()
        self.goodbye = ""  # the text of the server's BYE, shown when the connection drops
        self._tags = 0
        self._tls = self._tls_context(verify_tls)
        try:
            # Dials an address the tenant's Reach allowed, resolved once (no DNS rebinding).
            sock = connect(reach, host, port, timeout)
        except OSError as exc:
            reason = _reason(exc)
            raise TransientError(f"Cannot connect to IMAP server {self.where}: {reason}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._attach(self._wrap(sock) if security == "tls" else sock)
        try:
            greeting = self._guard(self._read_greeting)
            if security == "starttls":
                self._starttls()
            elif greeting:
                self.capabilities = greeting
            if not self.capabilities:
                self.refresh_capabilities()
        except BaseException:
            self.close()
            raise

    @property
    def capabilities(self) -> set[str]:
        """What the server offers, less what the endpoint told us to do without."""
        return self._capabilities - self.disabled

    @capabilities.setter
    def capabilities(self, value: set[str]) -> None:
        self._capabilities = value

    # -- transport -------------------------------------------------------------------------

    @staticmethod
    def _tls_context(verify: bool) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _wrap(self, sock: socket.socket) -> ssl.SSLSocket:
        try:
            return self._tls.wrap_socket(sock, server_hostname=self.host)
        except ssl.SSLCertVerificationError as exc:
            sock.close()
            raise ConnectorError(
                f"The TLS certificate of {self.where} is not trusted: {exc.verify_message}"
            ) from exc
        except OSError as exc:
            sock.close()
            raise TransientError(f"TLS handshake with {self.where} failed: {_reason(exc)}") from exc

    def _attach(self, sock: socket.socket) -> None:
        self._sock = sock
        self._file = sock.makefile("rb", buffering=256 * 1024)

    def _starttls(self) -> None:
        self.refresh_capabilities()
        if "STARTTLS" not in self.capabilities:
            raise ConnectorError(f"{self.where} does not offer STARTTLS; use TLS or plain")
        self.check(self.run("STARTTLS"), "STARTTLS")
        self._attach(self._wrap(self._sock))
        self.capabilities = set()

    def close(self) -> None:
        for closable in (self._file, self._sock):
            with contextlib.suppress(OSError):
                closable.close()

    def _guard(self, function, *args):
        try:
            return function(*args)
        except ssl.SSLCertVerificationError as exc:
            raise ConnectorError(f"The TLS certificate of {self.where} is not trusted") from exc
        except (OSError, EOFError) as exc:
            self.close()
            reason = self.goodbye or _reason(exc)
            raise TransientError(f"IMAP connection to {self.where} lost: {reason}") from exc

    # -- reading ---------------------------------------------------------------------------

    def _read_parts(self) -> list:
        """One response: text lines with the literals between them (text, literal, text...)."""
        parts = []
        while True:
            line = self._file.readline()
            if not line.endswith(b"\n"):
                raise EOFError("connection closed by the server")
            match = _LITERAL_AT_END.search(line)
            if not match:
                parts.append(line.rstrip(b"\r\n").decode("utf-8", "surrogateescape"))
                return parts
            parts.append(line[: match.start()].decode("utf-8", "surrogateescape"))
            size = int(match.group(1))
            literal = self._file.read(size)
            if len(literal) != size:
                raise EOFError("connection closed inside a literal")
            parts.append(literal)

    def _read_greeting(self) -> set[str]:
        parts = self._read_parts()
        tag, _, rest = parts[0].partition(" ")
        status, _, text = rest.partition(" ")
        if status == "BYE":
            raise TransientError(f"{self.where} refused the connection: {text}")
        match = _CODE.match(text)
        if match and match.group(1) == "CAPABILITY":
            return set(match.group(2).upper().split())
        return set()

    def _read_until(self, tags: list[str]) -> dict[str, Reply]:
        """Read responses until every tag has completed; untagged ones go to the oldest."""
        replies = {tag: Reply("", "") for tag in tags}
        pending = list(tags)
        while pending:
            parts = self._read_parts()
            tag, _, rest = parts[0].partition(" ")
            if tag == "+":
                raise ConnectorError(f"{self.where} asked for data nobody announced")
            current = replies[pending[0]]
            word, _, text = rest.partition(" ")
            if tag == "*" and word.upper() in ("OK", "NO", "BAD", "BYE", "PREAUTH"):
                if word.upper() == "BYE":  # LOGOUT's answer, or the server going away
                    self.goodbye = text
                _add_code(current, text)
            elif tag == "*":
                parts[0] = rest
                current.raw.append(parts)
            elif tag in replies:
                reply = replies[tag]
                reply.status, reply.text = word.upper(), text
                _add_code(reply, text)
                pending.remove(tag)
            else:
                raise ConnectorError(f"{self.where} answered an unknown command {tag!r}")
        return replies

    def _expect_continuation(self, tag: str) -> Reply | None:
        """Wait for "+" before a synchronising literal; a tagged reply instead ends the command."""
        parts = self._read_parts()
        first, _, rest = parts[0].partition(" ")
        if first == "+":
            return None
        if first == tag:
            word, _, text = rest.partition(" ")
            return Reply(word.upper(), text)
        if first == "*":
            return self._expect_continuation(tag)
        raise ConnectorError(f"{self.where} sent {parts[0]!r} where a continuation was due")

    # -- writing ---------------------------------------------------------------------------

    def _next_tag(self) -> str:
        self._tags += 1
        return f"M{self._tags}"

    def _send(self, tag: str, parts, literal_plus: bool) -> Reply | None:
        """Send one command; with synchronising literals this may end early with a reply."""
        buffer = bytearray(tag.encode() + b" ")
        for part in parts:
            if isinstance(part, Literal):
                size = len(part.data)
                buffer += b"{%d+}\r\n" % size if literal_plus else b"{%d}\r\n" % size
                if not literal_plus:
                    self._sock.sendall(buffer)
                    buffer = bytearray()
                    early = self._expect_continuation(tag)
                    if early:
                        return early
                if size > _INLINE_LITERAL:
                    self._sock.sendall(buffer)
                    self._sock.sendall(part.data)
                    buffer = bytearray()
                else:
                    buffer += part.data
            else:
                buffer += part.encode("utf-8", "surrogateescape") if isinstance(part, str) else part
        buffer += b"\r\n"
        self._sock.sendall(buffer)
        return None

    def pipeline(self, commands: list[list], literal_plus: bool | None = None) -> list[Reply]:
        """Send several commands before reading any answer: one round trip for all of them.

        Without LITERAL+ a literal needs the server's go-ahead, so commands go one by one.
        """
        if literal_plus is None:
            literal_plus = "LITERAL+" in self.capabilities
        has_literals = any(isinstance(p, Literal) for command in commands for p in command)
        if has_literals and not literal_plus:
            return [self._guard(self._run_one, command, False) for command in commands]
        return self._guard(self._pipeline, commands, literal_plus)

    def _pipeline(self, commands, literal_plus) -> list[Reply]:
        tags = [self._next_tag() for _ in commands]
        for tag, command in zip(tags, commands, strict=True):
            self._send(tag, command, literal_plus)
        replies = self._read_until(tags)
        return [replies[tag] for tag in tags]

    def _run_one(self, command, literal_plus) -> Reply:
        tag = self._next_tag()
        early = self._send(tag, command, literal_plus)
        return early or self._read_until([tag])[tag]

    def run(self, *parts, literal_plus: bool | None = None) -> Reply:
        return self.pipeline([list(parts)], literal_plus)[0]

    def check(self, reply: Reply, what: str) -> Reply:
        if reply.ok:
            return reply
        if reply.code in ("UNAVAILABLE", "INUSE", "SERVERBUG") and reply.status == "NO":
            raise TransientError(f"{what} on {self.where} failed for now: {reply.text}")
        raise ConnectorError(f"{what} on {self.where} failed: {reply.status} {reply.text}")

    def refresh_capabilities(self) -> None:
        reply = self.check(self.run("CAPABILITY"), "CAPABILITY")
        found = reply.data("CAPABILITY")
        self.capabilities = {str(word).upper() for word in found[0]} if found else set()

    def authenticate(self, mechanism: str, response: bytes, abort: bytes = b"") -> Reply:
        """AUTHENTICATE with one client response (PLAIN, XOAUTH2, OAUTHBEARER); SASL-IR (RFC
        4959) when offered. A challenge after the response is the server's error (XOAUTH2,
        OAUTHBEARER: base64 JSON), kept in ``Reply.challenge`` and answered with ``abort``:
        empty for XOAUTH2, a single %x01 for OAUTHBEARER (RFC 7628 §3.2.3)."""
        encoded = base64.b64encode(response)
        return self._guard(self._authenticate, mechanism, encoded, base64.b64encode(abort))

    def _authenticate(self, mechanism: str, encoded: bytes, abort: bytes) -> Reply:
        tag = self._next_tag()
        if "SASL-IR" in self.capabilities:
            self._sock.sendall(f"{tag} AUTHENTICATE {mechanism} ".encode() + encoded + b"\r\n")
        else:
            self._sock.sendall(f"{tag} AUTHENTICATE {mechanism}\r\n".encode())
            early = self._expect_continuation(tag)
            if early:
                return early
            self._sock.sendall(encoded + b"\r\n")
        challenge = ""
        while True:
            parts = self._read_parts()
            first, _, rest = parts[0].partition(" ")
            if first == "+":
                challenge = rest
                self._sock.sendall(abort + b"\r\n")
            elif first == tag:
                word, _, text = rest.partition(" ")
                reply = Reply(word.upper(), text, challenge=challenge)
                _add_code(reply, text)
                return reply


def oauth_error(challenge: str) -> str:
    """The server's words from an OAuth2 error challenge: base64 of a JSON object (RFC 7628
    §3.2.2: ``status``, ``scope``, ``openid-configuration``; Gmail's XOAUTH2 sends the same
    shape), as "status=invalid_token scope=...". Anything else is shown as sent."""
    if not challenge:
        return ""
    try:
        decoded = base64.b64decode(challenge, validate=True).decode()
        fields = json.loads(decoded)
    except ValueError:
        return challenge
    if not isinstance(fields, dict):
        return decoded
    return " ".join(f"{name}={value}" for name, value in fields.items())


def _sasl_name(address: str) -> str:
    # RFC 5801 §4 saslname: "," and "=" are written =2C and =3D.
    return address.replace("=", "=3D").replace(",", "=2C")


def _add_code(reply: Reply, text: str) -> None:
    match = _CODE.match(text)
    if match:
        reply.codes[match.group(1).upper()] = match.group(2) or ""


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def parse(parts: list) -> list:
    """Tokens of one untagged response: atoms and strings as str, literals as bytes, NIL as
    None, parenthesised lists as lists."""
    if len(parts) == 1 and not _NEEDS_TOKENIZER.search(parts[0]):
        return _parse_plain(parts[0])
    stack: list[list] = [[]]
    for index, part in enumerate(parts):
        if index % 2:
            stack[-1].append(part)
            continue
        position, end = 0, len(part)
        while position < end:
            match = _TOKEN.match(part, position)
            if not match:
                if part[position:].strip():
                    raise ConnectorError(f"Cannot parse IMAP response near {part[position:]!r}")
                break
            position = match.end()
            opening, closing, quoted, atom = match.groups()
            if opening:
                stack.append([])
            elif closing:
                if len(stack) < 2:
                    raise ConnectorError("Unbalanced parenthesis in IMAP response")
                inner = stack.pop()
                stack[-1].append(inner)
            elif quoted is not None:
                stack[-1].append(re.sub(r"\\(.)", r"\1", quoted) if "\\" in quoted else quoted)
            else:
                stack[-1].append(None if atom.upper() == "NIL" else atom)
    if len(stack) != 1:
        raise ConnectorError("Unbalanced parenthesis in IMAP response")
    return stack[0]


def _parse_plain(text: str) -> list:
    """``parse`` for a response of atoms and parentheses only, the shape of nearly every line
    of a listing (``* 12 FETCH (UID 40 RFC822.SIZE 2291)``): splitting on blanks is several
    times faster than the tokenizer, and a 5,000-item verification reads 10,000 such lines."""
    stack: list[list] = [[]]
    for token in text.replace("(", " ( ").replace(")", " ) ").split():
        if token == "(":
            stack.append([])
        elif token == ")":
            if len(stack) < 2:
                raise ConnectorError("Unbalanced parenthesis in IMAP response")
            inner = stack.pop()
            stack[-1].append(inner)
        else:
            stack[-1].append(None if token.upper() == "NIL" else token)
    if len(stack) != 1:
        raise ConnectorError("Unbalanced parenthesis in IMAP response")
    return stack[0]


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def text_of(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value or ""


def parse_internaldate(text: str) -> datetime:
    match = _INTERNALDATE.fullmatch(text)
    if not match:
        raise ConnectorError(f"Unreadable INTERNALDATE {text!r}")
    day, month, year, hour, minute, second, sign, off_h, off_m = match.groups()
    offset = timedelta(hours=int(off_h), minutes=int(off_m)) * (-1 if sign == "-" else 1)
    return datetime(
        int(year),
        _MONTH_NUMBERS[month.title()],
        int(day),
        int(hour),
        int(minute),
        int(second),
        tzinfo=timezone(offset),
    )


def format_internaldate(when: datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    minutes = int(when.utcoffset().total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    month = _MONTHS[when.month - 1]
    return (
        f'"{when.day:02d}-{month}-{when.year:04d} {when.hour:02d}:{when.minute:02d}:'
        f'{when.second:02d} {sign}{hours:02d}{minutes:02d}"'
    )


def uid_set(uids) -> str:
    """Compact sequence set ("1:5,9") of UIDs in ascending order."""
    ranges = []
    for uid in sorted(uids):
        if ranges and uid == ranges[-1][1] + 1:
            ranges[-1][1] = uid
        else:
            ranges.append([uid, uid])
    return ",".join(str(a) if a == b else f"{a}:{b}" for a, b in ranges)


def expand_uid_set(text: str) -> list[int]:
    uids = []
    for piece in text.split(","):
        first, _, last = piece.partition(":")
        a, b = int(first), int(last or first)
        uids.extend(range(a, b + 1) if a <= b else range(a, b - 1, -1))
    return uids


def _pairs(values: list) -> dict:
    return {str(values[i]).upper(): values[i + 1] for i in range(0, len(values) - 1, 2)}


def _fullwidth(char: str) -> str:
    return chr(ord(char) + 0xFEE0) if "!" <= char <= "~" else "_"


class ImapConnector(Connector):
    kind = "imap"

    def __init__(self, endpoint, mailbox):
        super().__init__(endpoint, mailbox)
        self._client: ImapClient | None = None
        self.separator = "/"
        self._prefix = ""
        self._other_prefixes: tuple[str, ...] = ()
        self._selected: tuple[str, dict] | None = None  # (native id, response codes)
        self._listing: list[tuple[Folder, set[str]]] | None = None

    # -- connection ------------------------------------------------------------------------

    def open(self) -> None:
        if self._client:
            return
        endpoint = self.endpoint
        port = endpoint.port or (993 if endpoint.security == "tls" else 143)
        # Servers with broken extensions can be told to do without ("disable": ["MULTIAPPEND"]).
        disabled = frozenset(name.upper() for name in self.options["disable"])
        client = ImapClient(
            endpoint.host,
            port,
            endpoint.security,
            endpoint.verify_tls,
            self.options["timeout"],
            endpoint.reach,
            disabled,
        )
        try:
            self._client = client
            self._log_in()
            self._read_namespace()
        except BaseException:
            self.close()
            raise
        log.debug("IMAP %s open on %s", self.mailbox, client.where)

    def close(self) -> None:
        if self._client:
            with contextlib.suppress(ConnectorError):
                self._client.run("LOGOUT")
            self._client.close()
        self._client, self._selected, self._listing = None, None, None

    @property
    def client(self) -> ImapClient:
        if not self._client:
            self.open()
        return self._client

    def offers(self, capability: str) -> bool:
        return capability in self.client.capabilities

    def _log_in(self) -> None:
        endpoint = self.endpoint
        if endpoint.auth_method == "oauth2":
            self._log_in_oauth2()
        elif endpoint.impersonation:
            # RFC 4616: authenticate as the admin (authcid), act as the mailbox (authzid).
            self.login_plain(endpoint.impersonation, endpoint.secret, authzid=self.mailbox)
        elif "AUTH=PLAIN" in self.client.capabilities:
            self.login_plain(endpoint.username, endpoint.secret)
        else:
            self._login(endpoint.username, endpoint.secret)

    def login_plain(self, user: str, password: str, authzid: str = "") -> None:
        response = "\0".join((authzid, user, password)).encode()
        reply = self._client.authenticate("PLAIN", response)
        self._after_login(reply, user, authzid)

    def _log_in_oauth2(self) -> None:
        """The mailbox logs in with an access token from the tenant's token source (Microsoft
        client credentials or a Google service account, ``oauth.token_source``). A token the
        server refuses is dropped and a fresh one tried once: it may have been revoked, or
        expired early by the server's clock, while the cache still holds it."""
        tokens = token_source(self.endpoint, self.options)
        mechanism = self._oauth_mechanism()
        for attempt in (1, 2):
            response = self._oauth_response(mechanism, tokens.token(self.mailbox))
            reply = self._client.authenticate(mechanism, response, OAUTH_ABORT[mechanism])
            if reply.ok or attempt == 2 or reply.code in ("UNAVAILABLE", "INUSE"):
                break
            tokens.forget(self.mailbox)
        self._after_login(reply, self.mailbox, "", oauth=True)

    def _oauth_mechanism(self) -> str:
        """OAUTHBEARER, the standard (RFC 7628), when offered; else XOAUTH2, what Gmail and
        Exchange Online document."""
        for mechanism in OAUTH_MECHANISMS:
            if f"AUTH={mechanism}" in self._client.capabilities:
                return mechanism
        offered = sorted(c for c in self._client.capabilities if c.startswith("AUTH="))
        raise ConnectorError(
            f"{self._client.where} offers no OAuth2 login (AUTH=OAUTHBEARER or AUTH=XOAUTH2); "
            f"it offers {', '.join(offered) or 'no AUTHENTICATE mechanism'}"
        )

    def _oauth_response(self, mechanism: str, token: str) -> bytes:
        if mechanism == "OAUTHBEARER":
            # RFC 7628 §3.1: GS2 header naming the mailbox, then host, port and the token.
            host, port = self._client.where.rsplit(":", 1)
            gs2 = f"n,a={_sasl_name(self.mailbox)},"
            return f"{gs2}\1host={host}\1port={port}\1auth=Bearer {token}\1\1".encode()
        # XOAUTH2: https://developers.google.com/workspace/gmail/imap/xoauth2-protocol and the
        # "SASL XOAUTH2" section of Microsoft's page cited in ``oauth``.
        return f"user={self.mailbox}\1auth=Bearer {token}\1\1".encode()

    def _login(self, user: str, password: str) -> None:
        if "LOGINDISABLED" in self._client.capabilities:
            raise ConnectorError(f"{self._client.where} refuses LOGIN in the clear; use TLS")
        reply = self._client.run("LOGIN ", Literal(user.encode()), " ", Literal(password.encode()))
        self._after_login(reply, user, "")

    def _after_login(self, reply: Reply, user: str, authzid: str, oauth: bool = False) -> None:
        if not reply.ok:
            who = f"{user} acting for {authzid}" if authzid else user
            if oauth:
                who = f"{user} with the application's OAuth2 token"
            if reply.code in ("UNAVAILABLE", "INUSE"):
                raise TransientError(f"IMAP login of {who} unavailable for now: {reply.text}")
            said = oauth_error(reply.challenge)
            raise AuthError(
                f"IMAP login refused for {who} on {self._client.where}: {reply.text}"
                + (f" ({said})" if said else "")
            )
        capability = reply.codes.get("CAPABILITY")
        if capability:
            self._client.capabilities = set(capability.upper().split())
        else:
            self._client.refresh_capabilities()

    def _read_namespace(self) -> None:
        if "NAMESPACE" in self.client.capabilities:
            reply = self.client.check(self.client.run("NAMESPACE"), "NAMESPACE")
            personal, *others = reply.data("NAMESPACE")[0]
            if personal:
                self._prefix = text_of(personal[0][0])
                self.separator = text_of(personal[0][1]) or self.separator
            self._other_prefixes = tuple(
                text_of(space[0]) for group in others if group for space in group if space[0]
            )
            return
        reply = self.client.check(self.client.run('LIST "" ""'), "LIST")
        found = reply.data("LIST")
        if found and found[0][1]:
            self.separator = text_of(found[0][1])

    # -- names -----------------------------------------------------------------------------

    def path_of(self, name: str) -> tuple[str, ...]:
        if name.upper() == "INBOX":
            return ("INBOX",)
        if self._prefix and name.startswith(self._prefix):
            name = name[len(self._prefix) :]
        lookalike = _fullwidth(self.separator)
        return tuple(
            utf7.decode(part).replace(lookalike, self.separator)
            for part in name.split(self.separator)
        )

    def name_of(self, path: tuple[str, ...]) -> str:
        if len(path) == 1 and path[0].upper() == "INBOX":
            return "INBOX"
        lookalike = _fullwidth(self.separator)
        encoded = (utf7.encode(part.replace(self.separator, lookalike)) for part in path)
        return self._prefix + self.separator.join(encoded)

    # -- folders ---------------------------------------------------------------------------

    def folders(self) -> list[Folder]:
        # Always listed afresh: a pooled connection's earlier listing holds stale counts, and
        # STATUS of the folder still selected answers from that selection's old view
        # (RFC 3501 6.3.10), so the selection is released first (UNSELECT, RFC 3691).
        self._listing = None
        if self._selected:
            self.client.run("UNSELECT" if self.offers("UNSELECT") else "NOOP")
            self._selected = None
        return [folder for folder, _ in self._list()]

    def _list(self) -> list[tuple[Folder, set[str]]]:
        if self._listing is None:
            self._listing = self._fetch_listing()
        return self._listing

    def _fetch_listing(self) -> list[tuple[Folder, set[str]]]:
        status_items = "MESSAGES SIZE" if self.offers("STATUS=SIZE") else "MESSAGES"
        returns = []
        if self.offers("SPECIAL-USE") and self.offers("LIST-EXTENDED"):
            returns.append("SPECIAL-USE")
        if self.offers("LIST-STATUS"):
            returns.append(f"STATUS ({status_items})")
        command = 'LIST "" "*"' + (f" RETURN ({' '.join(returns)})" if returns else "")
        reply = self.client.check(self.client.run(command), "LIST")
        listed = []
        for attributes, _separator, raw, *_extended in reply.data("LIST"):
            name = text_of(raw)
            flags = {str(a).title() for a in attributes}
            if flags & {"\\Noselect", "\\Nonexistent"} or self._foreign(name):
                continue
            listed.append((name, flags))
        statuses = {text_of(name): _pairs(values) for name, values in reply.data("STATUS")}
        if not self.offers("LIST-STATUS"):
            statuses = self._status_each([name for name, _ in listed], status_items)
        return [
            (self._folder(name, flags, statuses.get(name, {})), flags) for name, flags in listed
        ]

    def _foreign(self, name: str) -> bool:
        """Names in other users' or shared namespaces are not this mailbox's folders."""
        return any(name.startswith(prefix) for prefix in self._other_prefixes)

    def _status_each(self, names: list[str], items: str) -> dict[str, dict]:
        replies = self.client.pipeline([[f"STATUS {quote(name)} ({items})"] for name in names])
        statuses = {}
        for reply in replies:
            for name, values in reply.data("STATUS"):
                statuses[text_of(name)] = _pairs(values)
        return statuses

    def _folder(self, name: str, flags: set[str], status: dict) -> Folder:
        path = self.path_of(name)
        return Folder(
            path=path,
            kind=MAIL,
            role=INBOX if name.upper() == "INBOX" else role_for_imap(flags, path),
            count=int(status.get("MESSAGES") or 0),
            size=int(status.get("SIZE") or 0),
            native_id=name,
        )

    def ensure_folder(self, path: tuple[str, ...], kind: str, role: str | None) -> Folder:
        if kind != MAIL:
            raise ConnectorError(f"IMAP folders hold mail only, not {kind}: {'/'.join(path)}")
        if role:
            found = self._folder_for_role(role)
            if found:
                return found
            path = (DEFAULT_ROLE_NAMES[role],)
        for folder, _ in self._list():
            if folder.path == path:
                return folder
        return self._create(path, role)

    def _folder_for_role(self, role: str) -> Folder | None:
        """The target's own folder for a role: SPECIAL-USE first, then a well-known name."""
        attribute = _ROLE_ATTRIBUTES.get(role)
        by_name = None
        for folder, flags in self._list():
            if attribute and attribute in flags:
                return folder
            if folder.role == role and by_name is None:
                by_name = folder
        return by_name

    def _create(self, path: tuple[str, ...], role: str | None) -> Folder:
        name = self.name_of(path)
        attribute = _ROLE_ATTRIBUTES.get(role or "")
        use = f" (USE ({attribute}))" if attribute and self.offers("CREATE-SPECIAL-USE") else ""
        create, _ = self.client.pipeline(
            [[f"CREATE {quote(name)}{use}"], [f"SUBSCRIBE {quote(name)}"]]
        )
        if not create.ok and create.code != "ALREADYEXISTS":
            self.client.check(create, f"Creating folder {'/'.join(path)}")
        self._listing = None
        return Folder(path=path, kind=MAIL, role=role, native_id=name)

    # -- reading ---------------------------------------------------------------------------

    def _examine(self, folder: Folder, fresh: bool = False) -> dict:
        """Open a folder read-only (EXAMINE never sets \\Seen); returns its response codes."""
        if not fresh and self._selected and self._selected[0] == folder.native_id:
            return self._selected[1]
        return self._open(folder, "EXAMINE")

    def _select(self, folder: Folder) -> dict:
        """Open a folder read-write, as STORE needs; a read-write selection is reused."""
        selected = self._selected
        if selected and selected[0] == folder.native_id and "READ-WRITE" in selected[1]:
            return selected[1]
        return self._open(folder, "SELECT")

    def _open(self, folder: Folder, command: str) -> dict:
        condstore = " (CONDSTORE)" if self.offers("CONDSTORE") else ""
        reply = self.client.run(f"{command} {quote(folder.native_id)}{condstore}")
        self.client.check(reply, f"Opening folder {folder.display}")
        codes = dict(reply.codes)
        codes["EXISTS"] = next((int(n) for n, *_ in reply.data("EXISTS")), 0)
        self._selected = (folder.native_id, codes)
        return codes

    def changes(self, folder: Folder, state: dict, before: datetime | None = None) -> Changes:
        """New items since the UID watermark in ``state``. With ``before``, the watermark stops
        below the first item left out, so the next call lists the rest again together with some
        already reported; the engine skips those it has copied."""
        codes = self._examine(folder, fresh=True)
        uidvalidity = int(codes.get("UIDVALIDITY") or 0)
        uidnext = int(codes.get("UIDNEXT") or 0)
        modseq = int(codes["HIGHESTMODSEQ"]) if codes.get("HIGHESTMODSEQ") else None
        reset = bool(state) and state.get("uidvalidity") != uidvalidity
        start = int(state.get("uidnext") or 1) if state and not reset else 1
        new_state = {"uidvalidity": uidvalidity, "uidnext": uidnext, "highestmodseq": modseq}
        # UIDs only grow (RFC 3501 §2.3.1.1): below UIDNEXT with the same UIDVALIDITY, nothing
        # can be new, so an unchanged folder costs this one EXAMINE.
        if (uidnext and start >= uidnext) or not codes["EXISTS"]:
            new_state["uidnext"] = max(start, uidnext)
            return Changes([], new_state, reset)
        reply = self.client.run(f"UID FETCH {start}:* (UID RFC822.SIZE INTERNALDATE)")
        self.client.check(reply, f"Listing folder {folder.display}")
        items, skipped = [], []
        for data in _listed(reply):
            uid = int(data["UID"])
            if uid < start:  # "N:*" always includes the highest UID, even below N
                continue
            received = parse_internaldate(data["INTERNALDATE"])
            if before is not None and received >= before:
                skipped.append(uid)
                continue
            items.append(ItemRef(f"{uidvalidity}:{uid}", int(data["RFC822.SIZE"]), received))
        if skipped:
            # Items left for later keep the watermark below them.
            new_state["uidnext"] = min(skipped)
        items.sort(key=lambda item: int(item.source_id.partition(":")[2]))
        return Changes(items, new_state, reset)

    def _uids(self, folder: Folder, ids: list[str]) -> list[int]:
        uidvalidity = self._examine(folder).get("UIDVALIDITY")
        uids = []
        for source_id in ids:
            validity, _, uid = source_id.partition(":")
            if not uid.isdigit():
                raise ConnectorError(f"{source_id!r} is not an IMAP item id (UIDVALIDITY:UID)")
            if validity != uidvalidity:
                raise ConnectorError(
                    f"Folder {folder.display} was reset (UIDVALIDITY {uidvalidity}, "
                    f"item {source_id}): list it again"
                )
            uids.append(int(uid))
        return uids

    def fetch(self, folder: Folder, ids: list[str], format: str = "rfc822") -> list[Item]:
        if not ids:
            return []
        uids = self._uids(folder, ids)
        validity = self._selected[1]["UIDVALIDITY"]
        reply = self.client.run(f"UID FETCH {uid_set(uids)} (UID FLAGS INTERNALDATE BODY.PEEK[])")
        self.client.check(reply, f"Reading messages of {folder.display}")
        found = {}
        for _, values in reply.data("FETCH"):
            data = _pairs(values)
            if "BODY[]" not in data:  # a FLAGS update for another message
                continue
            found[int(data["UID"])] = Item(
                source_id=f"{validity}:{data['UID']}",
                data=_body(data["BODY[]"]),
                flags=frozenset(str(f) for f in data.get("FLAGS") or () if f != "\\Recent"),
                received=parse_internaldate(data["INTERNALDATE"]),
            )
        return [found[uid] for uid in uids if uid in found]

    def fingerprints(self, folder: Folder) -> dict[str, list[str]]:
        codes = self._examine(folder, fresh=True)
        result: dict[str, list[str]] = {}
        if not codes["EXISTS"]:
            return result
        reply = self.client.run("UID FETCH 1:* (UID RFC822.SIZE)")
        self.client.check(reply, f"Listing folder {folder.display}")
        sizes = [(int(d["UID"]), int(d["RFC822.SIZE"])) for d in _listed(reply)]
        validity = codes["UIDVALIDITY"]
        for chunk in _chunks(sorted(sizes), FETCH_CHUNK_BYTES):
            reply = self.client.run(f"UID FETCH {uid_set(chunk)} (UID BODY.PEEK[])")
            self.client.check(reply, f"Reading messages of {folder.display}")
            for data in map(_pairs, _values(reply)):
                if "BODY[]" in data:
                    key = fingerprint(_body(data["BODY[]"]))
                    result.setdefault(key, []).append(f"{validity}:{data['UID']}")
        return result

    def stored(self, folder: Folder, ids: list[str]) -> dict[str, tuple[bytes, int]]:
        """One ``UID FETCH (RFC822.SIZE BODY.PEEK[HEADER])`` of the ids just stored, after a
        fresh EXAMINE in the same round trip: a selection made before the APPEND may not show
        the new messages yet (RFC 3501 §6.1.2, §7.3.1; seen with a NOOP on a folder whose first
        message had just been appended), a new one always does."""
        by_validity: dict[str, list[int]] = {}
        for target_id in ids:
            id_validity, _, uid = target_id.partition(":")
            if uid.isdigit():
                by_validity.setdefault(id_validity, []).append(int(uid))
        if len(by_validity) != 1:
            return {}
        ((validity, uids),) = by_validity.items()
        condstore = " (CONDSTORE)" if self.offers("CONDSTORE") else ""
        examine, reply = self.client.pipeline(
            [
                [f"EXAMINE {quote(folder.native_id)}{condstore}"],
                [f"UID FETCH {uid_set(uids)} (UID RFC822.SIZE BODY.PEEK[HEADER])"],
            ]
        )
        self.client.check(examine, f"Opening folder {folder.display}")
        codes = dict(examine.codes)
        codes["EXISTS"] = next((int(n) for n, *_ in examine.data("EXISTS")), 0)
        self._selected = (folder.native_id, codes)
        if str(codes.get("UIDVALIDITY")) != validity:
            return {}  # the folder was replaced meanwhile: those ids name nothing here
        self.client.check(reply, f"Reading back messages of {folder.display}")
        found = {}
        for data in map(_pairs, _values(reply)):
            if "UID" in data and "BODY[HEADER]" in data:
                header = _body(data["BODY[HEADER]"])
                found[f"{validity}:{data['UID']}"] = (header, int(data["RFC822.SIZE"]))
        return found

    def target_generations(self, folders: list[Folder]) -> dict[str, str]:
        """Each folder's UIDVALIDITY by ``STATUS (UIDVALIDITY)`` (RFC 3501 §6.3.10), all in one
        round trip: a new UIDVALIDITY means the ids recorded before name nothing (§2.3.1.1).
        A folder STATUS refuses (NO: it does not exist) is ""."""
        if not folders:
            return {}
        commands = [[f"STATUS {quote(folder.native_id)} (UIDVALIDITY)"] for folder in folders]
        if self._selected:
            # STATUS of the selected folder may answer from that selection's old view.
            commands.insert(0, ["UNSELECT" if self.offers("UNSELECT") else "NOOP"])
            self._selected = None
        replies = self.client.pipeline(commands)[-len(folders) :]
        found = {}
        for folder, reply in zip(folders, replies, strict=True):
            if reply.status == "NO":
                found[folder.native_id] = ""
                continue
            self.client.check(reply, f"STATUS of {folder.display}")
            for _, values in reply.data("STATUS"):
                if _pairs(values).get("UIDVALIDITY"):
                    found[folder.native_id] = str(_pairs(values)["UIDVALIDITY"])
        return found

    def flag_changes(self, folder: Folder, state: dict) -> dict[str, frozenset[str]]:
        """Flags changed since ``state`` by CONDSTORE (RFC 7162): nothing when HIGHESTMODSEQ has
        not moved (the EXAMINE ``changes`` just made tells), else one ``CHANGEDSINCE`` fetch.
        Without CONDSTORE, or after a UIDVALIDITY reset, {}: flags are then not synced."""
        codes = self._examine(folder)
        modseq, current = state.get("highestmodseq"), codes.get("HIGHESTMODSEQ")
        validity = codes.get("UIDVALIDITY")
        if not (modseq and current and self.offers("CONDSTORE")) or int(current) <= modseq:
            return {}
        if str(state.get("uidvalidity")) != validity or not codes["EXISTS"]:
            return {}
        reply = self.client.run(f"UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE {modseq})")
        self.client.check(reply, f"Reading flag changes of {folder.display}")
        changed = {}
        for data in map(_pairs, _values(reply)):
            if "UID" in data and "FLAGS" in data:
                flags = frozenset(str(f) for f in data["FLAGS"] if f != "\\Recent")
                changed[f"{validity}:{data['UID']}"] = flags
        return changed

    # -- writing ---------------------------------------------------------------------------

    def set_flags(self, folder: Folder, flags: dict[str, frozenset[str]]) -> None:
        """``UID STORE ... FLAGS.SILENT``: the source's flags replace the target's, \\Seen
        included. One STORE per distinct flag set, all pipelined in one round trip."""
        if not flags:
            return
        validity = self._select(folder).get("UIDVALIDITY")
        groups: dict[str, list[int]] = {}
        for target_id, wanted in flags.items():
            id_validity, _, uid = target_id.partition(":")
            if id_validity == validity and uid.isdigit():  # another UIDVALIDITY: gone
                groups.setdefault(_storable(wanted), []).append(int(uid))
        commands = [
            [f"UID STORE {uid_set(uids[i : i + FETCH_CHUNK_UIDS])} FLAGS.SILENT {stored}"]
            for stored, uids in groups.items()
            for i in range(0, len(uids), FETCH_CHUNK_UIDS)
        ]
        for reply in self.client.pipeline(commands):
            self.client.check(reply, f"Setting flags in {folder.display}")

    def store(self, folder: Folder, items: list[Item]) -> list[StoreResult]:
        limit = self._appendlimit()
        if limit and any(len(item.data) > limit for item in items):
            # RFC 7889 §3: a client SHOULD NOT send a message over the announced limit.
            fitting = [item for item in items if len(item.data) <= limit]
            stored = {r.source_id: r for r in self.store(folder, fitting)}
            refusal = f"Message of {{}} bytes exceeds the server's APPENDLIMIT of {limit} bytes"
            return [
                stored.get(item.source_id)
                or StoreResult(item.source_id, None, refusal.format(len(item.data)), "TOOBIG")
                for item in items
            ]
        if not items:
            return []
        mailbox = quote(folder.native_id)
        if len(items) > 1 and self.offers("MULTIAPPEND"):
            command = [f"APPEND {mailbox}"]
            for item in items:
                command.extend(_append_arguments(item))
            reply = self._append([command])[0]
            if reply.ok:
                targets = _target_ids(reply, len(items))
                return [StoreResult(i.source_id, t) for i, t in zip(items, targets, strict=True)]
            # RFC 3502: a failed MULTIAPPEND stores nothing; single APPENDs find the culprit.
            log.info("MULTIAPPEND into %s refused (%s); one by one", folder.display, reply.text)
        replies = self._append([[f"APPEND {mailbox}", *_append_arguments(item)] for item in items])
        return self._results(items, replies)

    def _append(self, commands: list[list]) -> list[Reply]:
        self._listing = None
        return self.client.pipeline(commands, literal_plus=self.offers("LITERAL+"))

    @staticmethod
    def _results(items: list[Item], replies: list[Reply]) -> list[StoreResult]:
        results = []
        for item, reply in zip(items, replies, strict=True):
            if reply.ok:
                results.append(StoreResult(item.source_id, _target_ids(reply, 1)[0]))
            else:
                code = reply.code or reply.status
                results.append(StoreResult(item.source_id, None, reply.text, code))
        return results

    # -- discovery (before copying) --------------------------------------------------------

    def limits(self) -> TargetLimits:
        """The largest message this server takes: APPENDLIMIT=N in CAPABILITY (RFC 7889 §3),
        else the tenant's ``max_item_size`` option (Dovecot 2.3 enforces
        ``quota_max_mail_size`` without announcing it). The storage quota of the INBOX's quota
        root: ``GETQUOTAROOT INBOX`` (RFC 9208 §4.3.2, formerly RFC 2087), whose STORAGE
        resource counts units of 1024 octets (RFC 9208 §5.1)."""
        limits = super().limits()
        if self._appendlimit():
            limits = TargetLimits(self._appendlimit(), "the server's APPENDLIMIT")
        if not self.offers("QUOTA"):
            return limits
        reply = self.client.run("GETQUOTAROOT INBOX")
        if not reply.ok:
            return limits
        for _root, resources in reply.data("QUOTA"):
            values = [str(value).upper() for value in resources or ()]
            for i in range(0, len(values) - 2, 3):
                if values[i] == "STORAGE" and values[i + 1].isdigit() and values[i + 2].isdigit():
                    used, limit = int(values[i + 1]) * 1024, int(values[i + 2]) * 1024
                    return replace(limits, quota_limit=limit, quota_used=used)
        return limits

    def _appendlimit(self) -> int:
        """APPENDLIMIT=N in CAPABILITY (RFC 7889 §3); 0 when not announced. (A bare APPENDLIMIT
        means the limit differs per folder, which STATUS would tell; not read.)"""
        announced = next(
            (c.partition("=")[2] for c in self.client.capabilities if c.startswith("APPENDLIMIT=")),
            "",
        )
        return int(announced) if announced.isdigit() else 0

    def subjects(self, folder: Folder, ids: list[str]) -> dict[str, str]:
        """One UID FETCH of the Subject header field of ``ids`` (RFC 3501 §6.4.5)."""
        if not ids:
            return {}
        uids = self._uids(folder, ids)
        validity = self._selected[1]["UIDVALIDITY"]
        reply = self.client.run(
            f"UID FETCH {uid_set(uids)} (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])"
        )
        self.client.check(reply, f"Reading subjects in {folder.display}")
        found = {}
        for data in map(_pairs, _values(reply)):
            header = data.get("BODY[HEADER.FIELDS (SUBJECT)]")
            if "UID" in data and header is not None:
                found[f"{validity}:{data['UID']}"] = subject_of(_body(header))
        return found

    def folder_problem(self, path: tuple[str, ...], kind: str) -> str:
        if kind != MAIL:
            return f"IMAP folders hold mail only, not {kind}"
        for part in path:
            if any(ord(char) < 0x20 or char == "\x7f" for char in part):
                return "a folder name holds control characters"
        return super().folder_problem(path, kind)

    def inventory(self, folders: list[Folder]) -> list[dict[str, int]]:
        """Each folder's "UIDVALIDITY:UID" -> RFC822.SIZE: EXAMINE then ``UID FETCH 1:* (UID
        RFC822.SIZE)`` (RFC 3501 §6.3.2, §6.4.8), pipelined for many folders at once (answers
        come in command order, §5.5), so a mailbox of 30 folders costs a round trip or two."""
        result, per_trip = [], 50
        for start in range(0, len(folders), per_trip):
            chunk = folders[start : start + per_trip]
            commands = []
            for folder in chunk:
                commands.append([f"EXAMINE {quote(folder.native_id)}"])
                commands.append(["UID FETCH 1:* (UID RFC822.SIZE)"])
            self._selected = None  # the pipeline leaves another folder selected
            replies = self.client.pipeline(commands)
            for n, folder in enumerate(chunk):
                opened, listed = replies[2 * n], replies[2 * n + 1]
                self.client.check(opened, f"Opening folder {folder.display}")
                exists = next((int(count) for count, *_ in opened.data("EXISTS")), 0)
                if not exists:
                    result.append({})
                    continue
                self.client.check(listed, f"Listing folder {folder.display}")
                validity = opened.codes.get("UIDVALIDITY")
                result.append(
                    {f"{validity}:{uid}": size for uid, size in _uid_sizes(listed).items()}
                )
        return result


def _target_ids(reply: Reply, count: int) -> list[str]:
    """Target ids from APPENDUID (RFC 4315); empty strings when the server has no UIDPLUS."""
    validity, _, uids = reply.codes.get("APPENDUID", "").partition(" ")
    if not uids:
        return [""] * count
    return [f"{validity}:{uid}" for uid in expand_uid_set(uids)]


def _body(value) -> bytes:
    """Bodies come as literals; a tiny one may come quoted, an empty one as NIL."""
    if isinstance(value, bytes):
        return value
    return (value or "").encode("utf-8", "surrogateescape")


def _values(reply: Reply):
    return (values for _, values in reply.data("FETCH"))


def _listed(reply: Reply):
    """FETCH data answering a listing, without unsolicited flag updates mixed in (§7.4.2)."""
    return (data for data in map(_pairs, _values(reply)) if "RFC822.SIZE" in data)


def _uid_sizes(reply: Reply) -> dict[str, int]:
    """UID -> RFC822.SIZE from a listing's FETCH responses. The usual line is read with one
    regular expression (a 5,000-item folder is 5,000 of them), any other shape through
    ``parse``; unsolicited flag updates (§7.4.2) carry no size and are passed over."""
    found = {}
    for parts in reply.raw:
        match = _UID_SIZE.fullmatch(parts[0]) if len(parts) == 1 else None
        if match:
            found[match[1]] = int(match[2])
            continue
        response = parse(parts)
        if len(response) > 2 and str(response[1]).upper() == "FETCH":
            data = _pairs(response[2])
            if "UID" in data and "RFC822.SIZE" in data:
                found[str(data["UID"])] = int(data["RFC822.SIZE"])
    return found


def _chunks(sizes: list[tuple[int, int]], limit: int):
    chunk, total = [], 0
    for uid, size in sizes:
        if chunk and (total + size > limit or len(chunk) >= FETCH_CHUNK_UIDS):
            yield chunk
            chunk, total = [], 0
        chunk.append(uid)
        total += size
    if chunk:
        yield chunk


def _storable(flags) -> str:
    # \Recent is the server's to set (RFC 3501 §2.3.2); flags that are not atoms cannot be sent.
    kept = sorted(f for f in flags if f != "\\Recent" and _ATOM.fullmatch(f.lstrip("\\")))
    return f"({' '.join(kept)})"


def _append_arguments(item: Item) -> list:
    arguments = [f" {_storable(item.flags)}"]
    if item.received:
        arguments.append(" " + format_internaldate(item.received))
    arguments.extend([" ", Literal(item.data)])
    return arguments


def subject_of(header: bytes) -> str:
    """The decoded Subject of a header block (RFC 2047 words decoded), or ""."""
    message = email.message_from_bytes(header, policy=email.policy.default)
    try:
        return str(message.get("Subject") or "").strip()
    except (ValueError, LookupError):
        return ""
