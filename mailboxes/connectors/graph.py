"""Exchange Online through Microsoft Graph's mailbox import/export API (EWS is retired there:
Microsoft notice MC1227454, blocking from 1 October 2026, removal 1 April 2027).

Documented calls only, each with its page (https://learn.microsoft.com/graph/api/…; the test
server refuses anything else as Graph does):
- ``GET /users/{id}/settings/exchange`` -> ``primaryMailboxId`` (exchangesettings-get);
- ``GET /admin/exchange/mailboxes/{id}/folders/delta`` (mailboxfolder-delta: the whole tree,
  flat, with ``parentFolderId``), ``POST …/folders`` (mailbox-post-folders) and
  ``…/folders/{id}/childFolders`` (mailboxfolder-post-childfolders);
- ``GET …/folders/{id}/items/delta`` (mailboxitem-delta; deltaLink kept in the folder state) and
  ``GET …/folders/{id}/items`` with ``$expand=singleValueExtendedProperties`` (mailboxfolder-list-
  items, singlevaluelegacyextendedproperty-get) to read the recovery stamp and PR_SEARCH_KEY;
- ``POST …/exportItems`` (mailbox-exportitems, at most 20 ids) -> base64 FastTransfer stream;
- ``POST …/createImportSession`` (mailbox-createimportsession) -> ``importUrl``; POST
  ``{FolderId, Mode: create, Data}`` to it (resources/mailboxitemimportsession), one item a
  request, without an Authorization header (the URL is pre-authenticated);
- ``POST /users/{id}/mailFolders/{id}/importMime`` (mailfolder-importmime, beta): a non-draft
  message from base64 MIME sent as text/plain;
- ``GET /users/{id}/messages/{id}`` and ``…/$value`` (message-get);
- ``PATCH /users/{id}/messages/{id}`` (message-update): read state, flag, received time and the
  recovery stamp of a MIME import as singleValueExtendedProperties (singlevaluelegacyextended
  property-post-singlevalueextendedproperties). An exported item's import needs none: it keeps
  its source's PR_SEARCH_KEY. A mailboxItem itself takes no PATCH (resources/mailboxitem);
- ``POST /$batch`` (https://learn.microsoft.com/graph/json-batching: at most 20 requests, unique
  ids, a Content-Type with every body) groups importMime, GET and PATCH calls.
- Entra ID's client-credentials token endpoint, through msal
  (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow).

HTTP client: plain ``httpx.Client`` (one pooled keep-alive connection set per connector, thread
safe, explicit timeouts); concurrency comes from a small thread pool per connector, and every
request first takes its turn in Exchange Online's budget for the app and mailbox (and the
tenant's, when capped): shared by every worker process through ``mailboxes.budget`` (Redis or
the database), so N workers together stay within the 4 requests in flight, the requests per 10
minutes and the bytes per 5 minutes Microsoft allows, instead of each meeting 429s alone.
Tokens: msal's ConfidentialClientApplication (client credentials), one per tenant and client in
this process, so its token cache is shared and msal refreshes tokens before they expire; a
token Graph refuses anyway (401, e.g. "Lifetime validation failed, the token is expired." when
clocks differ) is dropped from the cache and renewed once.
"""

from __future__ import annotations

import base64
import json
import logging
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote, urlsplit

import httpx

from .base import (
    MAIL,
    RFC822,
    AuthError,
    Changes,
    Connector,
    ConnectorError,
    Folder,
    Item,
    ItemRef,
    StoreResult,
    TargetLimits,
    TransientError,
)
from .oauth import client_token, forget_tokens, token_app
from .reach_http import reach_transport
from .roles import (
    COMMON_FOLDER_NAMES,
    EWS_DISTINGUISHED,
    KIND_FOLDER_CLASSES,
    kind_for_folder_class,
)

GRAPH_FTS = "graph-fts"
EXCHANGE_ONLINE_MAX_ITEM = 150 * 1024 * 1024
# EWS ExportItems/UploadItems carry the same FastTransfer stream as Graph's exportItems/importItem:
# Microsoft's examples of both (UploadItems "Data" and importItem "Data") start with the same
# header bytes. The import accepts either; Graph never produces the EWS name.
EWS_FTS = "ews-fts"
FTS_FORMATS = frozenset({GRAPH_FTS, EWS_FTS})

# beta: the import/export API, the delta functions and $batch are on v1.0 and beta alike, but
# importMime (IMAP/maildir -> Exchange Online) is on beta only, and a $batch reaches one version.
DEFAULT_GRAPH_URL = "https://graph.microsoft.com/beta"
EXPORT_LIMIT = 20  # exportItems: "Maximum size of this collection is 20 strings"
BATCH_LIMIT = 20  # JSON batching: at most 20 requests in one $batch
# Graph dispatches up to four of a batch's requests to Outlook at once, whatever the mailbox
# (Microsoft's answer on MailboxConcurrency with JSON batching, learn.microsoft.com/answers/
# questions/1660054), so a batch to one mailbox takes four of its concurrent requests.
BATCH_PARALLEL = 4
# Seconds a request waits in-process for its budget (a slot or a window's room); longer, the
# folder job goes back to the engine with the wait as its retry hint.
BUDGET_PATIENCE = 120.0
DELIVERY_TIME = "SystemTime 0x0E06"  # PR_MESSAGE_DELIVERY_TIME: the received date Outlook shows
# Our own named property on every item we import: the source fingerprint, for recovery.
FINGERPRINT = "String {1b7e2a4c-5d0f-4f4e-9a61-2d6c8e0b9f35} Name MailferryFingerprint"
# PR_SEARCH_KEY (PidTagSearchKey, PtypBinary 0x300B): "Whenever a copy of an object is created,
# the key is also copied from the original object" ([MS-OXCPRPT] 2.2.1.9,
# learn.microsoft.com/openspecs/exchange_server_protocols/ms-oxcprpt/1a4c4540-3f0d-480f-ab1e-
# 8613f9314824), so an item imported from its export has its source's key.
SEARCH_KEY = "Binary 0x300B"

# Application permissions (roles claim) every migration needs, and what each is for.
REQUIRED_ROLES = {
    "User.Read.All": "find the mailbox",
    "MailboxFolder.Read.All": "list folders",
    "MailboxItem.Read.All": "list items",
    "MailboxItem.ImportExport.All": "export and import items",
}
# Needed by some migrations only: check() reports them without failing.
OTHER_ROLES = {
    "MailboxFolder.ReadWrite.All": "create folders, as a target",
    "Mail-Advanced.ReadWrite.All": "import MIME messages from IMAP/maildir, as a target",
    "Mail.ReadWrite": "set read state, flags and dates on MIME imports and mark them for "
    "recovery, as a target",
    "Mail.Read": "export mail as MIME to IMAP/maildir, as a source",
}
IMPLIED_ROLES = {
    "MailboxFolder.ReadWrite.All": "MailboxFolder.Read.All",
    "Mail.ReadWrite": "Mail.Read",
}

# httpx logs every URL at INFO; an importUrl carries its pre-authenticated token in the query.
logging.getLogger("httpx").setLevel(logging.WARNING)


def _verify(endpoint, options: dict):
    """TLS trust for httpx: a CA file from options (tests, TLS-inspecting proxies) or the
    system's; verification off only when the tenant says so."""
    ca_file = options["ca_file"]
    if not endpoint.verify_tls:
        return False
    return ssl.create_default_context(cafile=ca_file) if ca_file else True


def token_roles(access_token: str) -> set[str]:
    """Application permissions granted to the app: the access token's ``roles`` claim."""
    try:
        payload = access_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return set()
    roles = set(claims.get("roles") or ())
    return roles | {IMPLIED_ROLES[r] for r in roles if r in IMPLIED_ROLES}


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return 10.0  # Graph's throttling guidance when no hint is given


def _json(response: httpx.Response):
    """The body as JSON; a proxy's HTML error page becomes its first 200 characters."""
    try:
        return response.json() if response.content else {}
    except ValueError:
        return response.text[:200]


def _graph_error(status: int, body) -> tuple[str, str]:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return error.get("code", ""), error.get("message", "")
    return "", str(body)[:200]


def _throttle_reason(status: int, body) -> str:
    """What Graph said when it throttled: its message ("Application is over its
    MailboxConcurrency limit."), else the status."""
    code, message = _graph_error(status, body)
    return message or code or f"HTTP {status}"


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def graph_base_url(host: str) -> str:
    """The tenant's Graph URL as typed ("graph.microsoft.us", "https://…/v1.0"), completed
    with a scheme and, when it names no version, the default one."""
    if not host:
        return DEFAULT_GRAPH_URL
    url = host if "://" in host else f"https://{host}"
    parts = urlsplit(url.rstrip("/"))
    if not parts.path:
        return f"{parts.scheme}://{parts.netloc}{urlsplit(DEFAULT_GRAPH_URL).path}"
    return url.rstrip("/")


def _segment(value: str) -> str:
    """One URL path segment: ids may hold "/" or "+"; "MBX:…@…" keeps its ":" and "@"."""
    return quote(value, safe=":@")


def _chunks(seq, size):
    return [seq[i : i + size] for i in range(0, len(seq), size)]


class GraphConnector(Connector):
    kind = "exchange_online"
    native_format = GRAPH_FTS
    # Graph's import takes the same FastTransfer stream EWS exports, so EWS sources keep
    # calendars, contacts, tasks and notes at full fidelity.
    import_formats = (EWS_FTS,)

    def __init__(self, endpoint, mailbox):
        super().__init__(endpoint, mailbox)
        options = self.options
        self.base_url = graph_base_url(endpoint.host)
        self.concurrency = options["concurrency"]
        # Throttling: waits up to this long happen inline; longer ones go back to the engine
        # as TransientError(retry_after) so a worker is not held asleep.
        self.max_inline_wait = options["max_inline_wait"]
        self.max_attempts = options["max_attempts"]
        self.page_size = options["page_size"]
        self._http: httpx.Client | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._budgets: list | None = None
        self._mailbox_id = ""
        self._folders: list[dict] | None = None
        self._session: tuple[str, datetime] | None = None
        self._session_lock = threading.Lock()
        self._created: dict[str, datetime | None] = {}

    # -- plumbing ------------------------------------------------------------------------------
    def open(self) -> None:
        verify = _verify(self.endpoint, self.options)
        limits = httpx.Limits(max_connections=self.concurrency + 2)
        timeout = httpx.Timeout(60, connect=15)
        transport = reach_transport(self.endpoint.reach, verify=verify, limits=limits)
        self._http = httpx.Client(transport=transport, timeout=timeout)
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="graph")
        self._app = token_app(self.endpoint, self.options)

    def close(self) -> None:
        if self._pool:
            self._pool.shutdown()
        if self._http:
            self._http.close()

    def _token(self) -> str:
        return client_token(self._app, self.options["scope"])

    def _forget_tokens(self) -> None:
        forget_tokens(self._app)

    def budgets(self) -> list:
        """The budgets a request to this mailbox takes, narrowest first: the app's on the
        mailbox (concurrency and requests), its imported bytes (a window of its own), and the
        tenant's when capped. Keyed by tenant, app and mailbox, so every worker shares them."""
        if self._budgets is None:
            from mailboxes.budget import Budget, Limits  # Django's store, only when copying

            options, endpoint = self.options, self.endpoint
            tenant = f"graph:{endpoint.oauth_tenant_id or endpoint.oauth_authority}"
            app = f"{tenant}:{endpoint.oauth_client_id}"
            mailbox = f"{app}:{self.mailbox.lower()}"
            requests_ = (options["mailbox_concurrency"], options["mailbox_requests"])
            window, lease = options["request_window"], options["budget_lease"]
            self._budgets = [
                Budget(mailbox, Limits(*requests_, window=window, lease=lease)),
                Budget(
                    f"{mailbox}:bytes",
                    Limits(bytes=options["import_bytes"], window=options["bytes_window"]),
                ),
            ]
            if options["tenant_concurrency"] or options["tenant_requests"]:
                tenant_limits = (options["tenant_concurrency"], options["tenant_requests"])
                self._budgets.append(
                    Budget(app, Limits(*tenant_limits, window=window, lease=lease))
                )
        return self._budgets

    def budget_use(self) -> float:
        """How much of this mailbox's budget is in use now, 0.0–1.0: its most used limit of
        requests in flight, requests in the window and imported bytes in theirs, whichever
        keeps the next request waiting (the tenant's share is not the mailbox's)."""
        mailbox, uploads, *_ = self.budgets()
        return min(1.0, max(b.usage().fraction_of(b.limits) for b in (mailbox, uploads)))

    @contextmanager
    def _turn(self, size: int, requests: int, slots: int):
        """Hold this request's place in every budget (a request to no mailbox takes none).
        A wait longer than BUDGET_PATIENCE goes back to the engine as throttling."""
        if not self.mailbox:
            yield
            return
        from mailboxes.budget import BudgetExhausted

        mailbox, uploads, *tenant = self.budgets()
        # Bytes last, right before sending: bytes counted while the request then waited for
        # a slot would leave our window before they leave Exchange's.
        held = [mailbox, *tenant] + ([uploads] if size else [])
        started = time.monotonic()
        try:
            with ExitStack() as stack:
                for budget in held:
                    stack.enter_context(
                        budget.request(size, BUDGET_PATIENCE, requests=requests, slots=slots)
                    )
                self.budget_waited(
                    "the mailbox's share of its limits was in use", time.monotonic() - started
                )
                yield
        except BudgetExhausted as exc:
            raise TransientError(
                f"Exchange Online's request budget for {self.mailbox} is spent; retry in "
                f"{exc.wait:.0f}s.",
                retry_after=exc.wait,
            ) from exc

    def _send(
        self, method, url, *, auth=True, size=0, requests=1, slots=1, **kwargs
    ) -> httpx.Response:
        """One HTTP exchange in its budget turn (``size`` bytes imported; a $batch counts
        ``requests`` requests holding ``slots``), retrying throttled answers whose
        Retry-After is short."""
        if not url.startswith(("https://", "http://")):
            url = self.base_url + url
        headers = kwargs.pop("headers", {})
        attempt, renewed = 1, False
        while True:
            if auth:
                headers["Authorization"] = f"Bearer {self._token()}"
            try:
                with self._turn(size, requests, slots):
                    response = self._http.request(method, url, headers=headers, **kwargs)
            except httpx.HTTPError as exc:
                raise TransientError(f"Microsoft Graph is unreachable: {exc}") from exc
            if response.status_code == 401 and auth and not renewed:
                # Revoked, or rejected before its expiry (key rollover): one fresh token.
                self._forget_tokens()
                renewed = True
                continue
            if response.status_code not in (429, 503, 504):
                return response
            wait = _retry_after(response)
            reason = _throttle_reason(response.status_code, _json(response))
            if wait > self.max_inline_wait or attempt == self.max_attempts:
                raise TransientError(
                    f"Microsoft Graph is throttling this tenant (HTTP {response.status_code}: "
                    f"{reason}); retry in {wait:.0f}s.",
                    retry_after=wait,
                )
            self.throttled(reason, wait)
            time.sleep(wait)
            attempt += 1

    def _call(self, method, url, what: str, permission: str = "", **kwargs) -> dict:
        response = self._send(method, url, **kwargs)
        body = _json(response)
        if response.status_code >= 400:
            raise self._error(response.status_code, body, what, permission)
        return body

    def _error(self, status: int, body, what: str, permission: str) -> ConnectorError:
        code, message = _graph_error(status, body)
        if status == 401:
            return AuthError(f"Graph refused the app's token while trying to {what}: {message}")
        if status == 403:
            needed = (
                f" The app needs the {permission} application permission with admin consent."
                if permission
                else f" {message}"
            )
            return AuthError(f"Access denied while trying to {what} ({code}).{needed}")
        if status >= 500:
            return TransientError(f"Graph failed to {what}: HTTP {status} {code}: {message}")
        return ConnectorError(f"Could not {what}: HTTP {status} {code}: {message}")

    def _pages(self, url, what, permission, **kwargs):
        """Follow @odata.nextLink; yields each page's body (the last one holds the deltaLink)."""
        while url:
            body = self._call("GET", url, what, permission, **kwargs)
            yield body
            url = body.get("@odata.nextLink")

    def _batch(
        self, requests_: list[dict], what: str, permission: str, sizes=None
    ) -> list[tuple[int, dict]]:
        """(status, body) for each request, in order; $batch of 20, batches run concurrently.
        ``sizes``: the bytes each request imports, counted in the mailbox's byte budget."""
        results: list = [None] * len(requests_)
        sizes = sizes or [0] * len(requests_)

        def run(indices):
            pending = list(indices)
            for attempt in range(1, self.max_attempts + 1):
                batch = {
                    "requests": [dict(requests_[i], id=str(i)) for i in pending],
                }
                # https://learn.microsoft.com/graph/json-batching; Graph runs up to four of
                # a batch's requests to a mailbox at once, so it holds four of its slots.
                body = self._call(
                    "POST",
                    "/$batch",
                    what,
                    permission,
                    json=batch,
                    size=sum(sizes[i] for i in pending),
                    requests=len(pending),
                    slots=min(len(pending), BATCH_PARALLEL),
                )
                throttled, waits, reasons = [], [0.0], []
                for response in body.get("responses", []):
                    index, status = int(response["id"]), response["status"]
                    if status in (429, 503, 504):
                        throttled.append(index)
                        headers = response.get("headers") or {}
                        waits.append(_retry_after(httpx.Response(status, headers=headers)))
                        reasons.append(_throttle_reason(status, response.get("body") or {}))
                    else:
                        results[index] = (status, response.get("body") or {})
                if not throttled:
                    return
                wait = max(waits)
                if wait > self.max_inline_wait or attempt == self.max_attempts:
                    raise TransientError(
                        f"Microsoft Graph is throttling this tenant; retry in {wait:.0f}s.",
                        retry_after=wait,
                    )
                # One refusal each; the batch's requests wait out the one wait together.
                for n, reason in enumerate(reasons):
                    self.throttled(reason, wait if n == 0 else 0.0)
                time.sleep(wait)
                pending = throttled

        list(self._pool.map(run, _chunks(range(len(requests_)), BATCH_LIMIT)))
        # A response Graph left out counts as a failure of that request alone.
        left_out = {
            "error": {"code": "no_response", "message": "Graph's $batch answer left it out."}
        }
        return [result or (500, left_out) for result in results]

    @property
    def mailbox_id(self) -> str:
        if not self._mailbox_id:
            # https://learn.microsoft.com/graph/api/exchangesettings-get
            body = self._call(
                "GET",
                f"/users/{_segment(self.mailbox)}/settings/exchange",
                f"find the mailbox of {self.mailbox}",
                "User.Read.All",
            )
            self._mailbox_id = body.get("primaryMailboxId") or ""
            if not self._mailbox_id:
                raise ConnectorError(f"{self.mailbox} has no Exchange Online mailbox.")
        return self._mailbox_id

    @property
    def _mbx(self) -> str:
        return f"/admin/exchange/mailboxes/{_segment(self.mailbox_id)}"

    # -- the interface -------------------------------------------------------------------------
    def check(self) -> str:
        """Sign in, compare the token's roles with what a migration needs (each missing one is
        named), then list the mailbox's folders when there is a mailbox to look into."""
        roles = token_roles(self._token())
        if not roles:
            raise AuthError(
                "The app has no application permissions with admin consent. Grant consent for: "
                + ", ".join(REQUIRED_ROLES)
                + "."
            )
        missing = [role for role in REQUIRED_ROLES if role not in roles]
        if missing:
            raise AuthError(
                "The app lacks these application permissions (grant them with admin consent): "
                + "; ".join(f"{role} (to {REQUIRED_ROLES[role]})" for role in missing)
                + "."
            )
        if self.mailbox:
            message = f"Connected: {len(self.folders())} folders in {self.mailbox}."
        else:  # a tenant tested before any mailbox is imported: the permissions are the test
            message = "Signed in: the app holds the permissions every migration needs."
        other_missing = [role for role in OTHER_ROLES if role not in roles]
        if other_missing:
            message += " Some migrations also need: " + "; ".join(
                f"{role} (to {OTHER_ROLES[role]})" for role in other_missing
            )
            message += "."
        return message

    def _folder_resources(self, refresh=False) -> list[dict]:
        if self._folders is None or refresh:
            # https://learn.microsoft.com/graph/api/mailboxfolder-delta
            url = f"{self._mbx}/folders/delta"
            self._folders = [
                folder
                for page in self._pages(url, "list folders", "MailboxFolder.Read.All")
                for folder in page.get("value", [])
                if "@removed" not in folder
            ]
        return self._folders

    def folders(self) -> list[Folder]:
        return self._folder_list(refresh=True)

    def _folder_list(self, refresh=False) -> list[Folder]:
        """The tree from the last listing; ensure_folder refreshes only after creating."""
        resources = self._folder_resources(refresh)
        by_id = {f["id"]: f for f in resources}
        folders = []
        for resource in resources:
            kind = kind_for_folder_class(resource.get("type"))
            if kind is None:
                continue
            folders.append(
                Folder(
                    path=self._path(resource, by_id),
                    kind=kind,
                    role=EWS_DISTINGUISHED.get(resource.get("wellKnownName") or ""),
                    count=resource.get("totalItemCount") or 0,
                    native_id=resource["id"],
                )
            )
        return sorted(folders, key=lambda f: f.path)

    @staticmethod
    def _path(resource, by_id) -> tuple[str, ...]:
        path = [resource["displayName"]]
        parent = by_id.get(resource.get("parentFolderId"))
        while parent is not None:  # the root is not listed: its children are top level
            path.append(parent["displayName"])
            parent = by_id.get(parent.get("parentFolderId"))
        return tuple(reversed(path))

    def ensure_folder(self, path, kind, role) -> Folder:
        if not path:
            raise ConnectorError("A folder path cannot be empty.")
        if role is None and len(path) == 1:
            role = COMMON_FOLDER_NAMES.get(path[0].lower())
        if role is not None:
            found = self._by_role(role)
            if found:
                return found
        parent_id, resource = None, None
        for depth, name in enumerate(path):
            # A source "Sent/Project" lives under the target's Sent Items, whatever its name.
            found = self._by_role(COMMON_FOLDER_NAMES.get(name.lower())) if depth == 0 else None
            if found:
                parent_id, resource = found.native_id, {"id": found.native_id}
                continue
            resource = self._child(parent_id, name) or self._create_folder(parent_id, name, kind)
            parent_id = resource["id"]
        folder = next(f for f in self._folder_list() if f.native_id == resource["id"])
        if folder.kind != kind:
            # An IMAP folder called "Calendar" must not pour mail into the target's calendar.
            raise ConnectorError(
                f"{'/'.join(path)} already exists in {self.mailbox} as a {folder.kind} folder; "
                f"it cannot receive {kind} items. Map the folder to another name."
            )
        return folder

    def _by_role(self, role) -> Folder | None:
        if role is None:
            return None
        return next((f for f in self._folder_list() if f.role == role), None)

    def _child(self, parent_id, name) -> dict | None:
        resources = self._folder_resources()
        known = {f["id"] for f in resources}
        for folder in resources:
            is_child = (
                folder.get("parentFolderId") == parent_id
                if parent_id
                else folder.get("parentFolderId") not in known
            )
            if is_child and folder["displayName"].lower() == name.lower():
                return folder
        return None

    def _create_folder(self, parent_id, name, kind) -> dict:
        # https://learn.microsoft.com/graph/api/mailbox-post-folders and, under a parent,
        # https://learn.microsoft.com/graph/api/mailboxfolder-post-childfolders
        url = f"{self._mbx}/folders"
        if parent_id:
            url += f"/{_segment(parent_id)}/childFolders"
        body = {"displayName": name, "type": KIND_FOLDER_CLASSES.get(kind, "IPF.Note")}
        response = self._send("POST", url, json=body)
        if response.status_code == 409:  # created meanwhile by another worker
            self._folder_resources(refresh=True)
            existing = self._child(parent_id, name)
            if existing:
                return existing
        if response.status_code >= 400:
            raise self._error(
                response.status_code,
                _json(response),
                f"create folder {name!r}",
                "MailboxFolder.ReadWrite.All",
            )
        self._folders = None
        return _json(response)

    def changes(self, folder, state, before=None) -> Changes:
        """New items since the stored deltaLink. With ``before`` (pre-stage), younger items are
        kept in ``state["pending"]`` so the next pass returns them: the deltaLink moves on."""
        # https://learn.microsoft.com/graph/api/mailboxitem-delta
        initial = (
            f"{self._mbx}/folders/{_segment(folder.native_id)}/items/delta"
            "?$select=id,type,size,createdDateTime"
        )
        link = state.get("deltaLink") or initial
        headers = {"Prefer": f"odata.maxpagesize={self.page_size}"}
        reset = False
        try:
            resources, link = self._delta(link, headers)
        except _DeltaExpired:
            resources, link = self._delta(initial, headers)
            reset = True
        # An item kept back by a pre-stage can show up in the delta again once modified.
        refs = {i: ItemRef(i, s, _parse_time(c)) for i, s, c in state.get("pending", [])}
        for r in resources:
            refs[r["id"]] = ItemRef(
                r["id"], r.get("size") or 0, _parse_time(r.get("createdDateTime"))
            )
        ready, later = [], []
        for ref in refs.values():
            is_young = before is not None and ref.received is not None and ref.received >= before
            (later if is_young else ready).append(ref)
        for ref in refs.values():
            self._created[ref.source_id] = ref.received
        pending = [[r.source_id, r.size, r.received and r.received.isoformat()] for r in later]
        return Changes(ready, {"deltaLink": link, "pending": pending}, reset=reset)

    def _delta(self, url, headers) -> tuple[list[dict], str]:
        resources = []
        while True:
            response = self._send("GET", url, headers=dict(headers))
            body = _json(response)
            if response.status_code == 410:  # sync state lost or expired: start over
                raise _DeltaExpired()
            if response.status_code >= 400:
                raise self._error(response.status_code, body, "list items", "MailboxItem.Read.All")
            resources += [r for r in body.get("value", []) if "@removed" not in r]
            if "@odata.deltaLink" in body:
                return resources, body["@odata.deltaLink"]
            url = body["@odata.nextLink"]

    def fetch(self, folder, ids, format=GRAPH_FTS) -> list[Item]:
        if format == GRAPH_FTS:
            return self._export(folder, list(ids))
        if format == RFC822 and folder.kind == MAIL:
            return self._fetch_mime(folder, list(ids))
        raise ConnectorError(
            f"Exchange Online cannot export {folder.kind} items as {format!r}; only Graph's "
            "full-fidelity format carries them."
        )

    def _export(self, folder, ids) -> list[Item]:
        """Every id asked for is accounted for: exported, gone (Graph says ErrorItemNotFound), or
        an error item with Graph's words. An id the answer leaves out is asked for again on its
        own; left out twice, it is an error, never taken for deleted."""

        def export(chunk):
            # https://learn.microsoft.com/graph/api/mailbox-exportitems (at most 20 ids)
            answer = self._call(
                "POST",
                f"{self._mbx}/exportItems",
                "export items",
                "MailboxItem.ImportExport.All",
                json={"itemIds": chunk},
            ).get("value", [])
            return {entry.get("itemId"): entry for entry in answer}

        entries = {}
        for answered in self._pool.map(export, _chunks(ids, EXPORT_LIMIT)):
            entries.update(answered)
        left_out = [[i] for i in ids if i not in entries]
        for answered in self._pool.map(export, left_out):
            entries.update(answered)
        items = []
        for item_id in ids:
            item = self._exported(folder, item_id, entries.get(item_id))
            if item is not None:
                items.append(item)
        return items

    def _exported(self, folder, item_id, entry) -> Item | None:
        if entry is None:
            return Item(
                item_id,
                b"",
                error="Graph's exportItems left the item out of its answer, twice.",
                error_code="not_exported",
            )
        error = entry.get("error") or {}
        if error.get("code") == "ErrorItemNotFound":
            return None  # deleted since listed, in Graph's words: the engine sees it gone
        if error or not entry.get("data"):
            message = error.get("message") or "Graph's exportItems returned no data."
            return Item(item_id, b"", error=message, error_code=error.get("code", "no_data"))
        return Item(
            source_id=item_id,
            data=base64.b64decode(entry["data"]),
            format=GRAPH_FTS,
            received=self._created.get(item_id),
            kind=folder.kind,
        )

    def _fetch_mime(self, folder, ids) -> list[Item]:
        """MIME for IMAP/maildir targets: each message's $value and its read state, flag and
        received date, two requests an item, 20 to a $batch."""
        user = _segment(self.mailbox)
        requests_ = []
        for item_id in ids:
            url = f"/users/{user}/messages/{_segment(item_id)}"
            # https://learn.microsoft.com/graph/api/message-get (also "Get MIME content": $value)
            requests_.append(
                {"method": "GET", "url": url + "?$select=isRead,receivedDateTime,flag"}
            )
            requests_.append({"method": "GET", "url": url + "/$value"})
        answers = self._batch(requests_, "read messages", "Mail.Read")
        items = []
        for item_id, (meta, mime) in zip(ids, _chunks(answers, 2), strict=True):
            failed = next(((st, body) for st, body in (meta, mime) if st >= 400), None)
            if failed and failed[0] == 404:
                continue  # deleted since listed, in Graph's words: the engine sees it gone
            if failed:
                code, message = _graph_error(*failed)
                items.append(Item(item_id, b"", error=message, error_code=code or "http_error"))
                continue
            flags = {"\\Seen"} if meta[1].get("isRead") else set()
            if (meta[1].get("flag") or {}).get("flagStatus") == "flagged":
                flags.add("\\Flagged")
            items.append(
                Item(
                    source_id=item_id,
                    # JSON batching returns non-JSON bodies base64-encoded.
                    data=base64.b64decode(mime[1]),
                    flags=frozenset(flags),
                    received=_parse_time(meta[1].get("receivedDateTime")),
                )
            )
        return items

    def store(self, folder, items) -> list[StoreResult]:
        results: dict[str, StoreResult] = {}
        fts = [i for i in items if i.format in FTS_FORMATS]
        mime = [i for i in items if i.format == RFC822 and folder.kind == MAIL]
        for item in items:
            if item not in fts and item not in mime:
                results[item.source_id] = StoreResult(
                    item.source_id,
                    error=f"Exchange Online cannot import {item.format!r} items into a "
                    f"{folder.kind} folder.",
                    error_code="unsupported_format",
                )
        if fts:
            results.update(self._import_fts(folder, fts))
        if mime:
            results.update(self._import_mime(folder, mime))
        return [results[item.source_id] for item in items]

    def _import_url(self, refused: str = "") -> str:
        """The current session's importUrl; ``refused``: the URL Graph just refused, replaced
        once however many uploads saw it refused at the same time."""
        with self._session_lock:
            return self._import_session(refused)

    def _import_session(self, refused) -> str:
        stale = self._session is None or self._session[1] < datetime.now(UTC)
        if stale or (refused and refused == self._session[0]):
            # https://learn.microsoft.com/graph/api/mailbox-createimportsession
            body = self._call(
                "POST",
                f"{self._mbx}/createImportSession",
                "start an import session",
                "MailboxItem.ImportExport.All",
            )
            expires = _parse_time(body.get("expirationDateTime")) or datetime.now(UTC)
            self._session = (body["importUrl"], expires - timedelta(minutes=5))
        return self._session[0]

    def _import_fts(self, folder, items) -> dict[str, StoreResult]:
        def upload(item):
            body = {
                "FolderId": folder.native_id,
                "Mode": "create",
                "Data": base64.b64encode(item.data).decode(),
            }
            # https://learn.microsoft.com/graph/api/resources/mailboxitemimportsession
            url, size = self._import_url(), len(item.data)
            response = self._send("POST", url, auth=False, json=body, size=size)
            if response.status_code == 401:  # the session's embedded token expired
                url = self._import_url(refused=url)
                response = self._send("POST", url, auth=False, json=body, size=size)
            if response.status_code >= 500:
                raise self._error(response.status_code, _json(response), "import an item", "")
            if response.status_code >= 400:
                code, message = _graph_error(response.status_code, _json(response))
                return StoreResult(item.source_id, error=message, error_code=code)
            return StoreResult(item.source_id, target_id=_json(response)["itemId"])

        # Nothing follows the import: the copy keeps its source's PR_SEARCH_KEY, which finds
        # it for recovery and verification (``recovery_keys``).
        return {r.source_id: r for r in self._pool.map(upload, items)}

    def _import_mime(self, folder, items) -> dict[str, StoreResult]:
        user = _segment(self.mailbox)
        imports = [
            # https://learn.microsoft.com/graph/api/mailfolder-importmime?view=graph-rest-beta
            {
                "method": "POST",
                "url": f"/users/{user}/mailFolders/{_segment(folder.native_id)}/importMime",
                "headers": {"Content-Type": "text/plain"},
                # importMime's raw body is base64 MIME; JSON batching carries a non-JSON body
                # base64-URL-encoded in turn ("Might be a JSON object or a base64 URL-encoded
                # value"), so Graph unwraps one layer and importMime the other.
                "body": base64.urlsafe_b64encode(base64.b64encode(item.data)).decode(),
            }
            for item in items
        ]
        stored = []
        answers = self._batch(
            imports,
            "import MIME messages",
            "Mail-Advanced.ReadWrite.All",
            sizes=[len(item.data) for item in items],
        )
        for item, (status, body) in zip(items, answers, strict=True):
            if status >= 400:
                code, message = _graph_error(status, body)
                if status == 403:
                    message += " (the app needs Mail-Advanced.ReadWrite.All)"
                stored.append(StoreResult(item.source_id, error=message, error_code=code))
            else:
                stored.append(StoreResult(item.source_id, target_id=body["id"]))
        # importMime takes only the MIME bytes: read state, flag and received date follow
        # (https://learn.microsoft.com/graph/api/message-update).
        patches = [
            {
                "method": "PATCH",
                "url": f"/users/{user}/messages/{_segment(result.target_id)}",
                "headers": {"Content-Type": "application/json"},
                "body": _message_patch(item),
            }
            for item, result in zip(items, stored, strict=True)
            if result.target_id
        ]
        self._apply_stamps(patches, [r for r in stored if r.target_id], "Mail.ReadWrite")
        return {r.source_id: r for r in stored}

    def _apply_stamps(self, requests_, results, permission) -> None:
        """PATCH after import; a failure keeps the item but says what is missing on it."""
        if not requests_:
            return
        answers = self._batch(requests_, "update imported items", permission)
        for result, (status, body) in zip(results, answers, strict=True):
            if status >= 400:
                code, message = _graph_error(status, body)
                result.error = f"Imported, but its properties were not set: {message}"
                result.error_code = code or "partial"

    def fingerprints(self, folder) -> dict[str, list[str]]:
        """Fingerprint stamped on each MIME import (SHA-256 of the source bytes) -> target
        item ids. Exchange re-encodes what it imports, so hashing the target's own export would
        never match; items we did not import carry no stamp, and neither do imports of exported
        items, found by the PR_SEARCH_KEY they kept (``recovery_keys``)."""
        found: dict[str, list[str]] = {}
        for item_id, value in self._property(folder, FINGERPRINT).items():
            found.setdefault(value, []).append(item_id)
        return found

    def recovery_keys(self, folder) -> dict[str, str]:
        """Item id -> PR_SEARCH_KEY, which an import keeps from its source item: read on both
        sides of a copy from Exchange (Online, or a server through EWS), it pairs each copy with
        its source item (recovery after a worker died before recording it, and deep
        verification), tasks and notes included."""
        return self._property(folder, SEARCH_KEY)

    def _property(self, folder, property_id: str) -> dict[str, str]:
        """Item id -> value of one extended property, for the folder's items that have it."""
        # https://learn.microsoft.com/graph/api/mailboxfolder-list-items with an extended property
        # (https://learn.microsoft.com/graph/api/singlevaluelegacyextendedproperty-get)
        url = (
            f"{self._mbx}/folders/{_segment(folder.native_id)}/items?$select=id"
            f"&$expand=singleValueExtendedProperties($filter=id eq '{property_id}')"
        )
        values: dict[str, str] = {}
        for page in self._pages(url, "list items", "MailboxItem.Read.All"):
            for resource in page.get("value", []):
                for prop in resource.get("singleValueExtendedProperties") or []:
                    # Graph may spell a tag's id in another case than it was asked for.
                    if prop.get("id", "").lower() == property_id.lower():
                        values[resource["id"]] = prop["value"]
        return values

    # -- discovery (before copying) --------------------------------------------------------

    def limits(self) -> TargetLimits:
        """Exchange Online takes messages up to 150 MB ("Exchange Online limits", message
        limits: maximum message size, learn.microsoft.com); a tenant that set a lower limit
        says so in the ``max_item_size`` option. Graph documents no mailbox quota call."""
        configured = super().limits()
        if configured.max_item_size:
            return configured
        return TargetLimits(EXCHANGE_ONLINE_MAX_ITEM, "Exchange Online's 150 MB limit")


class _DeltaExpired(Exception):
    pass


def _fingerprint_property(item: Item) -> dict:
    return {"id": FINGERPRINT, "value": item.fingerprint}


def _message_patch(item: Item) -> dict:
    properties = [_fingerprint_property(item)]
    if item.received is not None:
        # Via the timestamp: datetime subclasses (exchangelib's EWSDateTime) refuse astimezone(UTC).
        received = datetime.fromtimestamp(item.received.timestamp(), UTC)
        received = received.strftime("%Y-%m-%dT%H:%M:%SZ")
        properties.append({"id": DELIVERY_TIME, "value": received})
    patch = {"isRead": "\\Seen" in item.flags, "singleValueExtendedProperties": properties}
    if "\\Flagged" in item.flags:
        patch["flag"] = {"flagStatus": "flagged"}
    return patch
