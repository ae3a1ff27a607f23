"""Exchange Web Services through exchangelib: on-premises Exchange, and Exchange Online while
Microsoft still lets EWS through.

Design decisions (the engine relies on them):

- **Formats.** ``native_format`` is "ews-fts": the ExportItems/UploadItems blob, opaque to us,
  full fidelity for every item kind (read state, categories, attendees, recurrence). It is only
  used EWS to EWS. Otherwise mail travels as RFC 822 (GetItem MimeContent / CreateItem); other
  item kinds cannot, and asking for it raises ConnectorError.
- **Flags on the MIME path.** ``\\Seen`` is IsRead plus MSGFLAG_READ in PR_MESSAGE_FLAGS
  (never MSGFLAG_UNSENT, or Exchange keeps the item as a draft); ``\\Flagged`` is
  PR_FLAG_STATUS 2; the received date is PR_MESSAGE_DELIVERY_TIME (Exchange takes the sent
  date, PR_CLIENT_SUBMIT_TIME, from the MIME Date header itself). Other IMAP flags and
  keywords are not carried.
- **Fingerprints.** For RFC 822 items, sha256 of the bytes (as every connector computes it).
  For ews-fts items (``ExportedItem``), sha256 of the *source item id*: an FTS stream carries
  change numbers and times, so two exports of one item need not be byte-identical, while the
  id is stable as long as the item stays in its folder. ``store`` writes the fingerprint into
  a named extended property on the target item (``SourceFingerprint``); ``fingerprints()``
  reads it back with one FindItem per page and never refetches content. Items the target held
  before the migration have no such property and are not reported. An exported item also
  carries its PR_SEARCH_KEY into its copy (``recovery_keys``): Exchange Online needs no stamp
  to find it.
- **Throttling.** exchangelib's FaultTolerance waits in-process for short ErrorServerBusy
  back-offs (up to ``options["max_wait"]``, default 30 s); a longer hint becomes
  ``TransientError(retry_after=...)`` so the Celery task retries later instead of holding a
  worker. A 401 is never retried (``_Patience``).
- **Pre-stage.** ``changes(before=...)`` walks the sync state but keeps the old watermark, so the
  next delta pass lists everything after it again; the engine skips what it already copied by
  source id.
- **Documented calls only.** Each method names the EWS operation exchangelib sends for it, with
  its page under https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/
  (the README lists them). The EWS test server refuses what Exchange refuses (schema, rights).
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

import requests
from exchangelib import (
    DELEGATE,
    IMPERSONATION,
    Account,
    Configuration,
    Credentials,
    EWSDateTime,
    ExtendedProperty,
    Identity,
    OAuth2Credentials,
)
from exchangelib import errors as ews_errors
from exchangelib.autodiscover import Autodiscovery
from exchangelib.folders import Folder as EwsFolder
from exchangelib.items import CalendarItem, Contact, Message, Task
from exchangelib.protocol import FaultTolerance, NoVerifyHTTPAdapter, Protocol
from exchangelib.services import CreateItem, ExportItems, UploadItems
from exchangelib.transport import BASIC, NTLM, OAUTH2

from . import roles
from .base import (
    CALENDAR,
    CONTACTS,
    MAIL,
    NOTES,
    RFC822,
    TASKS,
    AuthError,
    Changes,
    Connector,
    ConnectorError,
    Endpoint,
    Folder,
    Item,
    ItemRef,
    Reach,
    StoreResult,
    TransientError,
    fingerprint,
)
from .reach import addresses, url_place
from .reach_http import ReachAdapter, adapter_class

log = logging.getLogger(__name__)

EWS_FTS = "ews-fts"
AUTH_TYPES = {"basic": BASIC, "ntlm": NTLM, "oauth2": OAUTH2}
READ_CHUNK = 64 * 1024
MAX_ITEMS_PER_REQUEST = 50
# UploadItems accepts at most 25 MB of base64 per request (MS docs, uploaditems-operation);
# keep well below it, and use the same budget for exports so huge items travel in small batches.
MAX_BYTES_PER_REQUEST = 12 * 1024 * 1024
SYNC_PAGE = 512  # the largest MaxChangesReturned EWS accepts
MSGFLAG_READ = 0x1
FOLLOWUP_FLAGGED = 2
TRANSIENT_ERRORS = (
    ews_errors.ErrorTimeoutExpired,
    ews_errors.ErrorInternalServerTransientError,
    requests.ConnectionError,
)
GRAPH_HINT = (
    "Exchange Online refused EWS (HTTP 403). Microsoft is retiring EWS in Exchange Online "
    "(message center MC1227454): blocking began on 1 October 2026 and EWS is removed on "
    "1 April 2027; until then only tenants with EWSEnabled=True (organisation and mailbox) that "
    "allow-list this application (EWSAllowedAppIDs) keep it. Use the Graph connector instead "
    "(tenant kind exchange_online)."
)


class MessageFlags(ExtendedProperty):
    """PR_MESSAGE_FLAGS: without it Exchange stores a MIME import as an unsent draft."""

    property_tag = 0x0E07
    property_type = "Integer"


class DeliveryTime(ExtendedProperty):
    """PR_MESSAGE_DELIVERY_TIME: the received date Outlook shows and sorts by."""

    property_tag = 0x0E06
    property_type = "SystemTime"


class FlagStatus(ExtendedProperty):
    """PR_FLAG_STATUS: 2 is "flagged for follow-up", what IMAP calls \\Flagged."""

    property_tag = 0x1090
    property_type = "Integer"


class SearchKey(ExtendedProperty):
    """PR_SEARCH_KEY (PidTagSearchKey): "Whenever a copy of an object is created, the key is
    also copied from the original object" ([MS-OXCPRPT] 2.2.1.9, learn.microsoft.com/openspecs/
    exchange_server_protocols/ms-oxcprpt/1a4c4540-3f0d-480f-ab1e-8613f9314824), so an item
    imported from an export carries its source's."""

    property_tag = 0x300B
    property_type = "Binary"


class SourceFingerprint(ExtendedProperty):
    """The stored item's fingerprint: recovers a lost CopiedItem record without refetching."""

    property_set_id = "5d1c1d0e-6f7c-4b7e-9a43-6d61696c6672"
    property_name = "MailferrySourceFingerprint"
    property_type = "String"


ITEM_MODELS = {
    MAIL: Message,
    CALENDAR: CalendarItem,
    CONTACTS: Contact,
    TASKS: Task,
    NOTES: Message,
}
for _model in {Message, CalendarItem, Contact, Task}:
    _model.register("mailferry_fingerprint", SourceFingerprint)
    _model.register("search_key", SearchKey)
Message.register("message_flags", MessageFlags)
Message.register("delivery_time", DeliveryTime)
Message.register("flag_status", FlagStatus)


def _read_in_chunks(response: requests.Response) -> requests.Response:
    # exchangelib parses responses from iter_content() with requests' default chunk_size=1: one
    # Python call per byte (ExportItems of 40 MB took 13 s instead of 1 s).
    original = response.iter_content

    def iter_content(chunk_size=READ_CHUNK, decode_unicode=False):
        return original(chunk_size, decode_unicode)

    response.iter_content = iter_content
    return response


class _ChunkedReads(ReachAdapter):
    def build_response(self, req, resp):
        return _read_in_chunks(super().build_response(req, resp))


class _InsecureChunkedReads(ReachAdapter, NoVerifyHTTPAdapter):
    def build_response(self, req, resp):
        return _read_in_chunks(super().build_response(req, resp))


class EwsProtocol(Protocol):
    HTTP_ADAPTER_CLS = _ChunkedReads


class InsecureEwsProtocol(Protocol):
    HTTP_ADAPTER_CLS = _InsecureChunkedReads


@cache
def _reaching_protocol(verify_tls: bool, reach: Reach) -> type[Protocol]:
    """A protocol whose connections go only where ``reach`` allows: exchangelib makes its HTTP
    adapters from the protocol class, so the Reach travels on a class (one per Reach)."""
    base = EwsProtocol if verify_tls else InsecureEwsProtocol
    adapter = adapter_class(base.HTTP_ADAPTER_CLS, reach)
    return type(base.__name__, (base,), {"HTTP_ADAPTER_CLS": adapter})


class _ReachingAutodiscovery(Autodiscovery):
    """Autodiscovery that probes only hosts the tenant's Reach allows. exchangelib builds its
    own protocol for each probe, so the check is made here, just before each connection, on
    what the name resolves to then (the service URL found is used through the pinned adapter
    above)."""

    reach = Reach()

    def _ensure_valid_hostname(self, url):
        addresses(self.reach, *url_place(url))
        super()._ensure_valid_hostname(url)


class EwsForbidden(ews_errors.TransportError):
    """HTTP 403 before any SOAP: EWS is turned off for the mailbox or the application."""


class _Patience(FaultTolerance):
    """FaultTolerance, except that a refused login is final instead of read as throttling, and a
    403 is named (exchangelib reports it as an unknown failure); each back-off it waits out
    in-process (ErrorServerBusy's BackOffMilliseconds) is told to ``waited``."""

    def __init__(self, max_wait: float, waited=None):
        super().__init__(max_wait=max_wait)
        self._waited = waited

    def back_off(self, seconds):
        super().back_off(seconds)  # beyond max_wait it raises: the engine notes that one
        if self._waited is not None:
            self._waited(self.DEFAULT_BACKOFF if seconds is None else seconds)

    def raise_response_errors(self, response):
        if response.status_code == 401:
            raise ews_errors.UnauthorizedError(f"Invalid credentials for {response.url}")
        if response.status_code == 403:
            raise EwsForbidden(f"HTTP 403 from {response.url}")
        return super().raise_response_errors(response)


class _OAuth2Credentials(OAuth2Credentials):
    """Client credentials against ``authority`` (sovereign clouds, tests), not the global one."""

    def __init__(self, authority: str = "", **kwargs):
        super().__init__(**kwargs)
        self.authority = (authority or "https://login.microsoftonline.com").rstrip("/")

    @property
    def token_url(self):
        return f"{self.authority}/{self.tenant_id}/oauth2/v2.0/token"


class _ExportItems(ExportItems):
    CHUNK_SIZE = MAX_ITEMS_PER_REQUEST


class _UploadItems(UploadItems):
    CHUNK_SIZE = MAX_ITEMS_PER_REQUEST
    ERRORS_TO_CATCH_IN_RESPONSE = ews_errors.ResponseMessageError


class _CreateItem(CreateItem):
    CHUNK_SIZE = MAX_ITEMS_PER_REQUEST
    ERRORS_TO_CATCH_IN_RESPONSE = ews_errors.ResponseMessageError


@dataclass
class ExportedItem(Item):
    """An ExportItems blob; its identity is the source item, not its bytes (see above)."""

    @property
    def fingerprint(self) -> str:
        return fingerprint(f"ews-item:{self.source_id}".encode())


def _ews_time(moment: datetime | None) -> EWSDateTime | None:
    """exchangelib only takes its own datetime type (naive times are taken as UTC)."""
    if moment is None or isinstance(moment, EWSDateTime):
        return moment
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return EWSDateTime.from_datetime(moment.astimezone(UTC))


def _batches(things, size_of):
    """Groups of at most MAX_ITEMS_PER_REQUEST things and MAX_BYTES_PER_REQUEST of base64."""
    batch, size = [], 0
    for thing in things:
        thing_size = size_of(thing) * 4 // 3
        if batch and (
            len(batch) >= MAX_ITEMS_PER_REQUEST or size + thing_size > MAX_BYTES_PER_REQUEST
        ):
            yield batch
            batch, size = [], 0
        batch.append(thing)
        size += thing_size
    if batch:
        yield batch


def _unreadable(item_id: str, exc: Exception) -> list[Item]:
    """An item the server would not hand over, as an error item; none if it was deleted since
    it was listed (the engine counts it as gone)."""
    if isinstance(exc, ews_errors.ErrorItemNotFound):
        return []
    log.warning("EWS could not read %s: %s", item_id, type(exc).__name__)
    return [Item(item_id, b"", error=str(exc), error_code=type(exc).__name__)]


class EwsConnector(Connector):
    kind = "ews"
    native_format = EWS_FTS

    def __init__(self, endpoint: Endpoint, mailbox: str):
        super().__init__(endpoint, mailbox)
        self._account: Account | None = None
        self._folders: dict[str, EwsFolder] = {}
        self._budget = None
        self._turns = threading.local()  # whether this thread already holds a budget slot

    # --- connection -------------------------------------------------------------------------

    @property
    def account(self) -> Account:
        if self._account is None:
            self._account = self._guarded(self._connect)
        return self._account

    def _connect(self) -> Account:
        endpoint = self.endpoint
        credentials = self._credentials()
        url = endpoint.host or self._autodiscover(credentials)
        # exchangelib first asks the server's version with a dummy ConvertId:
        # https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/convertid-operation
        config = Configuration(
            service_endpoint=url,
            credentials=credentials,
            auth_type=AUTH_TYPES.get(endpoint.auth_method, BASIC),
            retry_policy=_Patience(self.options["max_wait"], waited=self._backed_off),
        )
        # exchangelib caches one Protocol per (endpoint, credentials) and ignores the retry policy
        # of later Configurations: drop the cached one and register ours (with chunked reads).
        with suppress(KeyError):
            del Protocol[config]
        self._protocol_class()(config=config)
        # Impersonation sends the ExchangeImpersonation header on every request:
        # https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/exchangeimpersonation
        impersonating = bool(endpoint.impersonation) or endpoint.auth_method == "oauth2"
        return Account(
            self.mailbox,
            config=config,
            autodiscover=False,
            access_type=IMPERSONATION if impersonating else DELEGATE,
        )

    def _backed_off(self, seconds: float) -> None:
        # https://learn.microsoft.com/en-us/exchange/client-developer/exchange-web-services/ews-throttling-in-exchange
        # ErrorServerBusy carries BackOffMilliseconds, the time to wait before the next request.
        self.throttled(f"the server is busy (ErrorServerBusy), back off {seconds:g} s", seconds)

    def _protocol_class(self) -> type[Protocol]:
        return _reaching_protocol(self.endpoint.verify_tls, self.endpoint.reach)

    def _credentials(self):
        endpoint = self.endpoint
        if endpoint.auth_method == "oauth2":
            return _OAuth2Credentials(
                client_id=endpoint.oauth_client_id,
                client_secret=endpoint.secret,
                tenant_id=endpoint.oauth_tenant_id,
                identity=Identity(primary_smtp_address=self.mailbox),
                authority=endpoint.oauth_authority,
            )
        # Impersonation logs in as the admin account that acts for the mailbox.
        return Credentials(endpoint.impersonation or endpoint.username, endpoint.secret)

    def _autodiscover(self, credentials) -> str:
        # SOAP Autodiscover GetUserSettings:
        # https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/getusersettings-operation-soap
        discovery = _ReachingAutodiscovery(email=self.mailbox, credentials=credentials)
        discovery.reach = self.endpoint.reach
        _, protocol = discovery.discover()
        return protocol.service_endpoint

    def close(self) -> None:
        if self._account is not None:
            protocol = self._account.protocol
            with suppress(KeyError):
                if Protocol[protocol.config][0] is protocol:
                    del Protocol[protocol.config]
            protocol.close()  # the pooled HTTP connections, which would otherwise wait for GC
        self._account = None
        self._folders.clear()

    def check(self) -> str:
        folders = self.folders()
        mode = "impersonating" if self.account.access_type == IMPERSONATION else "as"
        url = self.account.protocol.service_endpoint
        return f"Connected to {url} {mode} {self.mailbox}: {len(folders)} folders."

    # --- folders ----------------------------------------------------------------------------

    def folders(self) -> list[Folder]:
        return self._guarded(self._walk)

    def _walk(self) -> list[Folder]:
        # GetFolder for the root and the well-known folders, then one FindFolder (Deep):
        # https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/getfolder-operation
        # https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/findfolder-operation
        top = self.account.msg_folder_root
        result = []
        for ews_folder in top.walk():
            kind = roles.kind_for_folder_class(ews_folder.folder_class)
            if kind is None:
                continue
            self._folders[ews_folder.id] = ews_folder
            result.append(self._folder(ews_folder, kind, self._role(ews_folder)))
        return result

    @staticmethod
    def _role(ews_folder: EwsFolder) -> str | None:
        # A user folder called "Inbox" deeper down gets exchangelib's Inbox class too, but only
        # the real one is distinguished.
        if not ews_folder.is_distinguished:
            return None
        return roles.EWS_DISTINGUISHED.get(type(ews_folder).DISTINGUISHED_FOLDER_ID)

    def _folder(self, ews_folder: EwsFolder, kind: str, role: str | None) -> Folder:
        return Folder(
            path=self._path(ews_folder, self.account.msg_folder_root),
            kind=kind,
            role=role,
            count=ews_folder.total_count or 0,
            native_id=ews_folder.id,
        )

    def _distinguished(self, name: str) -> EwsFolder | None:
        root = self.account.root
        for folder_class in root.WELLKNOWN_FOLDERS:
            if name == folder_class.DISTINGUISHED_FOLDER_ID:
                with suppress(ews_errors.ErrorFolderNotFound):
                    return root.get_default_folder(folder_class)
        return None

    @staticmethod
    def _path(ews_folder: EwsFolder, top: EwsFolder) -> tuple[str, ...]:
        names = []
        node = ews_folder
        while node is not None and node.id != top.id:
            names.append(node.name)
            node = node.parent
        return tuple(reversed(names))

    def ensure_folder(self, path: tuple[str, ...], kind: str, role: str | None) -> Folder:
        return self._guarded(self._ensure_folder, path, kind, role)

    def _ensure_folder(self, path, kind, role) -> Folder:
        distinguished = roles.ROLE_TO_EWS_DISTINGUISHED.get(role or "")
        ews_folder = self._distinguished(distinguished) if distinguished else None
        if ews_folder is None:
            ews_folder = self._make_path(path, kind)
        self._folders[ews_folder.id] = ews_folder
        return self._folder(ews_folder, kind, role)

    def _make_path(self, path, kind) -> EwsFolder:
        folder_class = roles.KIND_FOLDER_CLASSES[kind]
        node = self.account.msg_folder_root
        for depth, name in enumerate(path):
            child = next((c for c in node.children if c.name.lower() == name.lower()), None)
            if child is None and depth == 0 and len(path) > 1:
                # "Inbox/Projects" belongs under the target's inbox, whatever it is called there.
                well_known = roles.ROLE_TO_EWS_DISTINGUISHED.get(
                    roles.COMMON_FOLDER_NAMES.get(name.lower(), "")
                )
                child = self._distinguished(well_known) if well_known else None
            if child is None:
                # CreateFolder: https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/createfolder-operation
                child = EwsFolder(parent=node, name=name, folder_class=folder_class)
                child.save()
            node = child
        return node

    def _ews_folder(self, folder: Folder) -> EwsFolder:
        ews_folder = self._folders.get(folder.native_id)
        if ews_folder is None:
            ews_folder = EwsFolder(
                root=self.account.root,
                id=folder.native_id,
                folder_class=roles.KIND_FOLDER_CLASSES[folder.kind],
            )
            self._folders[folder.native_id] = ews_folder
        return ews_folder

    # --- listing ----------------------------------------------------------------------------

    def changes(self, folder: Folder, state: dict, before: datetime | None = None) -> Changes:
        return self._guarded(self._changes, folder, state, before)

    def _changes(self, folder, state, before) -> Changes:
        ews_folder = self._ews_folder(folder)
        old_state = state.get("sync_state")
        reset = False
        try:
            refs, new_state = self._sync(ews_folder, old_state)
        except ews_errors.ErrorInvalidSyncStateData:
            if not old_state:
                raise
            log.warning("EWS sync state of %s lost; listing the whole folder", folder.display)
            refs, new_state = self._sync(ews_folder, None)
            old_state, reset = None, True
        if before is not None:
            refs = [r for r in refs if r.received is None or r.received < before]
            new_state = old_state
        return Changes(
            items=refs, state={"sync_state": new_state} if new_state else {}, reset=reset
        )

    def _sync(self, ews_folder: EwsFolder, sync_state: str | None):
        # sync_items() falls back to the folder's last state when given None: a full listing
        # must clear it first.
        ews_folder.item_sync_state = sync_state
        # SyncFolderItems, at most 512 changes a call:
        # https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/syncfolderitems-operation
        refs = []
        for change, item in ews_folder.sync_items(
            sync_state=sync_state,
            only_fields=["size", "datetime_received"],
            max_changes_returned=SYNC_PAGE,
        ):
            if change == "create":
                refs.append(
                    ItemRef(source_id=item.id, size=item.size or 0, received=item.datetime_received)
                )
        return refs, ews_folder.item_sync_state

    def fingerprints(self, folder: Folder) -> dict[str, list[str]]:
        return self._guarded(self._fingerprints, folder)

    def _fingerprints(self, folder) -> dict[str, list[str]]:
        # FindItem (IdOnly plus the extended property): https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/finditem-operation
        query = self._ews_folder(folder).all().only("mailferry_fingerprint")
        query.page_size = 1000
        found: dict[str, list[str]] = {}
        for item in query:
            if item.mailferry_fingerprint:
                found.setdefault(item.mailferry_fingerprint, []).append(item.id)
        return found

    def recovery_keys(self, folder: Folder) -> dict[str, str]:
        return self._guarded(self._recovery_keys, folder)

    def _recovery_keys(self, folder) -> dict[str, str]:
        """Item id -> PR_SEARCH_KEY, base64 as Graph spells a binary property, so a key read
        here matches the one Exchange Online kept on the copy."""
        # FindItem (IdOnly plus the property): https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/finditem-operation
        query = self._ews_folder(folder).all().only("search_key")
        query.page_size = 1000
        return {
            item.id: base64.b64encode(item.search_key).decode() for item in query if item.search_key
        }

    # --- fetch ------------------------------------------------------------------------------

    def fetch(self, folder: Folder, ids: list[str], format: str = RFC822) -> list[Item]:
        if format == RFC822 and folder.kind != MAIL:
            raise ConnectorError(
                f"{folder.kind} items cannot travel as RFC 822; they can only be copied between "
                f"EWS tenants ({EWS_FTS}), and {folder.display} is {folder.kind}."
            )
        if format not in (RFC822, EWS_FTS):
            raise ConnectorError(f"The EWS connector cannot produce {format!r} items.")
        return self._guarded(self._fetch, folder, ids, format)

    def _fetch(self, folder, ids, format) -> list[Item]:
        fields = ["size", "datetime_received"]
        if folder.kind == MAIL:
            fields += ["is_read", "flag_status"]
        read = self._export if format == EWS_FTS else self._mime
        refs, items = self._fetch_fields(ids, fields)
        # Sizes first, so that tens-of-MB items travel a few per request.
        for batch in _batches(refs, lambda ref: ref.size or 0):
            for ref, data in zip(batch, read(batch), strict=True):
                if isinstance(data, Exception):
                    items.extend(_unreadable(ref.id, data))
                else:
                    items.append(self._item(ref, data, format, folder))
        return items

    def _export(self, batch) -> list:
        # ExportItems: https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/exportitems-operation
        blobs = _ExportItems(account=self.account).call(items=batch)
        return [b if isinstance(b, Exception) else base64.b64decode(b) for b in blobs]

    def _mime(self, batch) -> list:
        # GetItem with item:MimeContent: https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/getitem-operation
        found = self.account.fetch(ids=batch, only_fields=["mime_content"])
        return [m if isinstance(m, Exception) else m.mime_content for m in found]

    def _fetch_fields(self, ids, fields):
        """Item properties, one GetItem per 100 ids, and error items for those refused."""
        refs, unreadable = [], []
        # GetItem: https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/getitem-operation
        found = self.account.fetch(ids=[(i, None) for i in ids], only_fields=fields)
        # exchangelib answers in the order asked, an exception in place of a refused item.
        for item_id, item in zip(ids, found, strict=True):
            if isinstance(item, Exception):
                unreadable.extend(_unreadable(item_id, item))
            else:
                refs.append(item)
        return refs, unreadable

    @staticmethod
    def _item(ref, data: bytes, format: str, folder: Folder) -> Item:
        flags = set()
        if getattr(ref, "is_read", False):
            flags.add("\\Seen")
        if getattr(ref, "flag_status", None) == FOLLOWUP_FLAGGED:
            flags.add("\\Flagged")
        item_class = ExportedItem if format == EWS_FTS else Item
        return item_class(
            source_id=ref.id,
            data=data,
            format=format,
            flags=frozenset(flags),
            received=ref.datetime_received,
            kind=folder.kind,
        )

    # --- store ------------------------------------------------------------------------------

    def store(self, folder: Folder, items: list[Item]) -> list[StoreResult]:
        return self._guarded(self._store, folder, items)

    def _store(self, folder, items) -> list[StoreResult]:
        ews_folder = self._ews_folder(folder)
        results: list[StoreResult | None] = [None] * len(items)
        for format, write in ((EWS_FTS, self._upload), (RFC822, self._create)):
            numbered = [(n, item) for n, item in enumerate(items) if item.format == format]
            for batch in _batches(numbered, lambda pair: len(pair[1].data)):
                written = write(ews_folder, [item for _, item in batch])
                for (n, _), result in zip(batch, written, strict=True):
                    results[n] = result
        return [
            result
            or StoreResult(
                item.source_id,
                error=f"The EWS connector cannot store {item.format!r} items.",
                error_code="unsupported_format",
            )
            for item, result in zip(items, results, strict=True)
        ]

    def _upload(self, ews_folder, batch: list[Item]) -> list[StoreResult]:
        payload = [(ews_folder, (None, False, base64.b64encode(i.data).decode())) for i in batch]
        # UploadItems, CreateAction="CreateNew": https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/uploaditems-operation
        answers = list(_UploadItems(account=self.account).call(items=payload))
        results = [self._result(item, answer) for item, answer in zip(batch, answers, strict=True)]
        # UploadItems cannot carry extra properties: tag the new items in one UpdateItem round trip
        # (MessageDisposition="SaveOnly"): https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/updateitem-operation
        stored = [
            (
                ITEM_MODELS[item.kind](
                    account=self.account, id=r.target_id, mailferry_fingerprint=item.fingerprint
                ),
                ["mailferry_fingerprint"],
            )
            for item, r in zip(batch, results, strict=True)
            if r.target_id
        ]
        if stored:
            self.account.bulk_update(stored, chunk_size=MAX_ITEMS_PER_REQUEST)
        return results

    def _create(self, ews_folder, batch: list[Item]) -> list[StoreResult]:
        messages = [self._message(item) for item in batch]
        # CreateItem, MessageDisposition="SaveOnly" (required for messages):
        # https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/createitem-operation
        answers = list(
            _CreateItem(account=self.account).call(
                items=messages,
                folder=ews_folder,
                message_disposition="SaveOnly",
                send_meeting_invitations="SendToNone",
            )
        )
        return [self._result(item, answer) for item, answer in zip(batch, answers, strict=True)]

    def _message(self, item: Item) -> Message:
        seen = "\\Seen" in item.flags
        return Message(
            account=self.account,
            mime_content=item.data,
            is_read=seen,
            # Never MSGFLAG_UNSENT: the item must not land as a draft.
            message_flags=MSGFLAG_READ if seen else 0,
            delivery_time=_ews_time(item.received),
            flag_status=FOLLOWUP_FLAGGED if "\\Flagged" in item.flags else None,
            mailferry_fingerprint=item.fingerprint,
        )

    @staticmethod
    def _result(item: Item, answer) -> StoreResult:
        if isinstance(answer, Exception):
            return StoreResult(item.source_id, error=str(answer), error_code=type(answer).__name__)
        target_id = answer[0] if isinstance(answer, tuple) else answer.id
        return StoreResult(item.source_id, target_id=target_id)

    # --- errors -----------------------------------------------------------------------------

    @contextmanager
    def _turn(self):
        """Hold one of the mailbox's EWSMaxConcurrency slots, shared by every worker, while an
        exchangelib call runs (it sends its requests one after another); a wait longer than
        ``max_wait`` goes back to the engine as throttling. A call made inside another (the
        account's first login) runs in the slot already held."""
        if self.budget_store is None or getattr(self._turns, "held", False):
            yield
            return
        from mailboxes.budget import Budget, BudgetExhausted, Limits

        if self._budget is None:
            key = f"ews:{self.endpoint.host}:{self.mailbox.lower()}"
            limits = Limits(concurrency=self.options["max_concurrency"])
            self._budget = Budget(key, limits, self.budget_store)
        started = time.monotonic()
        try:
            with self._budget.request(patience=self.options["max_wait"]):
                self.budget_waited(
                    "the mailbox's EWSMaxConcurrency slots were in use", time.monotonic() - started
                )
                self._turns.held = True
                try:
                    yield
                finally:
                    self._turns.held = False
        except BudgetExhausted as exc:
            raise TransientError(
                f"The EWS budget of {self.mailbox} is in use; retry in {exc.wait:.0f} s.",
                retry_after=exc.wait,
            ) from exc

    def _guarded(self, call, *args):
        """Run an exchangelib call in the mailbox's budget, translating its failures into the
        connector exceptions."""
        try:
            with self._turn():
                return call(*args)
        except ConnectorError:
            raise
        except Exception as error:  # noqa: BLE001 - every failure becomes a message for people
            raise self._translate(error) from error

    def _translate(self, error: Exception) -> ConnectorError:
        if isinstance(error, ews_errors.TransportError) and isinstance(
            error.__context__, ews_errors.ResponseMessageError
        ):
            # exchangelib's version probe (ConvertId) wraps the server's refusal in a
            # TransportError "No valid version headers", which would read as a network fault.
            error = error.__context__
        text = str(error)
        if isinstance(error, ews_errors.ErrorImpersonateUserDenied):
            return AuthError(
                f"{self.endpoint.username or self.endpoint.oauth_client_id} may not impersonate "
                f"{self.mailbox}: grant the ApplicationImpersonation role (on-premises) or the "
                f"full_access_as_app permission (Exchange Online)."
            )
        if isinstance(error, ews_errors.UnauthorizedError) or "invalid_client" in text:
            if self._is_exchange_online() and self.endpoint.auth_method != "oauth2":
                return AuthError(
                    "Exchange Online refused the login: it accepts only OAuth2 (client "
                    "credentials with impersonation), not Basic or NTLM."
                )
            return AuthError(
                f"EWS login refused for {self.endpoint.username or self.mailbox}: "
                f"wrong user name, password or client secret."
            )
        if isinstance(error, ews_errors.ErrorNonExistentMailbox):
            return ConnectorError(f"The server has no mailbox {self.mailbox}.")
        if isinstance(error, ews_errors.ErrorAccessDenied):
            login = self.endpoint.impersonation or self.endpoint.username
            return AuthError(
                f"{login} may not open {self.mailbox} (ErrorAccessDenied): log in as the "
                f"mailbox, grant {login} full access to it, or use an impersonation account."
            )
        if isinstance(error, EwsForbidden):
            if self._is_exchange_online():
                return AuthError(GRAPH_HINT)
            return AuthError(
                f"The server refused EWS for {self.mailbox} (HTTP 403): EWS is probably "
                f"disabled for this mailbox or this application (EWSEnabled, EWS allow/block list)."
            )
        if isinstance(error, ews_errors.RateLimitError):
            return TransientError(
                f"EWS is throttling; retry in {error.wait:.0f} s.", retry_after=error.wait
            )
        if isinstance(error, ews_errors.ErrorServerBusy):
            return TransientError("EWS is busy (ErrorServerBusy).", retry_after=error.back_off)
        if "NameResolution" in text or "Name or service not known" in text or "getaddrinfo" in text:
            return ConnectorError(f"DNS: cannot resolve the EWS host of {self._url_hint()}.")
        if "SSL" in text or "certificate" in text.lower():
            return ConnectorError(
                f"TLS: the certificate of {self._url_hint()} was refused ({text[:200]})."
            )
        if isinstance(error, TRANSIENT_ERRORS):
            return TransientError(f"EWS connection failed: {text[:300]}")
        if isinstance(error, ews_errors.ResponseMessageError):
            return ConnectorError(f"EWS refused the request ({type(error).__name__}): {text[:300]}")
        if isinstance(error, ews_errors.AutoDiscoverFailed):
            return ConnectorError(
                f"Autodiscover found no EWS endpoint for {self.mailbox}: enter the EWS URL "
                f"(https://mail.example.com/EWS/Exchange.asmx) as the tenant's host."
            )
        if isinstance(error, ews_errors.TransportError):
            return TransientError(f"EWS connection failed: {text[:300]}")
        return ConnectorError(f"EWS error: {type(error).__name__}: {text[:300]}")

    def _is_exchange_online(self) -> bool:
        host = self.endpoint.host.lower()
        return self.endpoint.kind == "exchange_online" or any(
            name in host for name in ("office365.com", "outlook.office.com", "office365.us")
        )

    def _url_hint(self) -> str:
        return self.endpoint.host or f"the domain of {self.mailbox} (autodiscover)"
