"""Google Workspace as a source, through the Gmail API with a service account that has
domain-wide delegation (the way Microsoft's own Google Workspace migration and its peers read
Gmail). Source only: ``store`` and ``ensure_folder`` refuse.

Documented calls only, each with its page (https://developers.google.com/gmail/api/reference/rest/
v1/…; the test server, tests/servers/gmail_server.py, refuses anything else as Google does):
- ``GET users/{userId}/profile`` (users/getProfile): the mailbox's current ``historyId``;
- ``GET users/{userId}/labels`` (users.labels/list) and ``…/labels/{id}`` (users.labels/get,
  batched: messagesTotal per label for discovery);
- ``GET users/{userId}/messages`` (users.messages/list, ``labelIds``, ``includeSpamTrash``,
  ``maxResults`` 500, ``q=before:<epoch seconds>`` for pre-stage; search operators:
  https://support.google.com/mail/answer/7190);
- ``GET users/{userId}/messages/{id}?format=raw`` (users.messages/get): the exact RFC 822 bytes,
  base64url, with ``labelIds`` and ``internalDate``, through the batch endpoint
  ``POST /batch/gmail/v1`` (https://developers.google.com/gmail/api/guides/batch: at most 100
  calls, "Sending batches larger than 50 requests is not recommended");
- ``GET users/{userId}/history`` (users.history/list) from the stored ``historyId``; a 404 means
  the id is too old and a full listing is needed
  (https://developers.google.com/gmail/api/guides/sync#partial_synchronization).
- Tokens: google-auth's service-account credentials with ``subject`` = the mailbox (the JWT
  bearer grant, https://developers.google.com/identity/protocols/oauth2/service-account), sent to
  the key JSON's own ``token_uri``; google-auth refreshes them before they expire.

Quotas: each request first spends its units in the mailbox's and the Cloud project's budgets,
shared by every worker process (``budgets``). Throttling anyway
(https://developers.google.com/gmail/api/guides/handle-errors): 429 and 403
``rateLimitExceeded``/``userRateLimitExceeded`` are retried with exponential backoff, inline up
to ``max_inline_wait`` seconds, then handed to the engine as a TransientError that says
"throttled by Google", which the engine shows on the folder and retries later.

Labels become folders (README, "Google Workspace"): each user label a folder nested by "/", the
system labels INBOX, SENT, SPAM, TRASH and DRAFT the role folders, and a message with none of
these in "All Mail" (the archive role). STARRED is the \\Flagged flag, UNREAD the absence of
\\Seen, ``internalDate`` the received date. A message with several labels is placed in each of
its folders but downloaded once: see ``Spool``.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import ssl
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
from google.auth import exceptions as google_exceptions
from google.auth.transport.requests import Request
from google.oauth2 import service_account

from .base import (
    ARCHIVE,
    DRAFTS,
    INBOX,
    JUNK,
    MAIL,
    SENT,
    TRASH,
    AuthError,
    Changes,
    Connector,
    ConnectorError,
    Folder,
    Item,
    ItemRef,
    StoreResult,
    TransientError,
)
from .options import LABEL_STRATEGIES
from .reach_http import reach_session, reach_transport

DEFAULT_API_URL = "https://gmail.googleapis.com"
READ_SCOPE = "https://www.googleapis.com/auth/gmail.readonly"
# System labels that are folders, and the folder each becomes.
SYSTEM_FOLDERS = {
    "INBOX": (("Inbox",), INBOX),
    "SENT": (("Sent Items",), SENT),
    "SPAM": (("Junk",), JUNK),
    "TRASH": (("Deleted Items",), TRASH),
    "DRAFT": (("Drafts",), DRAFTS),
}
# The order the one_folder strategy picks a message's one folder in (user labels follow).
SYSTEM_ORDER = ("TRASH", "SPAM", "DRAFT", "SENT", "INBOX")
# Messages in no folder label (archived, or only IMPORTANT/CATEGORY_*) land here.
ALL_MAIL_ID = "mailferry:all-mail"
ALL_MAIL = (("All Mail",), ARCHIVE)
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
SOURCE_ONLY = "Google Workspace is a source only: mailferry reads Gmail and never writes to it."
SPOOL_HOURS = 24  # a spooled message no folder asked for since is deleted


def _received(internal_date) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(internal_date) / 1000, UTC)
    except (TypeError, ValueError):
        return None


def _flags(label_ids) -> frozenset[str]:
    labels = set(label_ids or ())
    flags = set()
    if "UNREAD" not in labels:
        flags.add("\\Seen")
    if "STARRED" in labels:
        flags.add("\\Flagged")
    if "DRAFT" in labels:
        flags.add("\\Draft")
    return frozenset(flags)


# Quota units per call (https://developers.google.com/gmail/api/reference/quota).
UNITS = {"messages": 5, "history": 2}


def _units(rest: str) -> int:
    """The units a call under ``users/me/`` costs: messages.list and .get 5, history.list 2,
    labels and getProfile 1."""
    return UNITS.get(rest.split("/")[0].split("?")[0], 1)


def _keyword(name: str) -> str:
    """A label name as an IMAP keyword atom (RFC 3501 section 9: no SP, CTL, 8-bit,
    ``(){%*"\\]``)."""
    return "".join(c if 0x20 < ord(c) < 0x7F and c not in '(){%*"\\]' else "_" for c in name)


def _raw(text: str) -> bytes:
    """format=raw: the message's bytes in base64url, padding left off."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _reason(body) -> str:
    try:
        return body["error"]["errors"][0].get("reason", "")
    except (KeyError, IndexError, TypeError):
        return ""


def _message(body) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body["error"].get("message", "")
    return str(body)[:200]


def _throttled(status: int, body) -> bool:
    return status == 429 or (status == 403 and _reason(body) in RATE_LIMIT_REASONS)


class Spool:
    """Downloaded messages kept on the worker's disk until every folder they belong in took
    them, so a message with three labels is downloaded once, not three times, whichever worker
    process copies which label folder. A lock file per mailbox makes "look, else download and
    keep" one step across processes. Entries nobody asked for within SPOOL_HOURS are deleted
    (a label folder excluded from the migration never asks)."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)

    @contextmanager
    def locked(self):
        with open(self.root / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _path(self, message_id: str) -> Path:
        return self.root / hashlib.sha256(message_id.encode()).hexdigest()

    def read(self, message_id: str) -> dict | None:
        try:
            return json.loads(self._path(message_id).read_bytes())
        except (FileNotFoundError, ValueError):
            return None

    def keep(self, message_id: str, resource: dict, served: set) -> None:
        """Keep the message (its resource with the raw bytes) and the folders it served."""
        path = self._path(message_id)
        temporary = path.with_suffix(f".{uuid.uuid4().hex}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(json.dumps(resource | {"_served": sorted(served)}).encode())
        temporary.replace(path)

    def serve(self, message_id: str, resource: dict, folder_id: str, wanted: set) -> None:
        """Note that ``folder_id`` took the message; forget it once every folder did."""
        served = set(resource.get("_served", ())) | {folder_id}
        if wanted <= served:
            self._path(message_id).unlink(missing_ok=True)
        else:
            self.keep(message_id, resource, served)

    def prune(self, hours: float = SPOOL_HOURS) -> None:
        cutoff = time.time() - hours * 3600
        for path in self.root.iterdir():
            try:
                if path.name != ".lock" and path.stat().st_mtime < cutoff:
                    path.unlink(missing_ok=True)
            except FileNotFoundError:
                pass  # another worker served or pruned it meanwhile


class GmailConnector(Connector):
    kind = "google"

    def __init__(self, endpoint, mailbox):
        super().__init__(endpoint, mailbox)
        try:
            self.key = json.loads(endpoint.secret)
            self.client_email = self.key["client_email"]
        except (ValueError, KeyError, TypeError):
            raise AuthError(
                "The tenant's secret is not a service account key: paste the JSON key file "
                "Google Cloud's console gives for the service account."
            ) from None
        self.base_url = (endpoint.host or DEFAULT_API_URL).rstrip("/")
        if "://" not in self.base_url:
            self.base_url = f"https://{self.base_url}"
        self.batch_size = self.options["batch_size"]
        self.page_size = self.options["page_size"]
        self.max_inline_wait = self.options["max_inline_wait"]
        self._http: httpx.Client | None = None
        self._credentials = None
        self._token_lock = threading.Lock()
        self._labels: dict[str, dict] | None = None
        self._budgets: list | None = None
        if self.options["labels"] not in LABEL_STRATEGIES:
            raise ConnectorError(
                f"The labels option must be one of {', '.join(LABEL_STRATEGIES)}, "
                f"not {self.options['labels']!r}."
            )
        self.one_folder = self.options["labels"] == "one_folder"
        spool_root = Path(self.options["spool_dir"] or Path(tempfile.gettempdir()) / "mailferry")
        owner = hashlib.sha256(f"{self.client_email}\0{mailbox.lower()}".encode()).hexdigest()
        self._spool_dir = spool_root / "gmail-spool" / owner[:32]
        self.spool: Spool | None = None

    # -- plumbing ------------------------------------------------------------------------------
    def _verify(self):
        if not self.endpoint.verify_tls:
            return False
        ca_file = self.options["ca_file"]
        return ssl.create_default_context(cafile=ca_file) if ca_file else True

    def open(self) -> None:
        transport = reach_transport(self.endpoint.reach, verify=self._verify())
        self._http = httpx.Client(transport=transport, timeout=httpx.Timeout(60, connect=15))
        session = reach_session(self.endpoint.reach)
        ca_file = self.options["ca_file"]
        session.verify = (
            ca_file if ca_file and self.endpoint.verify_tls else self.endpoint.verify_tls
        )
        # requests lets REQUESTS_CA_BUNDLE override a session's CA file; the tenant's wins.
        session.trust_env = not ca_file
        self._request = Request(session=session)
        try:
            self._credentials = service_account.Credentials.from_service_account_info(
                self.key, scopes=[READ_SCOPE], subject=self.mailbox
            )
        except (ValueError, KeyError) as exc:
            raise AuthError(f"The service account key cannot be used: {exc}") from exc
        self.spool = Spool(self._spool_dir)
        self.spool.prune()

    def close(self) -> None:
        if self._http:
            self._http.close()

    def _token(self, renew: bool = False) -> str:
        with self._token_lock:
            credentials = self._credentials
            if renew or not credentials.valid:
                try:
                    credentials.refresh(self._request)
                except google_exceptions.TransportError as exc:
                    raise TransientError(f"Google's token endpoint is unreachable: {exc}") from exc
                except google_exceptions.RefreshError as exc:
                    if getattr(exc, "retryable", False):
                        raise TransientError(f"Google's token endpoint failed: {exc}") from exc
                    raise AuthError(
                        f"Google refused a token for {self.mailbox} to the service account "
                        f"{self.client_email}: {exc.args[0] if exc.args else exc}. Domain-wide "
                        f"delegation must grant its client id the scope {READ_SCOPE}, and the "
                        "mailbox must be a user of the domain."
                    ) from exc
            return credentials.token

    def budgets(self) -> list:
        """Google's quota units for this mailbox and for the service account's Cloud project
        (https://developers.google.com/gmail/api/reference/quota), shared by every worker
        process through ``mailboxes.budget`` (Redis or the database), so N workers together
        wait for the window instead of each meeting 429s."""
        if self._budgets is None:
            from mailboxes.budget import Budget, Limits  # Django's store, only when copying

            options = self.options
            project = f"google:{self.key.get('project_id') or self.client_email}"
            window = options["quota_window"]
            self._budgets = [
                Budget(
                    f"{project}:{self.mailbox.lower()}",
                    Limits(requests=options["user_units"], window=window),
                ),
                Budget(project, Limits(requests=options["project_units"], window=window)),
            ]
        return self._budgets

    @contextmanager
    def _turn(self, units: int):
        """Spend ``units`` in every budget before a request; a wait longer than
        ``max_inline_wait`` goes back to the engine as throttling."""
        from mailboxes.budget import BudgetExhausted

        try:
            with ExitStack() as stack:
                for budget in self.budgets():
                    patience = self.max_inline_wait
                    stack.enter_context(budget.request(0, patience, requests=units))
                yield
        except BudgetExhausted as exc:
            raise TransientError(
                f"Throttled by Google: the quota units of {self.mailbox} for this minute are "
                f"spent; retry in {exc.wait:.0f} s",
                retry_after=exc.wait,
            ) from exc

    def _send(self, method: str, url: str, units: int, **kwargs) -> httpx.Response:
        """One exchange costing ``units`` quota units, with a valid token; a 401 renews the
        token once."""
        for renew in (False, True):
            headers = kwargs.pop("headers", {}) | {"Authorization": f"Bearer {self._token(renew)}"}
            try:
                with self._turn(units):
                    response = self._http.request(method, url, headers=headers, **kwargs)
            except httpx.HTTPError as exc:
                raise TransientError(f"The Gmail API is unreachable: {exc}") from exc
            kwargs["headers"] = {k: v for k, v in headers.items() if k != "Authorization"}
            if response.status_code != 401:
                return response
        return response

    def _user_path(self, rest: str) -> str:
        return f"/gmail/v1/users/me/{rest}"

    def _get(self, rest: str, what: str, **params) -> dict:
        """A GET of the Gmail API, throttled answers retried with backoff."""
        url = self.base_url + self._user_path(rest)
        waited = 0.0
        while True:
            response = self._send("GET", url, _units(rest), params=params)
            body = _json(response)
            if not _throttled(response.status_code, body):
                break
            waited = self._back_off(waited, _message(body))
        if response.status_code >= 400:
            raise self._error(response.status_code, body, what)
        return body

    def _back_off(self, waited: float, message: str) -> float:
        """Exponential backoff (1, 2, 4 … seconds) while it stays within ``max_inline_wait``;
        beyond that the engine retries later."""
        delay = min(max(1.0, waited), 32.0)  # 1, 1, 2, 4, 8 …: the time waited so far, doubled
        if waited + delay > self.max_inline_wait:
            raise TransientError(
                f"Throttled by Google ({message or 'rate limit exceeded'}); retry in {delay:.0f} s",
                retry_after=delay,
            )
        time.sleep(delay)
        return waited + delay

    def _error(self, status: int, body, what: str) -> ConnectorError:
        message = _message(body)
        if status in (401, 403):
            return AuthError(f"Google refused to {what} for {self.mailbox}: {message}")
        if status >= 500:
            return TransientError(f"The Gmail API failed to {what}: HTTP {status}: {message}")
        if status == 404:
            return _NotFound(message)
        return ConnectorError(f"Could not {what}: HTTP {status}: {message}")

    def _batch(self, calls: list[str], what: str) -> list[tuple[int, dict]]:
        """(status, body) of each call (a path with its query), ``batch_size`` calls a request;
        calls Google throttled are sent again after a backoff."""
        answers: dict[int, tuple[int, dict]] = {}
        pending = list(range(len(calls)))
        waited, renewed = 0.0, False
        while pending:
            again, message, refused = [], "", False
            for start in range(0, len(pending), self.batch_size):
                chunk = pending[start : start + self.batch_size]
                for index, (status, body) in zip(
                    chunk, self._send_batch([calls[i] for i in chunk], what), strict=True
                ):
                    if _throttled(status, body):
                        again.append(index)
                        message = _message(body)
                    elif status == 401 and not renewed:
                        again.append(index)  # the token expired between calls: renewed once
                        refused = True
                    else:
                        answers[index] = (status, body)
            pending = again
            if refused:
                self._token(renew=True)
                renewed = True
            elif pending:
                waited = self._back_off(waited, message)
        return [answers[i] for i in range(len(calls))]

    def _send_batch(self, calls: list[str], what: str) -> list[tuple[int, dict]]:
        boundary = "mailferry_" + uuid.uuid4().hex
        body = b"".join(
            f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: <{n}>\r\n\r\n"
            f"GET {call} HTTP/1.1\r\n\r\n".encode()
            for n, call in enumerate(calls)
        )
        body += f"--{boundary}--\r\n".encode()
        headers = {"Content-Type": f"multipart/mixed; boundary={boundary}"}
        waited = 0.0
        while True:
            response = self._send(
                "POST",
                f"{self.base_url}/batch/gmail/v1",
                sum(_units(call.removeprefix(self._user_path(""))) for call in calls),
                content=body,
                headers=headers,
            )
            if not _throttled(response.status_code, _json(response)):
                break
            waited = self._back_off(waited, _message(_json(response)))
        if response.status_code >= 400:
            raise self._error(response.status_code, _json(response), what)
        return _batch_answers(response, len(calls))

    # -- folders -------------------------------------------------------------------------------
    def labels(self, refresh: bool = False) -> dict[str, dict]:
        if self._labels is None or refresh:
            body = self._get("labels", "list the labels")
            self._labels = {label["id"]: label for label in body.get("labels", [])}
        return self._labels

    def label_folder(self, label: dict) -> tuple[tuple[str, ...], str | None] | None:
        """(path, role) of the folder a label becomes, None for a label that is no folder."""
        if label["id"] in SYSTEM_FOLDERS:
            return SYSTEM_FOLDERS[label["id"]]
        if label.get("type") != "user":
            return None
        path = tuple(part for part in label["name"].split("/") if part)
        return (path, None) if path else None

    def folder_labels(self) -> list[str]:
        """Ids of the labels that are folders, in the order the one_folder strategy prefers
        them: Deleted Items, Junk, Drafts, Sent Items, Inbox, then user labels by name."""
        labels = self.labels()
        system = [label_id for label_id in SYSTEM_ORDER if label_id in labels]
        users = [lid for lid, label in labels.items() if label.get("type") == "user"]
        users.sort(key=lambda label_id: labels[label_id]["name"].lower())
        return system + [label_id for label_id in users if self.label_folder(labels[label_id])]

    def placements(self, label_ids) -> set[str]:
        """Native ids of the folders a message with these labels is placed in: each of them
        (every_folder), or the first in ``folder_labels`` order (one_folder)."""
        held = set(label_ids or ())
        if not held <= set(self.labels()):
            self.labels(refresh=True)  # a label made since they were read: its folder counts
        folders = [label_id for label_id in self.folder_labels() if label_id in held]
        if self.one_folder:
            folders = folders[:1]
        return set(folders) or {ALL_MAIL_ID}

    def keywords(self, label_ids, folder_id: str) -> set[str]:
        """one_folder: the message's other user labels, as IMAP keywords (atoms: characters
        RFC 3501 does not allow in one become "_")."""
        if not self.one_folder:
            return set()
        labels = self.labels()
        return {
            _keyword(labels[label_id]["name"])
            for label_id in label_ids or ()
            if label_id != folder_id and labels.get(label_id, {}).get("type") == "user"
        }

    def folders(self) -> list[Folder]:
        labels = self.labels(refresh=True)
        placed = [(lid, self.label_folder(label)) for lid, label in labels.items()]
        placed = [(lid, where) for lid, where in placed if where]
        counted = self._batch(
            [self._user_path(f"labels/{lid}") for lid, _ in placed], "count each label"
        )
        folders = []
        for (label_id, (path, role)), (status, body) in zip(placed, counted, strict=True):
            count = body.get("messagesTotal", 0) if status == 200 else 0
            folders.append(Folder(path, MAIL, role, count=count, native_id=label_id))
        folders.append(Folder(ALL_MAIL[0], MAIL, ALL_MAIL[1], native_id=ALL_MAIL_ID))
        return folders

    def ensure_folder(self, path, kind, role) -> Folder:
        raise ConnectorError(SOURCE_ONLY)

    def store(self, folder, items) -> list[StoreResult]:
        raise ConnectorError(SOURCE_ONLY)

    def fingerprints(self, folder) -> dict[str, list[str]]:
        raise ConnectorError(SOURCE_ONLY)

    def check(self) -> str:
        if not self.mailbox:
            raise ConnectorError(
                "The service account acts for one user at a time: give the tenant a connection "
                "test user, or add a mailbox first."
            )
        profile = self._get("profile", "read the mailbox profile")
        labels = self.labels(refresh=True)
        return (
            f"Connected: {len(labels)} labels, {profile.get('messagesTotal', 0)} messages "
            f"in {self.mailbox}."
        )

    # -- listing and delta ---------------------------------------------------------------------
    def _history_now(self) -> str:
        return self._get("profile", "read the mailbox profile")["historyId"]

    def _list(self, label_id: str | None, before: datetime | None) -> list[str]:
        """Ids of the messages holding ``label_id`` (every message for None), oldest first."""
        params = {"maxResults": self.page_size, "includeSpamTrash": "true"}
        if label_id:
            params["labelIds"] = label_id
        if before is not None:
            params["q"] = f"before:{int(before.timestamp())}"
        ids, token = [], None
        while True:
            if token:
                params["pageToken"] = token
            page = self._get("messages", "list messages", **params)
            ids += [m["id"] for m in page.get("messages", [])]
            token = page.get("nextPageToken")
            if not token:
                return ids[::-1]

    def _listing(self, folder: Folder, before) -> list[str]:
        """The folder's messages: its label's (one_folder: less those a label before it in
        ``folder_labels`` claims); All Mail's: every message less the labelled ones."""
        order = self.folder_labels()
        if folder.native_id == ALL_MAIL_ID:
            listed, before_it = self._list(None, before), order
        else:
            listed = self._list(folder.native_id, before)
            before_it = order[: order.index(folder.native_id)] if self.one_folder else []
        placed = set()
        for label_id in before_it:
            placed.update(self._list(label_id, before))
        return [message_id for message_id in listed if message_id not in placed]

    def changes(self, folder, state, before=None) -> Changes:
        start = (state or {}).get("historyId")
        if start and before is None:
            try:
                ids, latest = self._history(start, folder)
                return Changes([ItemRef(i) for i in ids], {"historyId": latest})
            except _NotFound:
                pass  # too old: listed whole, matched by fingerprint on the target
        now = self._history_now()
        ids = self._listing(folder, before)
        return Changes([ItemRef(i) for i in ids], {"historyId": now}, reset=bool(start))

    def _history_records(self, start: str) -> tuple[list[dict], str]:
        records, token, latest = [], None, start
        while True:
            params = {"startHistoryId": start, "maxResults": 500}
            if token:
                params["pageToken"] = token
            page = self._get("history", "read the mailbox history", **params)
            records += page.get("history", [])
            latest = page.get("historyId", latest)
            token = page.get("nextPageToken")
            if not token:
                return records, latest

    def _history(self, start: str, folder: Folder) -> tuple[list[str], str]:
        """Ids of the messages that came into ``folder`` since ``start``: added, or given one
        of its labels (for All Mail: left without a folder label), and still there."""
        records, latest_id = self._history_records(start)
        latest: dict[str, list | None] = {}
        touched: list[str] = []
        kinds = ["messagesAdded", "labelsAdded"]
        if folder.native_id == ALL_MAIL_ID:
            kinds.append("labelsRemoved")  # archiving takes INBOX away
        for record in records:
            for kind in ("messagesAdded", "labelsAdded", "labelsRemoved", "messagesDeleted"):
                for entry in record.get(kind, []):
                    message = entry["message"]
                    deleted = kind == "messagesDeleted"
                    latest[message["id"]] = None if deleted else message.get("labelIds", [])
                    if kind in kinds and message["id"] not in touched:
                        touched.append(message["id"])
        ids = [
            m
            for m in touched
            if latest.get(m) is not None and folder.native_id in self.placements(latest[m])
        ]
        return ids, latest_id

    def flag_changes(self, folder, state) -> dict[str, frozenset[str]]:
        """Messages starred, unstarred, read or unread since the state's history id."""
        start = (state or {}).get("historyId")
        if not start:
            return {}
        try:
            records, _ = self._history_records(start)
        except _NotFound:
            return {}
        changed: dict[str, list] = {}
        for record in records:
            for kind in ("labelsAdded", "labelsRemoved"):
                for entry in record.get(kind, []):
                    if {"UNREAD", "STARRED"} & set(entry.get("labelIds", [])):
                        changed[entry["message"]["id"]] = entry["message"].get("labelIds", [])
        return {
            message_id: _flags(labels) | self.keywords(labels, folder.native_id)
            for message_id, labels in changed.items()
            if folder.native_id in self.placements(labels)
        }

    # -- reading -------------------------------------------------------------------------------
    def fetch(self, folder, ids, format=None) -> list[Item]:
        """The messages' exact bytes; each downloaded once for all the folders it is placed in
        (``Spool``), 50 ``messages.get`` calls to a batch request."""
        items = []
        with self.spool.locked():
            kept = {i: self.spool.read(i) for i in ids}
            missing = [i for i, resource in kept.items() if resource is None]
            calls = [self._user_path(f"messages/{i}?format=raw") for i in missing]
            for message_id, (status, body) in zip(
                missing, self._batch(calls, "download messages"), strict=True
            ):
                if status == 404:
                    continue  # deleted since listed
                if status != 200:
                    items.append(
                        Item(
                            message_id,
                            b"",
                            error=f"Gmail refused the message: {_message(body)}",
                            error_code=_reason(body) or str(status),
                        )
                    )
                    continue
                kept[message_id] = body
            for message_id in ids:
                resource = kept.get(message_id)
                if resource is None:
                    continue
                wanted = self.placements(resource.get("labelIds"))
                if len(wanted) > 1:
                    self.spool.serve(message_id, resource, folder.native_id, wanted)
                items.append(
                    Item(
                        message_id,
                        _raw(resource["raw"]),
                        flags=_flags(resource.get("labelIds"))
                        | self.keywords(resource.get("labelIds"), folder.native_id),
                        received=_received(resource.get("internalDate")),
                    )
                )
        return items


class _NotFound(ConnectorError):
    """404: the history id is too old, or the message or label is gone."""


def _json(response: httpx.Response):
    try:
        return response.json() if response.content else {}
    except ValueError:
        return response.text[:200]


def _batch_answers(response: httpx.Response, count: int) -> list[tuple[int, dict]]:
    """The (status, JSON body) of each call of a batch answer, in the calls' order (Google may
    answer in any order: the Content-ID "response-<n>" says which call each part answers)."""
    content_type = response.headers.get("Content-Type", "")
    boundary = content_type.partition("boundary=")[2].strip('"')
    if not boundary:
        raise TransientError("The Gmail batch answer is not multipart/mixed.")
    answers: dict[int, tuple[int, dict]] = {}
    for part in response.content.split(b"--" + boundary.encode())[1:-1]:
        part_headers, _, inner = part.strip(b"\r\n").partition(b"\r\n\r\n")
        content_id = ""
        for line in part_headers.decode(errors="replace").split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-id":
                content_id = value.strip().strip("<>").removeprefix("response-")
        status_line, _, rest = inner.partition(b"\r\n")
        _, _, payload = rest.partition(b"\r\n\r\n")
        try:
            status = int(status_line.split()[1])
            body = json.loads(payload) if payload.strip() else {}
            answers[int(content_id)] = (status, body)
        except (IndexError, ValueError):
            continue
    missing = {"error": {"message": "The batch answer left this call out."}}
    return [answers.get(n, (500, missing)) for n in range(count)]
