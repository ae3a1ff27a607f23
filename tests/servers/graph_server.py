"""A protocol-level Microsoft Graph server on loopback, for the Graph connector's tests and bench.

It speaks JSON over HTTPS as Microsoft documents the endpoints the connector uses, so that the real
clients run unpatched: msal (tenant discovery, client-credentials token endpoint) and httpx.

- Entra ID: ``GET /{tenant}/v2.0/.well-known/openid-configuration``,
  ``POST /{tenant}/oauth2/v2.0/token`` (client secret or certificate assertion). Tokens are JWTs
  whose ``roles`` claim lists the app's application permissions.
- Graph, under ``/v1.0`` and ``/beta`` (importMime under ``/beta`` only, as on Microsoft's
  side): ``GET /users/{id}/settings/exchange``; ``/admin/exchange/mailboxes/{id}/folders`` (create,
  ``childFolders``, ``delta``); ``…/folders/{id}/items`` (List, Get with extended properties,
  ``delta``); ``exportItems`` (20 ids at most); ``createImportSession`` and the pre-authenticated
  ``importItem`` URL it returns; ``/users/{id}/mailFolders/{id}/importMime``;
  ``GET``/``PATCH /users/{id}/messages/{id}`` and ``…/$value``, ``PATCH`` of ``…/events/{id}``
  and ``…/contacts/{id}``; ``POST /$batch`` (20 requests at most; non-JSON bodies base64-encoded
  both ways); ``GET /domains/{name}/serviceConfigurationRecords`` and ``…/verificationDnsRecords``
  (domainDnsRecord subtypes; 403 Authorization_RequestDenied without Domain.Read.All or a role
  that includes it, 404 Request_ResourceNotFound for a domain the tenant does not have).

It refuses what Graph refuses, in Graph's error body: a method Microsoft documents no call for
on a resource (405), a JSON body not sent as application/json or not JSON (400), importMime not
sent as text/plain (415), a $batch with duplicate ids or a body without Content-Type (400), an
expired or unknown token (401). A fault of the fake itself answers 500, never a dropped connection.

The exported "FTS" stream here is the server's own encoding (``make_fts``): like the real
FastTransfer stream it carries the item's read state, flag, received time and extended
properties, and an import restores them; the connector never parses it, only carries it.

Outside pytest: ``GraphServer().start()`` (see scripts/bench_graph.py).
"""

from __future__ import annotations

import base64
import datetime as dt
import email
import ipaddress
import itertools
import json
import math
import re
import ssl
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.x509.oid import NameOID

from .ews_server import PR_SEARCH_KEY, own_export

TENANT_ID = "11111111-2222-3333-4444-555555555555"
ALL_ROLES = frozenset(
    {
        "User.Read.All",
        "MailboxFolder.ReadWrite.All",
        "MailboxItem.Read.All",
        "MailboxItem.ImportExport.All",
        "Mail-Advanced.ReadWrite.All",
        "Mail.ReadWrite",
        "Calendars.ReadWrite",
        "Contacts.ReadWrite",
    }
)
# Any of these lets an app read a domain's DNS records (Graph's pages for the two endpoints).
DOMAIN_READ_ROLES = frozenset(
    {"Domain.Read.All", "Domain.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)
# A ReadWrite role grants the matching Read role, as Graph's permission reference says.
IMPLIED = {"MailboxFolder.ReadWrite.All": "MailboxFolder.Read.All", "Mail.ReadWrite": "Mail.Read"}
EXPORT_LIMIT = 20  # exportItems: "Maximum size of this collection is 20 strings."
BATCH_LIMIT = 20  # JSON batching: at most 20 requests per $batch
# Graph hands up to four of a batch's requests to Outlook at once, so a batch of 20 to one
# mailbox holds four of its concurrent requests (Microsoft Q&A 1660054; json-batching).
BATCH_PARALLEL = 4
FTS_MAGIC = b"\x01\x00\x00\x00FAKEFTS\x00"
DELIVERY_TIME = "SystemTime 0x0E06"  # PR_MESSAGE_DELIVERY_TIME
# PR_SEARCH_KEY: every item has one, and "whenever a copy of an object is created, the key is
# also copied from the original object" ([MS-OXCPRPT] 2.2.1.9): an import keeps its export's.
SEARCH_KEY = "Binary 0x300B"

WELL_KNOWN = (
    ("inbox", "Inbox", "IPF.Note"),
    ("sentitems", "Sent Items", "IPF.Note"),
    ("deleteditems", "Deleted Items", "IPF.Note"),
    ("drafts", "Drafts", "IPF.Note"),
    ("junkemail", "Junk Email", "IPF.Note"),
    ("archive", "Archive", "IPF.Note"),
    ("calendar", "Calendar", "IPF.Appointment"),
    ("contacts", "Contacts", "IPF.Contact"),
    ("tasks", "Tasks", "IPF.Task"),
    ("notes", "Notes", "IPF.StickyNote"),
)


def make_fts(
    message_class: str,
    body: bytes,
    is_read: bool = False,
    received: str = "",
    flagged: bool = False,
    properties: dict | None = None,
) -> bytes:
    """The fake's opaque export stream: a header the importer reads back, then the body. Like a
    real FastTransfer stream it carries the item's state (read, flag, received time) and its
    extended properties, so an imported item has the properties its export carried."""
    header = {"type": message_class, "isRead": is_read, "received": received}
    header |= {"flagged": flagged, "properties": properties or {}}
    return FTS_MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n" + body


def read_fts(data: bytes) -> tuple[dict, bytes]:
    """(header, body) of one of our streams; (defaults, b"") for one that is not ours (an EWS
    ExportItems stream: Exchange would parse it, the fake keeps it opaque, and takes from the
    EWS test server's own exports only the PR_SEARCH_KEY a copy keeps)."""
    defaults = {"type": "IPM.Note", "isRead": False, "received": "", "flagged": False}
    if not data.startswith(FTS_MAGIC):
        record = own_export(data) or {"extended": {}}
        key = record["extended"].get(PR_SEARCH_KEY)
        return defaults | {"properties": {SEARCH_KEY: key} if key else {}}, b""
    header, _, body = data[len(FTS_MAGIC) :].partition(b"\n")
    return defaults | json.loads(header), body


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _new_id(prefix: str = "AAMk") -> str:
    return prefix + base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


@dataclass
class FakeItem:
    id: str
    type: str
    body: bytes
    created: str
    seq: int
    is_read: bool = False
    received: str = ""
    mime: bytes | None = None  # set for messages that came in through importMime
    flagged: bool = False
    properties: dict = field(default_factory=dict)  # single-value extended properties
    change_key: str = field(default_factory=lambda: _new_id("CQAA"))
    opaque: bytes | None = None  # an imported stream that is not ours, given back unchanged

    @property
    def data(self) -> bytes:
        """The export stream, made from the item as it is now (a read or flag change shows)."""
        if self.opaque is not None:
            return self.opaque
        return make_fts(
            self.type, self.body, self.is_read, self.received, self.flagged, self.properties
        )

    @property
    def content(self) -> tuple:
        """What the item is, without its extended properties: a copy equals its source in
        this, while mailferry's recovery stamp sets the two apart in ``data``."""
        if self.opaque is not None:
            return (self.opaque,)
        return (self.type, self.body, self.is_read, self.received, self.flagged)

    def resource(self) -> dict:
        return {
            "@odata.type": "#microsoft.graph.mailboxItem",
            "id": self.id,
            "type": self.type,
            "size": len(self.data),
            "createdDateTime": self.created,
            "lastModifiedDateTime": self.created,
            "changeKey": self.change_key,
            "categories": [],
        }


@dataclass
class FakeFolder:
    id: str
    display_name: str
    type: str
    parent_id: str
    well_known: str | None = None
    items: dict = field(default_factory=dict)
    removed: list = field(default_factory=list)  # (seq, item id) tombstones for delta

    def resource(self, mailbox: FakeMailbox) -> dict:
        return {
            "@odata.type": "#microsoft.graph.mailboxFolder",
            "id": self.id,
            "displayName": self.display_name,
            "parentFolderId": self.parent_id,
            "type": self.type,
            "wellKnownName": self.well_known,
            "totalItemCount": len(self.items),
            "childFolderCount": sum(f.parent_id == self.id for f in mailbox.folders.values()),
            "parentMailboxUrl": f"/admin/exchange/mailboxes/{mailbox.id}",
        }


class FakeMailbox:
    def __init__(self, mailbox_id: str):
        self.id = mailbox_id
        self.root_id = _new_id("AAMkRoot")
        self.folders: dict[str, FakeFolder] = {}
        self.seq = itertools.count(1)
        self.lock = threading.RLock()
        for well_known, name, folder_class in WELL_KNOWN:
            self.add_folder(name, folder_class, well_known=well_known)

    def add_folder(self, name, folder_class="IPF.Note", parent=None, well_known=None) -> FakeFolder:
        folder = FakeFolder(_new_id(), name, folder_class, parent or self.root_id, well_known)
        self.folders[folder.id] = folder
        return folder

    def folder(self, name_or_id: str) -> FakeFolder:
        for folder in self.folders.values():
            if name_or_id in (folder.id, folder.well_known, folder.display_name):
                return folder
        raise KeyError(name_or_id)

    def add_item(self, folder, message_class, body, is_read=False, received="", data=None):
        """A new item; ``data`` (an imported stream) overrides the other arguments."""
        folder = self.folder(folder) if isinstance(folder, str) else folder
        with self.lock:
            item = FakeItem(_new_id(), message_class, body, _now(), next(self.seq), is_read)
            item.received = received or item.created
            item.properties[SEARCH_KEY] = base64.b64encode(uuid.uuid4().bytes).decode()
            if data is not None:
                header, item.body = read_fts(data)
                item.type, item.is_read = header["type"], header["isRead"]
                item.flagged = header["flagged"]
                item.properties |= header["properties"]
                item.received = header["received"] or item.created
                item.opaque = None if data.startswith(FTS_MAGIC) else data
            folder.items[item.id] = item
            return item

    def delete_item(self, folder: FakeFolder, item_id: str) -> None:
        with self.lock:
            del folder.items[item_id]
            folder.removed.append((next(self.seq), item_id))

    def find_item(self, item_id: str) -> tuple[FakeFolder, FakeItem]:
        for folder in self.folders.values():
            if item_id in folder.items:
                return folder, folder.items[item_id]
        raise KeyError(item_id)


class GraphError(Exception):
    def __init__(self, status, code, message, headers=None):
        super().__init__(message)
        self.status, self.code, self.headers = status, code, headers or {}

    def body(self) -> dict:
        return {
            "error": {
                "code": self.code,
                "message": str(self),
                "innerError": {"date": _now(), "request-id": str(uuid.uuid4())},
            }
        }


def _tls_files(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost; clients trust it as their CA file."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailferry graph test server")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "graph-cert.pem", directory / "graph-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class MailboxLimits:
    """What Exchange Online allows one app on one mailbox ("Outlook service limits",
    https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits): 4 concurrent
    requests, 10,000 requests per 10 minutes, 150 MB uploaded per 5 minutes. Tests and
    benchmarks scale the windows down to seconds."""

    concurrency: int = 4
    requests: int = 10_000
    request_window: float = 600.0
    bytes: int = 150 * 1024 * 1024
    bytes_window: float = 300.0
    busy_retry_after: float = 1.0  # Retry-After of a MailboxConcurrency refusal


@dataclass
class MailboxUse:
    """One (app, mailbox)'s use, as the server counts it: requests in flight now and at most,
    when each served request and imported byte came, and every refusal (when, why)."""

    in_flight: int = 0
    max_in_flight: int = 0
    served: int = 0
    imported: int = 0  # bytes, all told
    requests: deque = field(default_factory=deque)  # times of served requests
    uploads: deque = field(default_factory=deque)  # (time, bytes) of imports
    throttled: list = field(default_factory=list)  # (time, error message)


# Graph's 429 bodies: the Outlook limits name themselves; the request limit answers with the
# generic body of https://learn.microsoft.com/graph/throttling ("Please retry again later.").
OVER_CONCURRENCY = ("ApplicationThrottled", "Application is over its MailboxConcurrency limit.")
OVER_BYTES = ("ApplicationThrottled", "Application is over its IncomingBytes limit.")
OVER_REQUESTS = ("TooManyRequests", "Please retry again later.")
# Endpoints that address one mailbox: by its id (group 1 of the route), or by its user.
_BY_MAILBOX_ID = ("folders.", "items.", "exportItems", "createImportSession", "importItem")
_BY_USER = ("importMime", "messages.", "events.", "contacts.")


def _retry_after(seconds: float) -> str:
    """Seconds, rounded up to the hundredth: Graph sends whole seconds, but the windows of a
    time-scaled test are a few seconds long (a client parses either as a number)."""
    return f"{math.ceil(max(seconds, 0.01) * 100) / 100:g}"


def _incoming_bytes(endpoint: str, body: bytes) -> int:
    """The item bytes an import brings into the mailbox (what IncomingBytes counts)."""
    try:
        if endpoint == "importItem":
            return len(base64.b64decode(json.loads(body)["Data"]))
        if endpoint == "importMime":
            return len(base64.b64decode(body))
    except (ValueError, KeyError, TypeError):
        pass
    return 0


@dataclass
class App:
    client_id: str
    secret: str = ""
    roles: frozenset = ALL_ROLES
    certificate_pem: bytes = b""  # public certificate for client assertions


class GraphServer:
    """In-memory tenant: apps, users with mailboxes, request counters, throttling on demand."""

    def __init__(self, directory: Path | None = None, page_size: int = 100):
        self.directory = Path(directory or tempfile.mkdtemp(prefix="graph-server-"))
        self.cert_file, self.key_file = _tls_files(self.directory)
        self.page_size = page_size
        self.apps: dict[str, App] = {}
        self.tokens: dict[str, tuple[App, float]] = {}  # access token -> (app, exp)
        self.users: dict[str, FakeMailbox] = {}
        self.domains: dict[str, dict[str, list]] = {}  # name -> {"service"/"verification": [...]}
        self.mailboxes: dict[str, FakeMailbox] = {}
        # authtoken -> (mailbox id, the session's expirationDateTime as a timestamp)
        self.import_sessions: dict[str, tuple[str, float]] = {}
        self.counts: Counter = Counter()
        self.export_drops: Counter = Counter()  # item id -> export answers still to leave it out of
        self.in_flight = self.max_in_flight = 0
        self.latency = 0.0  # seconds added to every request, as a distant datacentre would
        # Per-mailbox limits (enforce()); seconds each mailbox request keeps its slot.
        self.limits: MailboxLimits | None = None
        self.mailbox_time = 0.0
        self.use: dict[tuple[str, str], MailboxUse] = {}  # (app client id, mailbox id) -> use
        self.session_apps: dict[str, str] = {}  # import session authtoken -> app client id
        self.holds: dict[str, threading.Event] = {}  # endpoint -> answers held until it is set
        self.held: Counter = Counter()  # user or mailbox id -> answers being held now
        self.throttles: dict[str, list] = {}  # endpoint -> [remaining, retry_after]
        self.refusals: dict[str, list[GraphError]] = {}  # endpoint -> errors for its next calls
        self.delta_epoch = 1
        self.token_lifetime = 3599
        self.lock = threading.Lock()
        self.httpd: ThreadingHTTPServer | None = None

    # -- set-up helpers --------------------------------------------------------------------
    def register_app(self, client_id, secret="", roles=ALL_ROLES, certificate_pem=b"") -> App:
        app = App(client_id, secret, frozenset(roles), certificate_pem)
        self.apps[client_id] = app
        return app

    def add_user(self, user: str) -> FakeMailbox:
        mailbox = FakeMailbox(f"MBX:{uuid.uuid4().hex[:8]}@{uuid.uuid4().hex[:8]}")
        self.users[user.lower()] = self.mailboxes[mailbox.id] = mailbox
        return mailbox

    def add_domain(self, name: str, mx: str = "", verification: str = "MS=ms12345678") -> dict:
        """A domain of the tenant with the records Graph lists for it: an MX (``mx``, by default
        the older ``<dashes>.mail.protection.outlook.com`` form), SPF, autodiscover, Skype's
        SRV and CNAME records, and both verification alternatives (TXT and MX). Tests may edit
        the lists returned."""
        dashes = name.replace(".", "-")

        def record(kind, label, supported="Email", optional=False, **fields):
            return {
                "@odata.type": f"#microsoft.graph.domainDns{kind}Record",
                "id": str(uuid.uuid4()),
                "isOptional": optional,
                "label": label,
                "recordType": kind,
                "supportedService": supported,
                "ttl": 3600,
                **fields,
            }

        skype = "OfficeCommunicationsOnline"
        records = {
            "service": [
                record(
                    "Mx",
                    name,
                    mailExchange=mx or f"{dashes}.mail.protection.outlook.com",
                    preference=0,
                ),
                record("Txt", name, text="v=spf1 include:spf.protection.outlook.com -all"),
                record("Cname", f"autodiscover.{name}", canonicalName="autodiscover.outlook.com"),
                record(
                    "Srv",
                    name,
                    skype,
                    nameTarget="sipdir.online.lync.com",
                    port=443,
                    priority=100,
                    weight=1,
                    protocol="_tls",
                    service="_sip",
                ),
                record(
                    "Cname", f"lyncdiscover.{name}", skype, canonicalName="webdir.online.lync.com"
                ),
            ],
            "verification": [
                record("Txt", name, None, text=verification),
                record(
                    "Mx",
                    name,
                    None,
                    mailExchange=f"{verification.split('=')[-1]}.msv1.invalid",
                    preference=32767,
                ),
            ],
        }
        self.domains[name.lower()] = records
        return records

    def enforce(self, limits: MailboxLimits | None = None, mailbox_time: float = 0.0) -> None:
        """From now on each app's requests to each mailbox are held to ``limits`` (Exchange
        Online's by default); ``mailbox_time``: seconds each such request takes."""
        self.limits, self.mailbox_time = limits or MailboxLimits(), mailbox_time

    def mailbox_use(self, user: str) -> list[MailboxUse]:
        """Every app's use of this user's mailbox."""
        mailbox_id = self.users[user.lower()].id
        return [use for (_, mailbox), use in self.use.items() if mailbox == mailbox_id]

    def hold(self, endpoint: str) -> None:
        """Requests to ``endpoint`` are carried out, but their answers wait until ``release``:
        a client killed meanwhile never hears that they were done."""
        self.holds[endpoint] = threading.Event()

    def release(self, endpoint: str) -> None:
        self.holds.pop(endpoint).set()

    def throttle(self, endpoint: str, times: int, retry_after: float) -> None:
        """The next ``times`` requests to ``endpoint`` get 429 with ``Retry-After``."""
        self.throttles[endpoint] = [times, retry_after]

    def refuse(self, endpoint: str, status: int, code: str, message: str) -> None:
        """The next request to ``endpoint`` gets this error (the mailbox's quirks Exchange
        reports per item: ErrorCorruptData, ErrorMessageSizeExceeded, …)."""
        with self.lock:
            self.refusals.setdefault(endpoint, []).append(GraphError(status, code, message))

    def revoke_tokens(self) -> None:
        """Access tokens issued so far are refused from now on (401)."""
        self.tokens.clear()

    def expire_tokens(self) -> None:
        """Access tokens and import sessions issued so far reach their end now, as an hour of
        copying would bring about; the client still holds them as valid until Graph refuses
        them."""
        now = time.time()
        with self.lock:
            self.tokens = {token: (app, now) for token, (app, _) in self.tokens.items()}
            self.import_sessions = {
                authtoken: (mailbox_id, now)
                for authtoken, (mailbox_id, _) in self.import_sessions.items()
            }

    def drop_from_exports(self, item_ids, times: int = 1) -> None:
        """The next ``times`` exportItems answers asked for each of these ids leave it out."""
        with self.lock:
            for item_id in item_ids:
                self.export_drops[item_id] = times

    def expire_delta_tokens(self) -> None:
        self.delta_epoch += 1

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def authority(self) -> str:
        return f"{self.url}/{TENANT_ID}"

    @property
    def graph_url(self) -> str:
        return f"{self.url}/beta"

    def start(self) -> GraphServer:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        handler = type("Handler", (_Handler,), {"graph": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()

    # -- request handling ----------------------------------------------------------------------
    def count(self, endpoint: str) -> None:
        with self.lock:
            self.counts[endpoint] += 1
            refusals = self.refusals.get(endpoint)
            if refusals:
                raise refusals.pop(0)
            throttle = self.throttles.get(endpoint)
            if throttle and throttle[0] > 0:
                throttle[0] -= 1
                raise GraphError(
                    429,
                    "ApplicationThrottled",
                    "Too many requests; retry later.",
                    {"Retry-After": str(throttle[1])},
                )

    def bearer(self, headers) -> App:
        """The app a Graph request's token was issued to. Graph checks the token's lifetime:
        an expired one gets 401 InvalidAuthenticationToken, "Lifetime validation failed, the
        token is expired." (https://learn.microsoft.com/graph/resolve-auth-errors)."""
        token = (headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        if not token:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        issued = self.tokens.get(token)
        if issued is None:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.")
        app, expires = issued
        if expires <= time.time():
            raise GraphError(
                401,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
            )
        return app

    def authorize(self, headers, role: str) -> None:
        app = self.bearer(headers)
        granted = set(app.roles) | {IMPLIED[r] for r in app.roles if r in IMPLIED}
        if role not in granted:
            raise GraphError(
                403,
                "ErrorAccessDenied",
                f"Access is denied. Check credentials and try again. Missing role {role}.",
            )

    def authorize_directory(self, headers, roles=DOMAIN_READ_ROLES) -> None:
        """Directory endpoints refuse in their own words (Authorization_RequestDenied)."""
        app = self.bearer(headers)
        if not roles & app.roles:
            raise GraphError(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )

    def dispatch(self, method, url, headers, body: bytes) -> tuple[int, dict, bytes]:
        """One Graph request (also each request of a $batch) -> status, headers, body."""
        parts = urlsplit(url)
        path = unquote(parts.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        try:
            status, payload, extra = self.route(method, path, query, headers, body)
        except GraphError as error:
            headers = {"Content-Type": "application/json", **error.headers}
            return error.status, headers, json.dumps(error.body()).encode()
        if isinstance(payload, bytes):
            return status, {"Content-Type": "text/plain", **extra}, payload
        return status, {"Content-Type": "application/json", **extra}, json.dumps(payload).encode()

    def route(self, method, path, query, headers, body):
        known = False
        for pattern, handler_method, endpoint in ROUTES:
            match = re.fullmatch(pattern, path)
            known = known or match is not None
            if match and method == handler_method:
                self.count(endpoint)
                key = self._mailbox_key(endpoint, match.groups(), query, headers)
                with self._mailbox_turn(key, _incoming_bytes(endpoint, body)):
                    answer = getattr(self, "_" + endpoint.replace(".", "_"))(
                        *match.groups(), query=query, headers=headers, body=body
                    )
                self._held(endpoint, match.groups()[0])
                return answer
        if known:
            # A method Microsoft documents no call for on this resource (PATCH on a mailboxItem):
            # 405 Method Not Allowed (https://learn.microsoft.com/graph/errors).
            raise GraphError(
                405,
                "Request_BadRequest",
                "Specified HTTP method is not allowed for the request target.",
            )
        raise GraphError(404, "BadRequest", f"Resource not found for the segment {path!r}.")

    def _held(self, endpoint: str, whose: str) -> None:
        """Wait, the request done, while ``endpoint`` is held (see ``hold``)."""
        event = self.holds.get(endpoint)
        if event is None:
            return
        with self.lock:
            self.held[whose.lower()] += 1
        try:
            event.wait(300)
        finally:
            with self.lock:
                self.held[whose.lower()] -= 1

    def _mailbox_key(self, endpoint, groups, query, headers) -> tuple[str, str] | None:
        """(app, mailbox) a request counts against; None for requests to no mailbox, and for
        ones the endpoint refuses anyway (no valid token or session, an unknown user)."""
        if endpoint == "importItem":
            app = self.session_apps.get(query.get("authtoken", ""))
        else:
            token = (headers.get("Authorization") or "").removeprefix("Bearer ").strip()
            app = self.tokens.get(token, (None,))[0]
            app = app and app.client_id
        if endpoint.startswith(_BY_MAILBOX_ID):
            mailbox = groups[0]
        elif endpoint.startswith(_BY_USER):
            mailbox = getattr(self.users.get(groups[0].lower()), "id", None)
        else:
            return None
        return (app, mailbox) if app and mailbox else None

    @contextmanager
    def _mailbox_turn(self, key, size: int):
        """Hold one of the mailbox's concurrent requests while the request runs, or refuse it
        with 429 as Exchange Online does beyond a limit (``enforce``)."""
        limits = self.limits
        if key is None or limits is None:
            yield
            return
        with self.lock:
            use = self.use.setdefault(key, MailboxUse())
            refusal = self._over(use, limits, size, time.monotonic())
            if refusal:
                use.throttled.append((time.time(), str(refusal)))
                self.counts["throttled"] += 1
                raise refusal
            use.in_flight += 1
            use.max_in_flight = max(use.max_in_flight, use.in_flight)
            use.served += 1
        try:
            time.sleep(self.mailbox_time)
            yield
        finally:
            with self.lock:
                use.in_flight -= 1

    @staticmethod
    def _over(use: MailboxUse, limits: MailboxLimits, size: int, now: float):
        """The 429 for a request beyond a limit, else None (and the request is counted)."""
        while use.requests and use.requests[0] <= now - limits.request_window:
            use.requests.popleft()
        while use.uploads and use.uploads[0][0] <= now - limits.bytes_window:
            use.uploads.popleft()
        if use.in_flight >= limits.concurrency:
            return _throttled(OVER_CONCURRENCY, limits.busy_retry_after)
        uploaded = sum(n for _, n in use.uploads)
        if size and uploaded and uploaded + size > limits.bytes:
            wait = use.uploads[0][0] + limits.bytes_window - now
            return _throttled(OVER_BYTES, wait)
        if len(use.requests) >= limits.requests:
            return _throttled(OVER_REQUESTS, use.requests[0] + limits.request_window - now)
        use.requests.append(now)
        if size:
            use.uploads.append((now, size))
            use.imported += size
        return None

    def _mailbox(self, mailbox_id: str) -> FakeMailbox:
        try:
            return self.mailboxes[mailbox_id]
        except KeyError:
            raise GraphError(404, "ErrorItemNotFound", "The mailbox was not found.") from None

    def _user(self, user: str) -> FakeMailbox:
        try:
            return self.users[user.lower()]
        except KeyError:
            raise GraphError(404, "Request_ResourceNotFound", f"User {user} not found.") from None

    # Entra ID -----------------------------------------------------------------------------------
    def _openid(self, tenant, **_):
        base = f"{self.url}/{tenant}"
        return (
            200,
            {
                "issuer": f"{self.url}/{tenant}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
            },
            {},
        )

    def _token(self, tenant, body, **_):
        form = {k: v[0] for k, v in parse_qs(body.decode(errors="replace")).items()}
        app = self.apps.get(form.get("client_id", ""))
        if app is None:
            raise _oauth_error(
                "unauthorized_client",
                f"AADSTS700016: Application with identifier '{form.get('client_id')}' was not "
                "found in the directory.",
            )
        if "client_assertion" in form:
            _verify_assertion(app, form["client_assertion"])
        elif not app.secret or form.get("client_secret") != app.secret:
            raise _oauth_error("invalid_client", "AADSTS7000215: Invalid client secret provided.")
        claims = {"aud": "https://graph.microsoft.com", "tid": tenant, "appid": app.client_id}
        if app.roles:  # Entra omits the claim when no permission has admin consent
            claims["roles"] = sorted(app.roles)
        expires = int(time.time()) + self.token_lifetime
        claims["exp"] = expires
        token = (
            ".".join(
                _b64url(json.dumps(part).encode())
                for part in ({"typ": "JWT", "alg": "none"}, claims)
            )
            + "."
            + _b64url(uuid.uuid4().bytes)
        )
        self.tokens[token] = (app, expires)
        return (
            200,
            {"token_type": "Bearer", "expires_in": self.token_lifetime, "access_token": token},
            {},
        )

    # Graph ----------------------------------------------------------------------------------
    def _exchangeSettings(self, user, headers, **_):
        self.authorize(headers, "User.Read.All")
        return 200, {"primaryMailboxId": self._user(user).id}, {}

    def _folders_delta(self, mailbox_id, headers, **_):
        self.authorize(headers, "MailboxFolder.Read.All")
        mailbox = self._mailbox(mailbox_id)
        value = [f.resource(mailbox) for f in mailbox.folders.values()]
        link = f"{self.graph_url}/admin/exchange/mailboxes/{quote(mailbox_id)}/folders/delta"
        return 200, {"value": value, "@odata.deltaLink": link + "?$deltatoken=all"}, {}

    def _folders_create(self, mailbox_id, parent_id=None, headers=None, body=b"", **_):
        self.authorize(headers, "MailboxFolder.ReadWrite.All")
        mailbox = self._mailbox(mailbox_id)
        request = _json_body(headers, body)
        if not isinstance(request.get("displayName"), str) or not request["displayName"]:
            raise GraphError(400, "ErrorInvalidArgument", "displayName is required.")
        if parent_id and parent_id not in mailbox.folders:
            raise GraphError(404, "ErrorItemNotFound", "The parent folder was not found.")
        siblings = [
            f for f in mailbox.folders.values() if f.parent_id == (parent_id or mailbox.root_id)
        ]
        if any(f.display_name.lower() == request["displayName"].lower() for f in siblings):
            raise GraphError(409, "ErrorFolderExists", "A folder with that name already exists.")
        folder_type = request.get("type") or "IPF.Note"
        folder = mailbox.add_folder(request["displayName"], folder_type, parent_id)
        return 201, folder.resource(mailbox), {}

    def _folders_child(self, mailbox_id, parent_id, **kwargs):
        return self._folders_create(mailbox_id, parent_id, **kwargs)

    def _items_list(self, mailbox_id, folder_id, query, headers, **_):
        self.authorize(headers, "MailboxItem.Read.All")
        folder = self._folder(mailbox_id, folder_id)
        skip = int(query.get("$skip", 0))
        items = list(folder.items.values())
        page = items[skip : skip + self.page_size]
        result = {"value": [_expanded(item, query) for item in page]}
        if skip + self.page_size < len(items):
            base = f"{self.graph_url}/admin/exchange/mailboxes/{quote(mailbox_id)}"
            expand = quote(query.get("$expand", ""))
            result["@odata.nextLink"] = (
                f"{base}/folders/{quote(folder_id)}/items?$expand={expand}"
                f"&$skip={skip + self.page_size}"
            )
        return 200, result, {}

    def _items_get(self, mailbox_id, folder_id, item_id, query, headers, **_):
        """https://learn.microsoft.com/graph/api/mailboxitem-get"""
        self.authorize(headers, "MailboxItem.Read.All")
        folder = self._folder(mailbox_id, folder_id)
        if item_id not in folder.items:
            raise GraphError(404, "ErrorItemNotFound", "The item was not found.")
        return 200, _expanded(folder.items[item_id], query), {}

    def _folder(self, mailbox_id, folder_id) -> FakeFolder:
        mailbox = self._mailbox(mailbox_id)
        try:
            return mailbox.folder(folder_id)
        except KeyError:
            raise GraphError(404, "ErrorItemNotFound", "The folder was not found.") from None

    def _items_delta(self, mailbox_id, folder_id, query, headers, **_):
        """Delta round: items changed after ``since`` up to the round's watermark, paged."""
        self.authorize(headers, "MailboxItem.Read.All")
        mailbox = self._mailbox(mailbox_id)
        folder = self._folder(mailbox_id, folder_id)
        token = query.get("$skiptoken") or query.get("$deltatoken")
        if token:
            epoch, since, cursor, watermark = (int(x) for x in token.split("."))
            if epoch != self.delta_epoch:
                raise GraphError(410, "SyncStateNotFound", "The sync state is invalid; resync.")
            if "$deltatoken" in query:  # a new round starts from the last watermark
                cursor, watermark = since, next(mailbox.seq)
        else:
            since, cursor, watermark = 0, 0, next(mailbox.seq)
        changes = sorted(
            [(i.seq, i.resource()) for i in folder.items.values() if cursor < i.seq < watermark]
            + [
                (seq, {"id": item_id, "@removed": {"reason": "deleted"}})
                for seq, item_id in folder.removed
                if since and cursor < seq < watermark
            ],
            key=lambda pair: pair[0],
        )
        page_size = _max_page_size(headers) or self.page_size
        page = changes[:page_size]
        link = (
            f"{self.graph_url}/admin/exchange/mailboxes/{quote(mailbox_id)}"
            f"/folders/{quote(folder_id)}/items/delta"
        )
        result = {"value": [resource for _, resource in page]}
        if len(changes) > page_size:
            next_cursor = page[-1][0]
            result["@odata.nextLink"] = (
                f"{link}?$skiptoken={self.delta_epoch}.{since}.{next_cursor}.{watermark}"
            )
        else:
            result["@odata.deltaLink"] = (
                f"{link}?$deltatoken={self.delta_epoch}.{watermark - 1}.0.0"
            )
        return 200, result, {}

    def _exportItems(self, mailbox_id, headers, body, **_):
        """https://learn.microsoft.com/graph/api/mailbox-exportitems: JSON ``itemIds``, at most
        20; an id that cannot be exported gets an error entry of its own. Ids given to
        ``drop_from_exports`` are left out of the answer altogether, as a lost entry would be."""
        self.authorize(headers, "MailboxItem.ImportExport.All")
        mailbox = self._mailbox(mailbox_id)
        ids = _json_body(headers, body).get("itemIds") or []
        if not isinstance(ids, list) or not 0 < len(ids) <= EXPORT_LIMIT:
            raise GraphError(
                400, "ErrorInvalidArgument", f"itemIds must hold 1 to {EXPORT_LIMIT} identifiers."
            )
        value = []
        for item_id in ids:
            with self.lock:
                if self.export_drops[item_id] > 0:
                    self.export_drops[item_id] -= 1
                    continue
            try:
                _, item = mailbox.find_item(item_id)
            except KeyError:
                value.append(
                    {
                        "itemId": item_id,
                        "error": {"code": "ErrorItemNotFound", "message": "Item not found."},
                    }
                )
                continue
            value.append(
                {
                    "itemId": item.id,
                    "changeKey": item.change_key,
                    "data": base64.b64encode(item.data).decode(),
                }
            )
        return 200, {"value": value}, {}

    def _createImportSession(self, mailbox_id, headers, **_):
        self.authorize(headers, "MailboxItem.ImportExport.All")
        self._mailbox(mailbox_id)
        authtoken = _b64url(uuid.uuid4().bytes + uuid.uuid4().bytes)
        self.session_apps[authtoken] = self.bearer(headers).client_id
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        self.import_sessions[authtoken] = (mailbox_id, expires.timestamp())
        return (
            200,
            {
                "importUrl": f"{self.url}/api/gbeta/Mailboxes('{quote(mailbox_id)}')"
                f"/importItem?authtoken={authtoken}",
                "expirationDateTime": expires.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            },
            {},
        )

    def _importItem(self, mailbox_id, query, headers, body, **_):
        """POST to a session's importUrl (resource mailboxItemImportSession,
        https://learn.microsoft.com/graph/api/resources/mailboxitemimportsession): JSON with
        FolderId, Mode "create" and the exported Data, no Authorization header."""
        if headers.get("Authorization"):
            # The URL is pre-authenticated; Microsoft says not to send an Authorization header.
            raise GraphError(400, "ErrorInvalidRequest", "Do not send Authorization to importUrl.")
        session_mailbox, expires = self.import_sessions.get(query.get("authtoken", ""), ("", 0))
        if session_mailbox != mailbox_id:
            raise GraphError(401, "InvalidAuthenticationToken", "The import session is invalid.")
        if expires <= time.time():
            raise GraphError(
                401,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
            )
        mailbox = self._mailbox(mailbox_id)
        request = _json_body(headers, body)
        if request.get("Mode") != "create" or "ItemId" in request or "ChangeKey" in request:
            raise GraphError(400, "ErrorInvalidArgument", "Create mode takes FolderId and Data.")
        folder = self._folder(mailbox_id, str(request.get("FolderId", "")))
        try:
            data = base64.b64decode(request.get("Data") or "", validate=True)
        except (TypeError, ValueError):
            raise GraphError(400, "ErrorInvalidArgument", "Data is not valid base64.") from None
        if not data:
            raise GraphError(400, "ErrorInvalidArgument", "Data is required.")
        item = mailbox.add_item(folder, "IPM.Note", b"", data=data)
        with self.lock:
            self.counts["imported"] += 1  # imports applied; "importItem" also counts refused ones
        return 200, {"itemId": item.id, "changeKey": item.change_key}, {}

    def _importMime(self, user, folder_id, headers, body, **_):
        """https://learn.microsoft.com/graph/api/mailfolder-importmime?view=graph-rest-beta:
        "Content-Type: text/plain. Required." The whole body is the base64 MIME, no JSON."""
        self.authorize(headers, "Mail-Advanced.ReadWrite.All")
        mailbox = self._user(user)
        folder = self._folder(mailbox.id, folder_id)
        if _content_type(headers) != "text/plain":
            raise GraphError(
                415,
                "UnsupportedMediaType",
                "importMime takes the base64-encoded MIME content as text/plain.",
            )
        try:
            mime = base64.b64decode(body, validate=True)
        except ValueError:
            raise GraphError(
                400, "ErrorMimeContentInvalidBase64String", "Invalid base64."
            ) from None
        item = mailbox.add_item(folder, "IPM.Note", mime)
        item.mime = mime
        subject = email.message_from_bytes(mime).get("Subject", "")
        message = {
            "id": item.id,
            "isDraft": False,
            "isRead": False,
            "subject": str(subject),
            "receivedDateTime": item.received,
            "parentFolderId": folder.id,
        }
        return 201, message, {}

    def _outlook_item(self, user, item_id, collection) -> FakeItem:
        """An item through the user's messages, events or contacts: each collection holds only
        its own kind, whatever folder the item is in."""
        try:
            item = self._user(user).find_item(item_id)[1]
        except KeyError:
            item = None
        if item is None or _collection(item.type) != collection:
            raise GraphError(
                404, "ErrorItemNotFound", "The specified object was not found in the store."
            )
        return item

    def _outlook_patch(self, user, item_id, headers, body, collection, role):
        """PATCH of a message (https://learn.microsoft.com/graph/api/message-update), event
        (…/event-update) or contact (…/contact-update); each takes singleValueExtendedProperties
        (https://learn.microsoft.com/graph/api/singlevaluelegacyextendedproperty-post-singlevalueextendedproperties)."""
        self.authorize(headers, role)
        patch = _json_body(headers, body)
        item = self._outlook_item(user, item_id, collection)
        _apply_properties(item, patch)
        return 200, {"id": item.id, "isRead": item.is_read}, {}

    def _messages_patch(self, user, message_id, headers, body, **_):
        return self._outlook_patch(user, message_id, headers, body, "messages", "Mail.ReadWrite")

    def _events_patch(self, user, event_id, headers, body, **_):
        return self._outlook_patch(user, event_id, headers, body, "events", "Calendars.ReadWrite")

    def _contacts_patch(self, user, contact_id, headers, body, **_):
        return self._outlook_patch(
            user, contact_id, headers, body, "contacts", "Contacts.ReadWrite"
        )

    def _messages_get(self, user, message_id, headers, **_):
        self.authorize(headers, "Mail.Read")
        item = self._outlook_item(user, message_id, "messages")
        flag = {"flagStatus": "flagged" if item.flagged else "notFlagged"}
        return (
            200,
            {
                "id": item.id,
                "isRead": item.is_read,
                "receivedDateTime": item.received,
                "flag": flag,
            },
            {},
        )

    def _messages_value(self, user, message_id, headers, **_):
        self.authorize(headers, "Mail.Read")
        item = self._outlook_item(user, message_id, "messages")
        return 200, item.mime if item.mime is not None else item.body, {}

    def _domain_records(self, name, headers, purpose):
        self.authorize_directory(headers)
        try:
            records = self.domains[name.lower()][purpose]
        except KeyError:
            raise GraphError(
                404,
                "Request_ResourceNotFound",
                f"Resource '{name}' does not exist or one of its queried reference-property "
                "objects are not present.",
            ) from None
        return 200, {"value": records}, {}

    def _domains_serviceConfigurationRecords(self, name, headers, **_):
        return self._domain_records(name, headers, "service")

    def _domains_verificationDnsRecords(self, name, headers, **_):
        return self._domain_records(name, headers, "verification")

    def _batch(self, version, headers, body, **_):
        """JSON batching (https://learn.microsoft.com/graph/json-batching): at most 20 requests;
        each id "must be unique within the batch, otherwise the batch request fails with a 400
        error code" (ids compare case-insensitively); a request with a body must name its
        Content-Type in its headers, else the whole batch is refused."""
        requests = _json_body(headers, body).get("requests")
        if not isinstance(requests, list) or not 0 < len(requests) <= BATCH_LIMIT:
            raise GraphError(400, "BadRequest", f"A batch holds 1 to {BATCH_LIMIT} requests.")
        if not all(isinstance(r, dict) and r.get("method") and r.get("url") for r in requests):
            raise GraphError(400, "BadRequest", "Each request needs an id, a method and a url.")
        ids = [str(r.get("id") or "").lower() for r in requests]
        if "" in ids or len(set(ids)) != len(ids):
            raise GraphError(400, "BadRequest", "Batch request contains duplicate request ids.")
        for request in requests:
            if "body" in request and not _content_type(_headers(request.get("headers") or {})):
                raise GraphError(
                    400,
                    "BadRequest",
                    f"Request {request['id']} has a body but no Content-Type header.",
                )
        with ThreadPoolExecutor(BATCH_PARALLEL) as pool:
            responses = list(
                pool.map(lambda request: self._batch_one(version, headers, request), requests)
            )
        return 200, {"responses": responses}, {}

    def _batch_one(self, version, headers, request) -> dict:
        sub_headers = _headers(
            {"Authorization": headers.get("Authorization", ""), **(request.get("headers") or {})}
        )
        sub_body = request.get("body")
        if isinstance(sub_body, dict):
            sub_body = json.dumps(sub_body).encode()
        elif isinstance(sub_body, str):  # a non-JSON body travels base64-URL-encoded
            try:
                sub_body = base64.urlsafe_b64decode(sub_body)
            except ValueError:
                sub_body = b"\xff"  # unreadable: the endpoint refuses it in its own words
        status, response_headers, payload = self.dispatch(
            request["method"], f"/{version}{request['url']}", sub_headers, sub_body or b""
        )
        is_json = response_headers.get("Content-Type") == "application/json"
        return {
            "id": request["id"],
            "status": status,
            "headers": response_headers,
            # Non-JSON bodies (a message's $value) come back base64-encoded.
            "body": json.loads(payload) if is_json else base64.b64encode(payload).decode(),
        }


def _headers(mapping: dict) -> Message:
    """Request headers read as HTTP reads them: names compare case-insensitively."""
    headers = Message()
    for name, value in mapping.items():
        headers[name] = str(value)
    return headers


def _content_type(headers) -> str:
    return (headers.get("Content-Type") or "").split(";")[0].strip().lower()


JSON_UNREADABLE = (
    "Unable to read JSON request payload. Please ensure Content-Type header is set and payload "
    "is of valid JSON format."
)


def _json_body(headers, body: bytes) -> dict:
    """A JSON request body: Graph reads one only when Content-Type says application/json, and
    answers a body it cannot read with 400 (https://learn.microsoft.com/graph/errors), never by
    dropping the connection."""
    try:
        if _content_type(headers) != "application/json":
            raise ValueError("not JSON")
        parsed = json.loads(body)
    except ValueError:
        raise GraphError(400, "BadRequest", JSON_UNREADABLE) from None
    if not isinstance(parsed, dict):
        raise GraphError(400, "BadRequest", JSON_UNREADABLE)
    return parsed


# Which of a user's collections holds an item of this message class: events hold
# IPM.Appointment, contacts IPM.Contact, messages mail and what derives from it (meeting requests,
# reports); tasks and sticky notes are in none (https://learn.microsoft.com/graph/api/resources/mail-api-overview).
_COLLECTIONS = {"IPM.Appointment": "events", "IPM.Contact": "contacts"}
_NO_COLLECTION = ("IPM.Task", "IPM.StickyNote", "IPM.DistList")


def _collection(message_class: str) -> str:
    base = ".".join(message_class.split(".")[:2])
    if base in _COLLECTIONS:
        return _COLLECTIONS[base]
    return "" if base in _NO_COLLECTION else "messages"


def _apply_properties(item: FakeItem, patch: dict) -> None:
    if "isRead" in patch:
        item.is_read = bool(patch["isRead"])
    if "flag" in patch:
        item.flagged = patch["flag"].get("flagStatus") == "flagged"
    for prop in patch.get("singleValueExtendedProperties", []):
        item.properties[prop["id"]] = prop["value"]
        if prop["id"] == DELIVERY_TIME:
            item.received = prop["value"]


def _expanded(item: FakeItem, query: dict) -> dict:
    """The item's resource, with the extended property a
    ``$expand=singleValueExtendedProperties($filter=id eq '…')`` asks for when it has it
    (https://learn.microsoft.com/graph/api/singlevaluelegacyextendedproperty-get)."""
    resource = item.resource()
    wanted = re.search(r"id eq '([^']+)'", query.get("$expand", ""))
    if wanted and wanted.group(1) in item.properties:
        resource["singleValueExtendedProperties"] = [
            {"id": wanted.group(1), "value": item.properties[wanted.group(1)]}
        ]
    return resource


def _max_page_size(headers) -> int:
    match = re.search(r"odata\.maxpagesize=(\d+)", headers.get("Prefer", ""))
    return int(match.group(1)) if match else 0


def _throttled(error: tuple[str, str], retry_after: float) -> GraphError:
    code, message = error
    return GraphError(429, code, message, {"Retry-After": _retry_after(retry_after)})


class OAuthError(GraphError):
    """Entra ID's token endpoint answers in OAuth 2.0's error shape, not Graph's."""

    def body(self) -> dict:
        return {"error": self.code, "error_description": str(self)}


def _oauth_error(code: str, description: str) -> OAuthError:
    return OAuthError(401 if code == "invalid_client" else 400, code, description)


def _verify_assertion(app: App, assertion: str) -> None:
    """Check a private_key_jwt client assertion against the app's registered certificate."""
    header, payload, signature = assertion.split(".")
    if not app.certificate_pem:
        raise _oauth_error("invalid_client", "AADSTS700027: No certificate is registered.")
    public_key = x509.load_pem_x509_certificate(app.certificate_pem).public_key()
    try:
        public_key.verify(
            _b64url_decode(signature),
            f"{header}.{payload}".encode(),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except InvalidSignature:
        raise _oauth_error(
            "invalid_client", "AADSTS700027: Client assertion contains an invalid signature."
        ) from None
    if json.loads(_b64url_decode(payload)).get("sub") != app.client_id:
        raise _oauth_error("invalid_client", "AADSTS700027: Assertion subject mismatch.")


_V = r"/(?:v1\.0|beta)"  # both versions host the import/export API
_MBX = _V + r"/admin/exchange/mailboxes/([^/]+)"
ROUTES = [
    (r"/([^/]+)/v2\.0/\.well-known/openid-configuration", "GET", "openid"),
    (r"/([^/]+)/oauth2/v2\.0/token", "POST", "token"),
    (_V + r"/users/([^/]+)/settings/exchange", "GET", "exchangeSettings"),
    (_MBX + r"/folders/delta", "GET", "folders.delta"),
    (_MBX + r"/folders", "POST", "folders.create"),
    (_MBX + r"/folders/([^/]+)/childFolders", "POST", "folders.child"),
    (_MBX + r"/folders/([^/]+)/items/delta", "GET", "items.delta"),
    (_MBX + r"/folders/([^/]+)/items", "GET", "items.list"),
    # mailboxItem: List, Get and delta only, no PATCH
    # (https://learn.microsoft.com/graph/api/resources/mailboxitem)
    (_MBX + r"/folders/([^/]+)/items/([^/]+)", "GET", "items.get"),
    (_MBX + r"/exportItems", "POST", "exportItems"),
    (_MBX + r"/createImportSession", "POST", "createImportSession"),
    (r"/api/gbeta/Mailboxes\('([^']+)'\)/importItem", "POST", "importItem"),
    (r"/beta/users/([^/]+)/mailFolders/([^/]+)/importMime", "POST", "importMime"),  # beta only
    (_V + r"/users/([^/]+)/messages/([^/]+)", "PATCH", "messages.patch"),
    (_V + r"/users/([^/]+)/messages/([^/]+)", "GET", "messages.get"),
    (_V + r"/users/([^/]+)/events/([^/]+)", "PATCH", "events.patch"),
    (_V + r"/users/([^/]+)/contacts/([^/]+)", "PATCH", "contacts.patch"),
    (_V + r"/users/([^/]+)/messages/([^/]+)/\$value", "GET", "messages.value"),
    (r"/(v1\.0|beta)/\$batch", "POST", "batch"),
    (
        _V + r"/domains/([^/]+)/serviceConfigurationRecords",
        "GET",
        "domains.serviceConfigurationRecords",
    ),
    (_V + r"/domains/([^/]+)/verificationDnsRecords", "GET", "domains.verificationDnsRecords"),
]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Graph clients expect
    # One write per response and no Nagle delay: headers and body in separate small segments
    # otherwise meet the client's delayed ACK (40 ms a request).
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    graph: GraphServer

    def log_message(self, *args):
        pass

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        graph = self.graph
        with graph.lock:
            graph.counts["http"] += 1
            graph.in_flight += 1
            graph.max_in_flight = max(graph.max_in_flight, graph.in_flight)
        try:
            time.sleep(graph.latency)
            status, headers, payload = graph.dispatch(method, self.path, self.headers, body)
        except Exception as exc:  # a fault of the fake answers 500, as Graph would
            error = GraphError(500, "InternalServerError", f"{type(exc).__name__}: {exc}")
            status, headers = 500, {"Content-Type": "application/json"}
            payload = json.dumps(error.body()).encode()
        finally:
            with graph.lock:
                graph.in_flight -= 1
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def do_PATCH(self):
        self._serve("PATCH")

    def do_PUT(self):
        self._serve("PUT")

    def do_DELETE(self):
        self._serve("DELETE")


@pytest.fixture
def graph_server(tmp_path):
    server = GraphServer(tmp_path).start()
    yield server
    server.stop()
