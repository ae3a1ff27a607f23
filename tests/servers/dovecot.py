"""Two real Dovecot IMAP servers on loopback, for the connector, copy-engine and browser tests.

Usable without pytest too (the copy benchmark does)::

    server = start_dovecot(Path(tempfile.mkdtemp()), separator=".")
    server.add_user("ann", "pw")
    server.load("ann", "pw", "INBOX", [RawMessage(data, {"\\Seen"}, when)])
    ...
    server.stop()

Each server runs ``dovecot -F -c CONFIG`` with its own config (never the system one), base_dir,
log and passwd files. Choices (the copy-engine and maildir tests rely on them):

- Separator and layout differ between the pair. "a" uses the IMAP separator ``/`` over the
  Maildir++ layout (``.Sent``, ``.a.b`` on disk: what Courier/Debian setups carry); "b" uses ``.``
  over ``LAYOUT=fs`` (nested directories). The listescape plugin lets each store the other
  server's separator in a name (``v1.2`` on "a", ``a/b`` on "b") as ``\\2e``/``\\2f`` on disk, so
  only the IMAP separator itself is forbidden in a name, as on most real servers.
- ``mail_save_crlf = yes``: files on disk hold the CRLF bytes that were appended.
- ``mail_fsync = never``: throwaway servers need no durability, and loading thousands of
  messages for the copy benchmark would otherwise wait on the disk (both tools compared there
  write to the same servers, so the comparison stays fair).
- Each server has its own time zone (``TZ``): maildir keeps INTERNALDATE as the file's mtime,
  so Dovecot answers INTERNALDATE in its own zone whatever offset the APPEND gave. Only the
  instant survives a copy, never the offset.
- The quota plugin's ``quota_max_mail_size`` gives the APPEND size limit a test can hit.
- A master user (``passdb { master = yes }``) so an admin acts for any mailbox, either
  ``AUTHENTICATE PLAIN`` with authzid=mailbox or ``LOGIN mailbox*admin``.
- Users live in one passwd-file each (``users/NAME``): adding a user never races Dovecot reading
  a half-written shared file, and no auth cache is configured.
"""

from __future__ import annotations

import imaplib
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from mailboxes.connectors.base import Endpoint

from . import PortTaken, in_use, require_binary, start_on_free_ports, wait_for_port
from .token_introspection import TokenIntrospection

MASTER_USER = "admin"
MASTER_PASSWORD = "master-secret"
SPECIAL_USE = {"Sent": "\\Sent", "Trash": "\\Trash", "Drafts": "\\Drafts", "Junk": "\\Junk"}
SPECIAL_USE["Archive"] = "\\Archive"

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
instance_name = mailferry-{name}
login_greeting = {greeting}
protocols = imap
listen = 127.0.0.1
shutdown_clients = yes
import_environment = TZ
default_internal_user = {internal_user}
default_login_user = {login_user}
first_valid_uid = {uid}
first_valid_gid = {gid}
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login{oauth2_mechanisms}
auth_master_user_separator = *
mail_location = maildir:~/Maildir{layout}
mail_save_crlf = yes
mail_fsync = {fsync}
mail_plugins = quota listescape
mail_max_userip_connections = 200
namespace inbox {{
  inbox = yes
  separator = {separator}
{mailboxes}
}}
plugin {{
  quota = count:User quota
  quota_rule = *:storage={quota}
  quota_vsizes = yes
  quota_max_mail_size = {max_message_size}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root}/master.passwd
  master = yes
  pass = yes
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root}/users/%u
{password_mechanisms}}}
{oauth2_passdbs}userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
{imap_quota}"""


# Dovecot 2.3's oauth2 passdb (https://doc.dovecot.org/2.3/configuration_manual/authentication/
# oauth2/): one asking the introspection endpoint per token. Two of them: a delegated token
# (Google's service account acting as the mailbox) must name the user logging in exactly; an
# app-only token (Microsoft client credentials) names its organisation, so only the domain is
# compared (``username_format = %d`` expands both the login and the answer's value).
OAUTH2_PASSDB = """\
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/{name}.conf.ext
}}
"""
OAUTH2_CONF = """\
introspection_mode = post
introspection_url = {url}
username_attribute = {attribute}
username_format = {format}
active_attribute = active
active_value = true
timeout_msecs = 30000
"""
OAUTH2_CHECKS = (("oauth2-delegated", "username", "%Lu"), ("oauth2-app", "tenant_user", "%d"))


def _oauth2_settings(root: Path, introspection_url: str) -> dict:
    """Config pieces for OAuth2 logins: passwords still log in with PLAIN and LOGIN (the test
    reads what the server holds with plain imaplib), tokens with XOAUTH2 and OAUTHBEARER."""
    if not introspection_url:
        return dict(oauth2_mechanisms="", password_mechanisms="", oauth2_passdbs="")
    for name, attribute, format in OAUTH2_CHECKS:
        conf = OAUTH2_CONF.format(url=introspection_url, attribute=attribute, format=format)
        (root / f"{name}.conf.ext").write_text(conf)
    return dict(
        oauth2_mechanisms=" oauthbearer xoauth2",
        password_mechanisms="  mechanisms = plain login\n",
        oauth2_passdbs="".join(OAUTH2_PASSDB.format(root=root, name=n) for n, *_ in OAUTH2_CHECKS),
    )


@dataclass(frozen=True)
class RawMessage:
    """One message to load as a client would: bytes as sent, flags, INTERNALDATE."""

    data: bytes
    flags: frozenset[str] = frozenset()
    internaldate: datetime | None = None


@dataclass(frozen=True)
class Holdings:
    """One account's content as the server reports it: folder -> sorted (bytes, flags)."""

    folders: dict

    @property
    def messages(self) -> int:
        return sum(len(items) for items in self.folders.values())

    @property
    def size(self) -> int:
        return sum(len(data) for items in self.folders.values() for data, _ in items)

    def bodies(self) -> list[bytes]:
        return sorted(data for items in self.folders.values() for data, _ in items)


_LIST_NAME = re.compile(r'\) "[^"]*" "?(.*?)"?$')
_FLAGS = re.compile(r"FLAGS \(([^)]*)\)")


@dataclass
class DovecotServer:
    name: str
    root: Path
    separator: str
    port: int
    tls_port: int
    max_message_size: int
    process: subprocess.Popen
    host: str = "127.0.0.1"
    master_user: str = MASTER_USER
    master_password: str = field(default=MASTER_PASSWORD, repr=False)

    def add_user(self, name: str | None = None, password: str | None = None) -> tuple[str, str]:
        """Create a mailbox (a fresh unique name unless given); returns (name, password)."""
        name = name or f"u{uuid.uuid4().hex[:12]}"
        password = password or uuid.uuid4().hex
        if ":" in name or ":" in password or "\n" in name + password:
            raise ValueError("passwd-file users and passwords cannot contain ':' or newlines")
        (self.root / "users" / name).write_text(f"{name}:{password}::::::\n")
        return name, password

    def maildir(self, user: str) -> Path:
        return self.root / "home" / user / "Maildir"

    def endpoint(self, username: str = "", password: str = "", **changes) -> Endpoint:
        """An Endpoint for this server: plain by default, ``security="tls"`` uses the TLS port."""
        security = changes.pop("security", "plain")
        port = self.tls_port if security == "tls" else self.port
        values = dict(kind="imap", host=self.host, port=port, security=security)
        values.update(username=username, secret=password, verify_tls=False)
        values.update(changes)
        return Endpoint(**values)

    def master_endpoint(self, **changes) -> Endpoint:
        changes.setdefault("password", self.master_password)
        return self.endpoint(impersonation=self.master_user, **changes)

    def client(self, user: str, password: str) -> imaplib.IMAP4:
        client = imaplib.IMAP4(self.host, self.port)
        client.login(user, password)
        return client

    def holdings(self, user: str, password: str) -> Holdings:
        """Every folder's messages as (bytes, flags), read with plain imaplib (not our code)."""
        client = self.client(user, password)
        try:
            _, listing = client.list()
            folders = {}
            for line in listing:
                if b"\\Noselect" in line or b"\\NonExistent" in line:
                    continue  # a parent that exists only in name holds nothing
                name = _LIST_NAME.search(line.decode()).group(1)
                _, (count,) = client.select(f'"{name}"', readonly=True)
                if not int(count):
                    folders[name] = []
                    continue
                _, data = client.fetch("1:*", "(FLAGS BODY.PEEK[])")
                folders[name] = sorted(
                    (part[1], " ".join(sorted(_FLAGS.search(part[0].decode()).group(1).split())))
                    for part in data
                    if isinstance(part, tuple)
                )
            return Holdings(folders)
        finally:
            client.logout()

    def load(self, user: str, password: str, mailbox: str, messages) -> list[int]:
        """APPEND raw messages with a plain imaplib client (not our connector); returns UIDs.

        ``mailbox`` is the wire name (modified UTF-7, server separator); it is created if missing.
        """
        client = self.client(user, password)
        try:
            client.create(_quote(mailbox))
            return [_append(client, mailbox, message) for message in messages]
        finally:
            client.logout()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _append(client: imaplib.IMAP4, mailbox: str, message: RawMessage) -> int:
    # imaplib.append() rewrites every bare CR and LF to CRLF; the fixture must send the bytes
    # untouched, so it hands the literal to imaplib's command machinery directly.
    flags = "(" + " ".join(sorted(message.flags)) + ")"
    date = imaplib.Time2Internaldate(message.internaldate) if message.internaldate else None
    args = [_quote(mailbox), flags] + ([date] if date else [])
    client.literal = message.data
    typ, data = client._simple_command("APPEND", *args)
    if typ != "OK":
        raise RuntimeError(f"APPEND refused: {data!r}")
    code = client.untagged_responses.pop("APPENDUID", [b""])[-1].split()
    return int(code[1])


def _service_users() -> tuple[str, str, int, int]:
    """(internal user, login user, mail uid, mail gid): Dovecot's own users when run as root,
    since it refuses to serve mail as root; the current user otherwise."""
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid()).pw_name
        return me, me, os.geteuid(), os.getegid()
    nobody = pwd.getpwnam("nobody")
    return "dovecot", "dovenull", nobody.pw_uid, nobody.pw_gid


def _make_certificate(root: Path) -> None:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
        + ["-subj", "/CN=127.0.0.1", "-keyout", str(root / "key.pem")]
        + ["-out", str(root / "cert.pem")],
        check=True,
        capture_output=True,
    )


def start_dovecot(
    root: Path,
    name: str = "a",
    separator: str = "/",
    layout: str = "maildir++",
    tz: str = "UTC",
    max_message_size: int = 1024 * 1024,
    binary: str = "/usr/sbin/dovecot",
    special_use: dict[str, str] | None = None,
    quota: str = "",
    oauth2_introspection_url: str = "",
) -> DovecotServer:
    """Start one Dovecot in ``root`` (created if needed) and wait until it accepts IMAP.

    ``special_use`` (name -> attribute) are the folders every user gets; the default is the
    five of RFC 6154 that migrations map (Sent, Trash, Drafts, Junk, Archive).
    ``quota`` ("2M", "500k") limits every user's storage and offers the IMAP QUOTA extension
    (RFC 9208: GETQUOTAROOT); empty, storage is unlimited and QUOTA is not offered.
    ``oauth2_introspection_url`` adds OAuth2 logins (AUTH=XOAUTH2 and AUTH=OAUTHBEARER), each
    token checked by that RFC 7662 endpoint (``tests.servers.token_introspection``).
    """
    internal_user, login_user, uid, gid = _service_users()
    root.mkdir(parents=True, exist_ok=True)
    for sub in ("run", "state", "users", "home"):
        (root / sub).mkdir(exist_ok=True)
    # The mail processes run unprivileged and must reach their homes: root's parents must be
    # traversable too (tempfile.mkdtemp() under /tmp is; pytest's tmp_path is not).
    root.chmod(root.stat().st_mode | 0o711)
    if os.geteuid() == 0:
        os.chown(root / "home", uid, gid)
    _make_certificate(root)
    (root / "master.passwd").write_text(f"{MASTER_USER}:{MASTER_PASSWORD}::::::\n")
    mailboxes = "\n".join(
        f"  mailbox {box} {{\n    special_use = {use}\n    auto = subscribe\n  }}"
        for box, use in (SPECIAL_USE if special_use is None else special_use).items()
    )
    settings = dict(
        root=root,
        name=name,
        internal_user=internal_user,
        login_user=login_user,
        uid=uid,
        gid=gid,
        layout=":LAYOUT=fs" if layout == "fs" else "",
        separator=separator,
        mailboxes=mailboxes,
        max_message_size=max_message_size,
        quota=quota or "0",
        imap_quota="protocol imap {\n  mail_plugins = $mail_plugins imap_quota\n}\n"
        if quota
        else "",
        fsync="never",
        **_oauth2_settings(root, oauth2_introspection_url),
    )
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TZ": tz}

    def launch(port: int, tls_port: int) -> DovecotServer:
        # A greeting of its own tells this server from another that took the port meanwhile.
        greeting = f"mailferry-{name}-{uuid.uuid4().hex} ready."
        config = CONFIG.format(**settings, port=port, tls_port=tls_port, greeting=greeting)
        (root / "dovecot.conf").write_text(config)
        (root / "dovecot.log").unlink(missing_ok=True)
        process = subprocess.Popen(
            [binary, "-F", "-c", str(root / "dovecot.conf")],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(root / "stderr.log", "wb"),  # noqa: SIM115 - the child owns it
        )
        server = DovecotServer(name, root, separator, port, tls_port, max_message_size, process)
        try:
            wait_for_port(port, proc=process)
            wait_for_port(tls_port, proc=process)
            ours = _greets(server, port, greeting) and _greets(server, tls_port, greeting, tls=True)
        except (RuntimeError, OSError) as exc:
            server.stop()
            stderr = (root / "stderr.log").read_text(errors="replace")
            details = f"{stderr}\n{server.log()}"
            if in_use(details):
                raise PortTaken(details) from exc
            raise RuntimeError(f"dovecot {name} did not start: {exc}\n{details}") from exc
        if not ours:
            server.stop()
            raise PortTaken(f"another server answers on {port} or {tls_port}")
        return server

    return start_on_free_ports(launch, ports=2)


def _greets(server: DovecotServer, port: int, greeting: str, tls: bool = False) -> bool:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection((server.host, port), timeout=10) as raw:
        connection = context.wrap_socket(raw) if tls else raw
        return greeting.encode() in connection.makefile("rb").readline()


def start_pair(root: Path, binary: str = "/usr/sbin/dovecot"):
    """The standard pair: "a" (``/``, Maildir++, UTC) and "b" (``.``, fs layout, UTC+05:30)."""
    root.chmod(root.stat().st_mode | 0o711)
    a = start_dovecot(root / "a", "a", "/", "maildir++", "UTC", binary=binary)
    try:
        b = start_dovecot(root / "b", "b", ".", "fs", "IST-5:30", binary=binary)
    except Exception:
        a.stop()
        raise
    return a, b


_SAFE_NAME = re.compile(r"[^A-Za-z0-9]+")


@pytest.fixture(scope="session")
def dovecot_pair():
    binary = require_binary("dovecot", "dovecot-imapd")
    root = Path(tempfile.mkdtemp(prefix="mailferry-dovecot-"))
    a, b = start_pair(root, binary)
    yield a, b
    a.stop()
    b.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def oauth2_dovecot():
    """A Dovecot taking OAuth2 logins, each token checked by a token introspection endpoint
    on loopback: (server, introspection). Tests say which token servers it trusts
    (``introspection.trust_graph``...) and forget them afterwards."""
    binary = require_binary("dovecot", "dovecot-imapd")
    root = Path(tempfile.mkdtemp(prefix="mailferry-dovecot-oauth2-"))
    introspection = TokenIntrospection().start()
    try:
        server = start_dovecot(
            root, "oauth2", binary=binary, oauth2_introspection_url=introspection.url
        )
    except Exception:
        introspection.stop()
        raise
    yield server, introspection
    server.stop()
    introspection.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def dovecot_a(dovecot_pair) -> DovecotServer:
    return dovecot_pair[0]


@pytest.fixture(scope="session")
def dovecot_b(dovecot_pair) -> DovecotServer:
    return dovecot_pair[1]


@dataclass(frozen=True)
class DovecotUser:
    server: DovecotServer
    name: str
    password: str = field(repr=False)

    def endpoint(self, **changes) -> Endpoint:
        return self.server.endpoint(self.name, self.password, **changes)

    def load(self, mailbox: str, messages) -> list[int]:
        return self.server.load(self.name, self.password, mailbox, messages)

    @property
    def maildir(self) -> Path:
        return self.server.maildir(self.name)

    def holdings(self) -> Holdings:
        """What the server itself holds for this user, counted with plain imaplib."""
        return self.server.holdings(self.name, self.password)


@pytest.fixture
def dovecot_user(request):
    """A factory: ``dovecot_user(server)`` makes a fresh mailbox named after the test."""

    def make(server: DovecotServer) -> DovecotUser:
        stem = _SAFE_NAME.sub("", request.node.name)[:20].lower()
        name, password = server.add_user(f"{stem}{uuid.uuid4().hex[:8]}")
        return DovecotUser(server, name, password)

    return make
