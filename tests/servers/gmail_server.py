"""A protocol-level Gmail API server on loopback, for the Google Workspace connector's tests and
bench. It speaks HTTPS and JSON as Google documents the calls the connector makes, so the real
clients run unpatched against it: google-auth (the service account's JWT bearer grant) and httpx.

Token endpoint (``POST /token``; the service-account key's ``token_uri`` points here): the JWT
bearer grant of RFC 7523 as Google runs it for service accounts
(https://developers.google.com/identity/protocols/oauth2/service-account#httprest): the
assertion's RS256 signature is checked with the key the service account was given, ``aud``
must be Google's token URI, ``exp`` in the future, and ``sub`` (the mailbox acted for) a user
of the domain whose domain-wide delegation grants the client id every scope asked for. Tokens expire
(``token_lifetime``). The small API the IMAP OAuth2 work may reuse: ``add_service_account``
(returns the key JSON as a dict), ``delegate`` (client id -> scopes), ``add_user``,
``token_url``, ``tokens`` (access token -> ``Grant``).

Gmail API v1 (https://developers.google.com/gmail/api/reference/rest), under ``/gmail/v1/users/
{userId}`` where ``userId`` is ``me`` or the token's own subject:
- ``GET profile`` (users/getProfile), ``GET labels`` (users.labels/list), ``GET labels/{id}``
  (users.labels/get: messagesTotal, messagesUnread);
- ``GET messages`` (users.messages/list: ``labelIds``, ``includeSpamTrash``, ``maxResults`` up to
  500, ``pageToken``, ``q`` with ``before:<epoch seconds>`` only);
- ``GET messages/{id}`` (users.messages/get) with ``format=raw`` (base64url of the exact bytes,
  with labelIds, internalDate, historyId, sizeEstimate) or ``format=minimal``;
- ``GET history`` (users.history/list): records after ``startHistoryId``, 404 for one older than
  what the server still keeps (``expire_history``), as the sync guide says
  (https://developers.google.com/gmail/api/guides/sync#partial_synchronization);
- ``POST /batch/gmail/v1`` (https://developers.google.com/gmail/api/guides/batch): a
  multipart/mixed body of application/http parts, at most 100 calls; each call is counted and
  answered like a call of its own.

Quotas (https://developers.google.com/gmail/api/reference/quota): each call costs its units
(messages.get 5, messages.list 5, history.list 2, labels 1, getProfile 1) against a per-user
budget per window (15,000 a minute by default); past it a call is refused with Google's error body
(https://developers.google.com/gmail/api/guides/handle-errors#resolve_a_403_error_user_rate_limit_exceeded
and #resolve_a_429_error_too_many_requests), as 429 rateLimitExceeded or, with
``quota_error="userRateLimitExceeded"``, 403 userRateLimitExceeded; ``throttle(endpoint, n)``
refuses an endpoint's next n calls so, whatever the quota.

It refuses what Google refuses, in Google's error body: no or an unknown/expired token (401
authError), a token without a Gmail read scope (403 insufficientPermissions), another user's
mailbox (403 "Delegation denied"), an unknown path or method (404), a batch that is not
multipart/mixed, holds a part that is not application/http, or holds more than 100 calls (400).

Outside pytest: ``GmailServer().start()`` (see scripts/bench_google.py).
"""

from __future__ import annotations

import base64
import email.utils
import itertools
import json
import re
import ssl
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.servers.graph_server import _tls_files

GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
READ_SCOPES = frozenset(
    {
        "https://www.googleapis.com/auth/gmail.readonly",
        "https://www.googleapis.com/auth/gmail.modify",
        "https://mail.google.com/",
    }
)
BATCH_LIMIT = 100  # "You're limited to 100 calls in a single batch request."
MAX_RESULTS = 500  # messages.list: maxResults, "The maximum allowed value for this field is 500."
# Quota units per method (https://developers.google.com/gmail/api/reference/quota).
UNITS = {
    "profile": 1,
    "labels.list": 1,
    "labels.get": 1,
    "messages.list": 5,
    "messages.get": 5,
    "history.list": 2,
}
USER_UNITS_PER_MINUTE = 15_000
SYSTEM_LABELS = (
    "INBOX",
    "SENT",
    "DRAFT",
    "SPAM",
    "TRASH",
    "UNREAD",
    "STARRED",
    "IMPORTANT",
    "CHAT",
    "CATEGORY_PERSONAL",
    "CATEGORY_SOCIAL",
    "CATEGORY_PROMOTIONS",
    "CATEGORY_UPDATES",
    "CATEGORY_FORUMS",
)


class GoogleError(Exception):
    """An error answered in the Gmail API's JSON shape."""

    STATUS = {
        400: "INVALID_ARGUMENT",
        401: "UNAUTHENTICATED",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
        429: "RESOURCE_EXHAUSTED",
        500: "INTERNAL",
    }

    def __init__(self, code: int, message: str, reason: str, domain: str = "global"):
        super().__init__(message)
        self.code, self.reason, self.domain = code, reason, domain

    def body(self) -> dict:
        return {
            "error": {
                "code": self.code,
                "message": str(self),
                "errors": [{"message": str(self), "domain": self.domain, "reason": self.reason}],
                "status": self.STATUS.get(self.code, "UNKNOWN"),
            }
        }


class OAuthError(GoogleError):
    """The token endpoint answers in OAuth 2.0's shape (RFC 6749 section 5.2)."""

    def body(self) -> dict:
        return {"error": self.reason, "error_description": str(self)}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Message:
    id: str
    thread_id: str
    raw: bytes
    labels: set
    internal_date: int  # milliseconds since the epoch, as Gmail gives it
    history_id: int

    def resource(self, format: str) -> dict:
        resource = {
            "id": self.id,
            "threadId": self.thread_id,
            "labelIds": sorted(self.labels),
            "snippet": "",
            "historyId": str(self.history_id),
            "internalDate": str(self.internal_date),
            "sizeEstimate": len(self.raw),
        }
        if format == "raw":
            resource["raw"] = _b64url(self.raw)
        return resource


@dataclass
class Mailbox:
    """One user's Gmail: labels, messages, and the history of changes since ``floor``."""

    address: str
    labels: dict = field(default_factory=dict)  # id -> resource
    messages: dict = field(default_factory=dict)  # id -> Message
    history: list = field(default_factory=list)  # records, in order of id
    floor: int = 0  # history ids up to here are no longer kept
    ids: itertools.count = field(default_factory=lambda: itertools.count(1000))
    lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self):
        for label in SYSTEM_LABELS:
            self.labels[label] = {"id": label, "name": label, "type": "system"}

    def next_history(self) -> int:
        return next(self.ids)

    def add_label(self, name: str) -> str:
        """A user label (nested labels are named "Parent/Child"); its id."""
        with self.lock:
            for label in self.labels.values():
                if label["name"] == name:
                    return label["id"]
            label_id = f"Label_{len(self.labels) + 1}"
            self.labels[label_id] = {
                "id": label_id,
                "name": name,
                "type": "user",
                "messageListVisibility": "show",
                "labelListVisibility": "labelShow",
            }
            return label_id

    def label_id(self, name_or_id: str) -> str:
        if name_or_id in self.labels:
            return name_or_id
        return self.add_label(name_or_id)

    def add_message(self, raw: bytes, labels=(), internal_date: int | None = None) -> Message:
        with self.lock:
            history_id = self.next_history()
            message = Message(
                id=f"{history_id:016x}",
                thread_id=f"{history_id:016x}",
                raw=raw,
                labels={self.label_id(label) for label in labels},
                internal_date=internal_date or int(time.time() * 1000),
                history_id=history_id,
            )
            self.messages[message.id] = message
            self._record(history_id, "messagesAdded", message)
            return message

    def change_labels(self, message_id: str, add=(), remove=()) -> None:
        """What users.messages.modify does, with its history records."""
        with self.lock:
            message = self.messages[message_id]
            added = {self.label_id(label) for label in add} - message.labels
            removed = {self.label_id(label) for label in remove} & message.labels
            message.labels |= added
            message.labels -= removed
            for kind, labels in (("labelsAdded", added), ("labelsRemoved", removed)):
                if labels:
                    message.history_id = self.next_history()
                    self._record(message.history_id, kind, message, sorted(labels))

    def delete_message(self, message_id: str) -> None:
        with self.lock:
            message = self.messages.pop(message_id)
            self._record(self.next_history(), "messagesDeleted", message)

    def expire_history(self) -> None:
        """Forget every history record so far, as Gmail does after about a week: a client
        asking from an older historyId gets 404."""
        with self.lock:
            self.floor = self.current_history()
            self.history.clear()

    def current_history(self) -> int:
        with self.lock:
            return max([self.floor] + [record["id"] for record in self.history])

    def _record(self, history_id: int, kind: str, message: Message, labels=None) -> None:
        brief = {
            "id": message.id,
            "threadId": message.thread_id,
            "labelIds": sorted(message.labels),
        }
        entry = {"message": brief}
        if labels is not None:
            entry["labelIds"] = labels
        self.history.append({"id": history_id, "messages": [brief], kind: [entry], "_kind": kind})


@dataclass
class ServiceAccount:
    client_email: str
    client_id: str
    public_key: rsa.RSAPublicKey
    info: dict  # the key JSON Google hands out, as a dict


@dataclass
class Grant:
    subject: str
    scopes: frozenset
    expires: float
    client_id: str


class GmailServer:
    """In-memory Google Workspace domain: service accounts, delegation, users' Gmail."""

    def __init__(self, directory: Path | None = None, page_size: int = 100):
        self.directory = Path(directory or tempfile.mkdtemp(prefix="gmail-server-"))
        self.directory.mkdir(parents=True, exist_ok=True)
        self.cert_file, self.key_file = _tls_files(self.directory)
        self.default_page_size = page_size  # messages.list without maxResults gives 100
        self.accounts: dict[str, ServiceAccount] = {}  # client_email -> account
        self.delegation: dict[str, frozenset] = {}  # client id -> scopes granted
        self.users: dict[str, Mailbox] = {}
        self.tokens: dict[str, Grant] = {}
        self.token_lifetime = 3599
        self.counts: Counter = Counter()  # endpoint -> calls answered (batched ones too)
        self.gets: Counter = Counter()  # (user, message id) -> raw downloads
        self.quota = USER_UNITS_PER_MINUTE
        self.quota_window = 60.0
        self.quota_error = "rateLimitExceeded"  # or "userRateLimitExceeded"
        self.refused: Counter = Counter()  # user -> calls refused for quota
        self.forced: Counter = Counter()  # endpoint -> next calls refused as over quota
        self.spent: dict[str, deque] = {}  # user -> (time, units) within the window
        self.units: Counter = Counter()  # user -> units spent in all
        self.latency = 0.0  # seconds added to every request, as a distant datacentre would
        self.lock = threading.Lock()
        self.httpd: ThreadingHTTPServer | None = None

    # -- set-up -----------------------------------------------------------------------------
    def add_service_account(self, name: str = "mailferry") -> dict:
        """A service account with a new key: the key JSON as Google's console hands it out,
        its ``token_uri`` pointing at this server."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        client_email = f"{name}@mailferry-test.iam.gserviceaccount.com"
        client_id = str(100_000_000_000_000_000_000 + len(self.accounts))
        info = {
            "type": "service_account",
            "project_id": "mailferry-test",
            "private_key_id": uuid.uuid4().hex,
            "private_key": key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode(),
            "client_email": client_email,
            "client_id": client_id,
            "token_uri": self.token_url,
        }
        self.accounts[client_email] = ServiceAccount(
            client_email, client_id, key.public_key(), info
        )
        return info

    def delegate(self, client_id: str, scopes) -> None:
        """Domain-wide delegation: what the admin console's API controls grant the client id."""
        self.delegation[client_id] = frozenset(scopes)

    def add_user(self, address: str) -> Mailbox:
        mailbox = Mailbox(address.lower())
        self.users[address.lower()] = mailbox
        return mailbox

    def set_quota(self, units: int, window: float = 60.0, error: str = "rateLimitExceeded"):
        self.quota, self.quota_window, self.quota_error = units, window, error

    def throttle(self, endpoint: str, times: int) -> None:
        """The next ``times`` calls of ``endpoint`` ("messages.get") are refused as over the
        user's quota, whatever the quota says."""
        with self.lock:
            self.forced[endpoint] = times

    def expire_tokens(self) -> None:
        with self.lock:
            for grant in self.tokens.values():
                grant.expires = time.time()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    def start(self) -> GmailServer:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        handler = type("Handler", (_Handler,), {"gmail": self})
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

    # -- token endpoint -----------------------------------------------------------------------
    def _token(self, body: bytes) -> dict:
        form = {k: v[0] for k, v in parse_qs(body.decode(errors="replace")).items()}
        if form.get("grant_type") != JWT_BEARER:
            raise OAuthError(
                400, f"Invalid grant_type: {form.get('grant_type', '')}", "unsupported_grant_type"
            )
        try:
            header_b64, payload_b64, signature = form["assertion"].split(".")
            claims = json.loads(_b64url_decode(payload_b64))
        except (KeyError, ValueError):
            raise OAuthError(400, "Invalid JWT.", "invalid_grant") from None
        account = self.accounts.get(claims.get("iss", ""))
        if account is None:
            raise OAuthError(401, "The OAuth client was not found.", "invalid_client")
        try:
            account.public_key.verify(
                _b64url_decode(signature),
                f"{header_b64}.{payload_b64}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            raise OAuthError(400, "Invalid JWT Signature.", "invalid_grant") from None
        now = time.time()
        # "aud: … the value is always https://oauth2.googleapis.com/token" (service-account
        # page above), whatever URI the request is sent to; google-auth sends exactly that.
        if claims.get("aud") not in (GOOGLE_TOKEN_AUDIENCE, self.token_url):
            raise OAuthError(400, "Invalid JWT: Token must be a short-lived token", "invalid_grant")
        if not claims.get("exp", 0) > now - 60 or claims.get("iat", 0) > now + 60:
            raise OAuthError(
                400,
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
                "timeframe. Check your iat and exp values in the JWT claim.",
                "invalid_grant",
            )
        scopes = frozenset(claims.get("scope", "").split())
        subject = claims.get("sub", "")
        if subject.lower() not in self.users:
            raise OAuthError(400, "Invalid email or User ID", "invalid_grant")
        if not scopes or not scopes <= self.delegation.get(account.client_id, frozenset()):
            raise OAuthError(
                401,
                "Client is unauthorized to retrieve access tokens using this method, or client "
                "not authorized for any of the scopes requested.",
                "unauthorized_client",
            )
        token = "ya29." + _b64url(uuid.uuid4().bytes + uuid.uuid4().bytes)
        with self.lock:
            self.tokens[token] = Grant(
                subject.lower(), scopes, now + self.token_lifetime, account.client_id
            )
            self.counts["token"] += 1
        return {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"}

    # -- Gmail API ------------------------------------------------------------------------------
    def _grant(self, headers) -> Grant:
        token = (headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        grant = self.tokens.get(token)
        if grant is None or grant.expires <= time.time():
            raise GoogleError(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                "login cookie or other valid authentication credential. See https://"
                "developers.google.com/identity/sign-in/web/devconsole-project.",
                "authError",
            )
        if not grant.scopes & READ_SCOPES:
            raise GoogleError(
                403, "Request had insufficient authentication scopes.", "insufficientPermissions"
            )
        return grant

    def _mailbox(self, grant: Grant, user_id: str) -> Mailbox:
        user = grant.subject if user_id == "me" else user_id.lower()
        if user != grant.subject:
            raise GoogleError(403, f"Delegation denied for {grant.subject}", "forbidden")
        return self.users[user]

    def _spend(self, user: str, endpoint: str) -> None:
        """Count the call's quota units, or refuse it when the user's window is spent."""
        cost = UNITS[endpoint]
        now = time.monotonic()
        with self.lock:
            spent = self.spent.setdefault(user, deque())
            while spent and spent[0][0] <= now - self.quota_window:
                spent.popleft()
            forced = self.forced[endpoint] > 0
            self.forced[endpoint] -= forced
            if forced or sum(units for _, units in spent) + cost > self.quota:
                self.refused[user] += 1
                if self.quota_error == "userRateLimitExceeded":
                    raise GoogleError(
                        403, "User Rate Limit Exceeded", "userRateLimitExceeded", "usageLimits"
                    )
                raise GoogleError(
                    429,
                    "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute "
                    "per user' of service 'gmail.googleapis.com'.",
                    "rateLimitExceeded",
                    "usageLimits",
                )
            spent.append((now, cost))
            self.units[user] += cost
            self.counts[endpoint] += 1

    def dispatch(self, method: str, target: str, headers, body: bytes):
        """One request (also each call of a batch) -> status, headers, body."""
        parts = urlsplit(target)
        path = unquote(parts.path)
        query = parse_qs(parts.query)
        try:
            if path == "/token" and method == "POST":
                return _json_answer(200, self._token(body))
            if path == "/batch/gmail/v1" and method == "POST":
                return self._batch(headers, body)
            match = re.fullmatch(r"/gmail/v1/users/([^/]+)/(.+)", path)
            route = _route(method, match.group(2)) if match else None
            if route is None:
                raise GoogleError(404, "Method not found.", "notFound")
            endpoint, arg = route
            grant = self._grant(headers)
            mailbox = self._mailbox(grant, match.group(1))
            self._spend(mailbox.address, endpoint)
            answer = getattr(self, "_" + endpoint.replace(".", "_"))(mailbox, arg, query)
            return _json_answer(200, answer)
        except GoogleError as error:
            return _json_answer(error.code, error.body())

    def _profile(self, mailbox: Mailbox, _, query) -> dict:
        return {
            "emailAddress": mailbox.address,
            "messagesTotal": len(mailbox.messages),
            "threadsTotal": len(mailbox.messages),
            "historyId": str(mailbox.current_history()),
        }

    def _labels_list(self, mailbox: Mailbox, _, query) -> dict:
        return {"labels": list(mailbox.labels.values())}

    def _labels_get(self, mailbox: Mailbox, label_id, query) -> dict:
        if label_id not in mailbox.labels:
            raise GoogleError(404, "Requested entity was not found.", "notFound")
        held = [m for m in mailbox.messages.values() if label_id in m.labels]
        return mailbox.labels[label_id] | {
            "messagesTotal": len(held),
            "messagesUnread": sum("UNREAD" in m.labels for m in held),
            "threadsTotal": len(held),
            "threadsUnread": sum("UNREAD" in m.labels for m in held),
        }

    def _messages_list(self, mailbox: Mailbox, _, query) -> dict:
        wanted = set(query.get("labelIds", []))
        spam_trash = query.get("includeSpamTrash", ["false"])[0] == "true"
        size = min(int(query.get("maxResults", [self.default_page_size])[0]), MAX_RESULTS)
        before = _before(query.get("q", [""])[0])
        with mailbox.lock:
            # Newest first, as Gmail lists.
            held = sorted(mailbox.messages.values(), key=lambda m: m.history_id, reverse=True)
        held = [
            m
            for m in held
            if wanted <= m.labels
            and (spam_trash or wanted & {"SPAM", "TRASH"} or not m.labels & {"SPAM", "TRASH"})
            and (before is None or m.internal_date < before * 1000)
        ]
        start = int(query.get("pageToken", ["0"])[0])
        page = held[start : start + size]
        answer = {
            "messages": [{"id": m.id, "threadId": m.thread_id} for m in page],
            "resultSizeEstimate": len(page),
        }
        if start + size < len(held):
            answer["nextPageToken"] = str(start + size)
        if not page:
            del answer["messages"]  # Gmail leaves the field out of an empty answer
        return answer

    def _messages_get(self, mailbox: Mailbox, message_id, query) -> dict:
        format = query.get("format", ["full"])[0]
        if format not in ("raw", "minimal"):
            # full and metadata exist at Google; the connector never asks for them.
            raise GoogleError(400, f"Invalid value at 'format' ({format!r})", "invalidArgument")
        with mailbox.lock:
            message = mailbox.messages.get(message_id)
            if message is None:
                raise GoogleError(404, "Requested entity was not found.", "notFound")
            if format == "raw":
                self.gets[(mailbox.address, message_id)] += 1
            return message.resource(format)

    def _history_list(self, mailbox: Mailbox, _, query) -> dict:
        try:
            start = int(query["startHistoryId"][0])
        except (KeyError, ValueError):
            raise GoogleError(400, "Invalid startHistoryId", "invalidArgument") from None
        size = min(int(query.get("maxResults", ["100"])[0]), MAX_RESULTS)
        with mailbox.lock:
            if start < mailbox.floor:
                raise GoogleError(404, "Requested entity was not found.", "notFound")
            records = [r for r in mailbox.history if r["id"] > start]
            current = mailbox.current_history()
        offset = int(query.get("pageToken", ["0"])[0])
        page = records[offset : offset + size]
        answer = {
            "history": [
                {k: v for k, v in r.items() if k != "_kind"} | {"id": str(r["id"])} for r in page
            ],
            "historyId": str(current),
        }
        if offset + size < len(records):
            answer["nextPageToken"] = str(offset + size)
        if not page:
            del answer["history"]
        return answer

    def _batch(self, headers, body: bytes):
        content_type = headers.get("Content-Type", "")
        match = re.match(r'multipart/mixed;\s*boundary="?([^";]+)"?', content_type)
        if not match:
            raise GoogleError(400, "Content-Type must be multipart/mixed.", "badRequest")
        delimiter = b"--" + match.group(1).encode()
        chunks = body.split(delimiter)[1:]
        if not chunks or not chunks[-1].startswith(b"--"):
            raise GoogleError(400, "Malformed multipart body.", "badRequest")
        parts = [chunk.strip(b"\r\n") for chunk in chunks[:-1]]
        if len(parts) > BATCH_LIMIT:
            raise GoogleError(
                400, f"A batch request holds at most {BATCH_LIMIT} calls.", "badRequest"
            )
        self.counts["batch"] += 1
        boundary = "batch_" + uuid.uuid4().hex
        answer = []
        for part in parts:
            part_headers, _, request = part.partition(b"\r\n\r\n")
            fields = _header_fields(part_headers)
            if fields.get("content-type", "").lower() != "application/http":
                raise GoogleError(400, "Each part must be application/http.", "badRequest")
            request_line, _, rest = request.partition(b"\r\n")
            inner_headers, _, inner_body = rest.partition(b"\r\n\r\n")
            method, target = request_line.decode().split()[:2]
            # The outer request's headers apply to every call, its own ones win.
            merged = {"Authorization": headers.get("Authorization", "")}
            merged |= {k.title(): v for k, v in _header_fields(inner_headers).items()}
            status, _, payload = self.dispatch(method, target, merged, inner_body)
            content_id = fields.get("content-id", "").strip("<>")
            reason = _REASONS.get(status, "Error")
            answer.append(
                f"--{boundary}\r\nContent-Type: application/http\r\n"
                f"Content-ID: <response-{content_id}>\r\n\r\n"
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=UTF-8"
                f"\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
                + payload
                + b"\r\n"
            )
        answer.append(f"--{boundary}--\r\n".encode())
        return 200, {"Content-Type": f"multipart/mixed; boundary={boundary}"}, b"".join(answer)


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden"}
_REASONS |= {404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}


def _route(method: str, rest: str) -> tuple[str, str] | None:
    """(endpoint, path argument) of a documented read call, None for anything else."""
    if method != "GET":
        return None
    for pattern, endpoint in (
        (r"profile", "profile"),
        (r"labels", "labels.list"),
        (r"labels/([^/]+)", "labels.get"),
        (r"messages", "messages.list"),
        (r"messages/([^/]+)", "messages.get"),
        (r"history", "history.list"),
    ):
        match = re.fullmatch(pattern, rest)
        if match:
            return endpoint, (match.group(1) if match.groups() else "")
    return None


def _before(q: str) -> int | None:
    """The one search operator the connector uses: ``before:<epoch seconds>``."""
    match = re.search(r"\bbefore:(\d+)\b", q)
    return int(match.group(1)) if match else None


def _header_fields(block: bytes) -> dict[str, str]:
    fields = {}
    for line in block.decode(errors="replace").split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    return fields


def _json_answer(status: int, body: dict):
    return status, {"Content-Type": "application/json; charset=UTF-8"}, json.dumps(body).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    gmail: GmailServer

    def log_message(self, *args):
        pass

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with self.gmail.lock:
            self.gmail.counts["http"] += 1  # every HTTPS request, batch envelopes and tokens too
        time.sleep(self.gmail.latency)
        try:
            status, headers, payload = self.gmail.dispatch(method, self.path, self.headers, body)
        except GoogleError as error:
            status, headers, payload = _json_answer(error.code, error.body())
        except Exception as exc:  # a fault of the fake answers 500, never a dropped connection
            error = GoogleError(500, f"{type(exc).__name__}: {exc}", "backendError")
            status, headers, payload = _json_answer(500, error.body())
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Date", email.utils.formatdate(usegmt=True))
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def do_PUT(self):
        self._serve("PUT")

    def do_DELETE(self):
        self._serve("DELETE")

    def do_PATCH(self):
        self._serve("PATCH")


@pytest.fixture
def gmail_server(tmp_path):
    server = GmailServer(tmp_path).start()
    yield server
    server.stop()
