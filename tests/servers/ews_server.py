"""A protocol-level EWS server for the tests: SOAP over HTTP on 127.0.0.1, mailboxes in memory.

No open-source EWS server can run here (see /work/shared/notes/ews-protocol.md §1), so this one
speaks the subset of EWS that exchangelib sends for a migration, with the shapes Exchange uses
(MS-OXWSCORE, MS-OXWSFOLD, MS-OXWSSYNC, MS-OXWSBTRF). The real exchangelib talks to it.

As strict as Exchange where a client could get away with less: requests are checked against
what messages.xsd/types.xsd require (missing elements and attributes, enumerations, the 1-512
range of MaxChangesReturned, base64 content) and refused with an ErrorSchemaValidation SOAP fault;
CreateItem/UpdateItem of a message without MessageDisposition get ErrorMessageDispositionRequired;
and every account opens only its own mailbox unless it holds ApplicationImpersonation (and sends
ExchangeImpersonation) or was granted full access on the other one (ErrorImpersonateUserDenied,
ErrorAccessDenied).

What it does not pretend: the ExportItems ``Data`` of items it holds is not a FastTransfer stream
(MS-OXCFXICS) but base64(JSON) that only this server reads back (and the Graph test server, for
the PR_SEARCH_KEY an import keeps: ``own_export``). UploadItems takes any other
blob (a real FastTransfer stream) as opaque bytes and exports it again byte for byte; the
connector treats every blob as opaque either way.

Use it from pytest through the ``ews_server`` fixture, or outside pytest with
``start_ews_server()`` (the benchmark does).
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import socket
import ssl
import threading
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
import spnego
import spnego.exceptions
from lxml import etree

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
E = "http://schemas.microsoft.com/exchange/services/2006/errors"
NSMAP = {"s": SOAP, "m": M, "t": T}
EWS_PATH = "/EWS/Exchange.asmx"

# id -> (display name, folder class), as an English Exchange 2016 mailbox has them
DISTINGUISHED = {
    "inbox": ("Inbox", "IPF.Note"),
    "sentitems": ("Sent Items", "IPF.Note"),
    "deleteditems": ("Deleted Items", "IPF.Note"),
    "drafts": ("Drafts", "IPF.Note"),
    "junkemail": ("Junk Email", "IPF.Note"),
    "calendar": ("Calendar", "IPF.Appointment"),
    "contacts": ("Contacts", "IPF.Contact"),
    "tasks": ("Tasks", "IPF.Task"),
    "notes": ("Notes", "IPF.StickyNote"),
}
FOLDER_TAGS = {
    "IPF.Appointment": "CalendarFolder",
    "IPF.Contact": "ContactsFolder",
    "IPF.Task": "TasksFolder",
}
ITEM_TAGS = {"IPM.Appointment": "CalendarItem", "IPM.Contact": "Contact", "IPM.Task": "Task"}
ITEM_CLASS_OF_TAG = {
    "CalendarItem": "IPM.Appointment",
    "Contact": "IPM.Contact",
    "Task": "IPM.Task",
}
MSGFLAG_READ, MSGFLAG_UNSENT = 0x1, 0x8
PR_MESSAGE_FLAGS, PR_MESSAGE_DELIVERY_TIME = "tag:3591", "tag:3590"  # 0x0E07, 0x0E06
# PR_SEARCH_KEY (0x300B): every item has one, base64 as EWS sends a binary value, and a copy
# keeps its original's ([MS-OXCPRPT] 2.2.1.9): an upload of our own export keeps the export's.
PR_SEARCH_KEY = "tag:12299"


class EwsFault(Exception):
    """Answered as a SOAP fault (HTTP 500), the way Exchange reports request-level errors."""

    def __init__(self, code: str, message: str, back_off_ms: int | None = None):
        super().__init__(message)
        self.code, self.message, self.back_off_ms = code, message, back_off_ms


class SchemaViolation(EwsFault):
    """ErrorSchemaValidation: Exchange validates a request against its schema before running any
    of it, and names the first violation in .NET's words."""

    def __init__(self, line: int | None, violation: str):
        super().__init__(
            "ErrorSchemaValidation", f"The request failed schema validation: {violation}"
        )
        self.violation, self.line = violation, line


class ItemError(Exception):
    """Answered as one ResponseClass="Error" message; the other items of the request go on."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class StoredFolder:
    id: str
    mailbox: str
    parent_id: str | None
    name: str
    folder_class: str
    distinguished: str | None = None


@dataclass
class StoredItem:
    id: str
    folder_id: str
    item_class: str
    mime: bytes
    is_read: bool = False
    received: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))
    is_draft: bool = False
    extended: dict[str, str] = field(default_factory=dict)
    seq: int = 0  # position in the mailbox's change log, what sync states point into
    changekey: str = "CK1"
    blob: bytes | None = None  # an uploaded stream this server cannot read, exported as it came

    @property
    def size(self) -> int:
        return len(self.mime if self.blob is None else self.blob)


def _new_id(prefix: str) -> str:
    return base64.b64encode(f"{prefix}:{uuid.uuid4().hex}".encode()).decode()


def _ext_key(uri: etree._Element) -> str:
    """One spelling for an ExtendedFieldURI, whichever way the client addressed the property."""
    if uri.get("PropertyTag"):
        return f"tag:{int(uri.get('PropertyTag'), 0)}"
    propset = uri.get("PropertySetId") or uri.get("DistinguishedPropertySetId")
    return f"name:{propset.lower()}:{uri.get('PropertyName') or uri.get('PropertyId')}"


def _t(parent, tag: str, text=None, **attrs):
    prefix, local = tag.split(":")
    node = etree.SubElement(
        parent, f"{{{NSMAP[prefix]}}}{local}", {k: str(v) for k, v in attrs.items()}
    )
    if text is not None:
        node.text = str(text)
    return node


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EwsState:
    """Everything the server holds: accounts, mailboxes, counters and the faults to inject."""

    def __init__(self):
        self.lock = threading.RLock()
        self.passwords: dict[str, str] = {}
        self.impersonators: set[str] = set()  # accounts holding ApplicationImpersonation
        self.full_access: dict[str, set[str]] = {}  # mailbox -> accounts granted FullAccess
        self.tokens: dict[str, str] = {}  # bearer token -> OAuth client id
        self.clients: dict[str, str] = {}  # OAuth client id -> secret
        self.folders: dict[str, StoredFolder] = {}
        self.items: dict[str, StoredItem] = {}
        self.seq = itertools.count(1)
        self.sync_epoch = 1
        self.requests: Counter[str] = Counter()
        self.faults: list[dict] = []
        self.rejected_markers: dict[bytes, str] = {}
        self.corrupt_ids: set[str] = set()
        self.ews_blocked = False
        # Requests of each mailbox being served now, and the most ever at once (what
        # EWSMaxConcurrency limits); ``hold`` keeps each request in flight that many seconds.
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight: Counter[str] = Counter()
        self.hold = 0.0

    # --- set-up helpers for tests -------------------------------------------------------------

    def add_user(self, address: str, password: str = "secret", impersonation: bool = False):
        with self.lock:
            self.passwords[address] = password
        if impersonation:
            self.grant_impersonation(address)
        self.mailbox_root(address)

    def grant_impersonation(self, account: str):
        """The ApplicationImpersonation role (on premises) or full_access_as_app (an app)."""
        with self.lock:
            self.impersonators.add(account)

    def grant_full_access(self, mailbox: str, account: str):
        """Add-MailboxPermission -AccessRights FullAccess: ``account`` opens ``mailbox``."""
        with self.lock:
            self.full_access.setdefault(mailbox, set()).add(account)

    def may_open(self, account: str, mailbox: str) -> bool:
        return account == mailbox or account in self.full_access.get(mailbox, ())

    def ntlm_user_file(self, directory: Path) -> Path:
        """The accounts as an NTLM_USER_FILE (``:user:password`` lines, user names as UPNs)."""
        path = directory / "ntlm-users"
        path.write_text("".join(f":{user}:{pw}\n" for user, pw in self.passwords.items()))
        return path

    def add_client(self, client_id: str, secret: str, impersonation: bool = False):
        """An OAuth2 application; ``impersonation`` is Exchange Online's full_access_as_app."""
        self.clients[client_id] = secret
        if impersonation:
            self.grant_impersonation(f"app:{client_id}")

    def mailbox_root(self, address: str) -> StoredFolder:
        with self.lock:
            for folder in self.folders.values():
                if folder.mailbox == address and folder.distinguished == "msgfolderroot":
                    return folder
            root = self._folder(address, None, "Top of Information Store", "IPF.Note", "root")
            top = self._folder(
                address, root.id, "Top of Information Store", "IPF.Note", "msgfolderroot"
            )
            for distinguished, (name, folder_class) in DISTINGUISHED.items():
                self._folder(address, top.id, name, folder_class, distinguished)
            return top

    def _folder(self, mailbox, parent_id, name, folder_class, distinguished=None) -> StoredFolder:
        folder = StoredFolder(_new_id("F"), mailbox, parent_id, name, folder_class, distinguished)
        self.folders[folder.id] = folder
        return folder

    def folder(self, address: str, path: str) -> StoredFolder:
        """A folder by display path under msgfolderroot ("Inbox/Projects"), created as mail."""
        with self.lock:
            node = self.mailbox_root(address)
            for name in path.split("/"):
                child = next((f for f in self.children(node.id) if f.name == name), None)
                node = child or self._folder(address, node.id, name, node.folder_class)
            return node

    def add_folder(self, address: str, parent_path: str, name: str, folder_class: str):
        with self.lock:
            parent = (
                self.folder(address, parent_path) if parent_path else self.mailbox_root(address)
            )
            return self._folder(address, parent.id, name, folder_class)

    def add_item(
        self, folder: StoredFolder, mime: bytes, item_class="IPM.Note", **fields
    ) -> StoredItem:
        with self.lock:
            item = StoredItem(
                _new_id("I"), folder.id, item_class, mime, seq=next(self.seq), **fields
            )
            item.extended.setdefault(PR_SEARCH_KEY, base64.b64encode(uuid.uuid4().bytes).decode())
            self.items[item.id] = item
            return item

    def items_in(self, folder: StoredFolder) -> list[StoredItem]:
        with self.lock:
            return sorted(
                (i for i in self.items.values() if i.folder_id == folder.id), key=lambda i: i.seq
            )

    def held(self, address: str) -> dict[str, list[bytes]]:
        """Folder name -> the sorted bytes of the items this server holds for ``address``:
        what a test compares between source and target."""
        with self.lock:
            names = {f.id: f.name for f in self.folders.values() if f.mailbox == address}
            found: dict[str, list[bytes]] = {}
            for item in self.items.values():
                if item.folder_id in names:
                    found.setdefault(names[item.folder_id], []).append(item.mime)
        return {name: sorted(items) for name, items in found.items()}

    def children(self, folder_id: str) -> list[StoredFolder]:
        return [f for f in self.folders.values() if f.parent_id == folder_id]

    def inject(self, operation: str, kind: str, times: int = 1, **options):
        """Fail the next ``times`` calls of ``operation`` ("*" for any): kind "busy"
        (ErrorServerBusy, ``back_off_ms``), "http503" (``retry_after``)."""
        self.faults.append(dict(operation=operation, kind=kind, times=times, **options))

    def reject_items_containing(self, marker: bytes, code: str):
        """CreateItem/UploadItems refuse items whose content contains ``marker`` with ``code``."""
        self.rejected_markers[marker] = code

    def invalidate_sync_states(self):
        """Every sync state handed out so far becomes invalid (ErrorInvalidSyncStateData)."""
        self.sync_epoch += 1

    def take_fault(self, operation: str) -> dict | None:
        with self.lock:
            for fault in self.faults:
                if fault["operation"] in (operation, "*") and fault["times"] > 0:
                    fault["times"] -= 1
                    return fault
        return None


class EwsRequest:
    """One parsed SOAP request: who is calling, for which mailbox, which operation."""

    def __init__(self, state: EwsState, body: bytes, login: str):
        self.state = state
        self.envelope = etree.fromstring(body)
        self.operation_element = self.envelope.find(f"{{{SOAP}}}Body")[0]
        self.operation = etree.QName(self.operation_element).localname
        self.login = login
        header = self.envelope.find(f"{{{SOAP}}}Header")
        sid = header.find(f".//{{{T}}}ConnectingSID") if header is not None else None
        self.impersonated = sid[0].text if sid is not None else None

    @property
    def mailbox(self) -> str:
        """Who acts: the impersonated user, else the account that logged in."""
        return self.impersonated or self.login

    def open(self, mailbox: str):
        """Another mailbox's folders and items need full access on it; impersonation acts as
        the impersonated user, whose own rights then count."""
        if mailbox not in self.state.passwords:
            raise ItemError(
                "ErrorNonExistentMailbox",
                f"The SMTP address has no mailbox associated with it: {mailbox}",
            )
        if not self.state.may_open(self.mailbox, mailbox):
            raise ItemError(
                "ErrorAccessDenied", "Access is denied. Check credentials and try again."
            )

    def resolve_folder(self, node: etree._Element) -> StoredFolder:
        local = etree.QName(node).localname
        if local == "DistinguishedFolderId":
            address = node.findtext(f".//{{{T}}}EmailAddress") or self.mailbox
            self.open(address)
            for folder in self.state.folders.values():
                if folder.mailbox == address and folder.distinguished == node.get("Id"):
                    return folder
            raise ItemError(
                "ErrorFolderNotFound", "The specified folder could not be found in the store."
            )
        folder = self.state.folders.get(node.get("Id"))
        if folder is None:
            raise ItemError(
                "ErrorFolderNotFound", "The specified folder could not be found in the store."
            )
        self.open(folder.mailbox)
        return folder

    def folder_ids(self, container: str) -> list[etree._Element]:
        parent = self.operation_element.find(f"{{{M}}}{container}")
        return list(parent) if parent is not None else []

    def requested_extended(self) -> list[etree._Element]:
        return self.operation_element.findall(
            f".//{{{T}}}AdditionalProperties/{{{T}}}ExtendedFieldURI"
        )

    def wants_mime(self) -> bool:
        shape = self.operation_element.find(f"{{{M}}}ItemShape")
        if shape is None:
            return False
        fields = {f.get("FieldURI") for f in shape.iter(f"{{{T}}}FieldURI")}
        return (
            "item:MimeContent" in fields or shape.findtext(f"{{{T}}}IncludeMimeContent") == "true"
        )


class EwsResponder:
    """Builds response envelopes: one response message per requested object, in order."""

    def __init__(self, request: EwsRequest):
        self.request = request
        self.envelope = etree.Element(f"{{{SOAP}}}Envelope", nsmap=NSMAP)
        header = _t(self.envelope, "s:Header")
        _t(
            header,
            "t:ServerVersionInfo",
            MajorVersion=15,
            MinorVersion=1,
            MajorBuildNumber=2507,
            MinorBuildNumber=6,
            Version="V2017_07_11",
        )
        body = _t(self.envelope, "s:Body")
        response = _t(body, f"m:{request.operation}Response")
        self.messages = _t(response, "m:ResponseMessages")

    def message(self, error: ItemError | None = None) -> etree._Element:
        klass = "Error" if error else "Success"
        node = _t(self.messages, f"m:{self.request.operation}ResponseMessage", ResponseClass=klass)
        if error:
            _t(node, "m:MessageText", error.message)
            _t(node, "m:ResponseCode", error.code)
            _t(node, "m:DescriptiveLinkKey", 0)
        else:
            _t(node, "m:ResponseCode", "NoError")
        return node

    def each(self, things, handle):
        """One response message per thing; an ItemError answers that one thing only."""
        for thing in things:
            message = self.message()
            try:
                handle(message, thing)
            except ItemError as error:
                self.messages.remove(message)
                self.message(error)

    def folder(self, parent, folder: StoredFolder):
        state = self.request.state
        node = _t(parent, f"t:{FOLDER_TAGS.get(folder.folder_class, 'Folder')}")
        _t(node, "t:FolderId", Id=folder.id, ChangeKey="FCK")
        if folder.parent_id:
            _t(node, "t:ParentFolderId", Id=folder.parent_id, ChangeKey="FCK")
        _t(node, "t:FolderClass", folder.folder_class)
        _t(node, "t:DisplayName", folder.name)
        items = state.items_in(folder)
        _t(node, "t:TotalCount", len(items))
        _t(node, "t:ChildFolderCount", len(state.children(folder.id)))
        if folder.distinguished:
            _t(node, "t:DistinguishedFolderId", folder.distinguished)
        _t(node, "t:UnreadCount", sum(not i.is_read for i in items))
        return node

    def item(self, parent, item: StoredItem, mime: bool = False):
        tag = ITEM_TAGS.get(item.item_class, "Message")
        node = _t(parent, f"t:{tag}")
        if mime:
            _t(node, "t:MimeContent", base64.b64encode(item.mime).decode(), CharacterSet="UTF-8")
        # Element order follows the schema's ItemType, then MessageType's own elements.
        _t(node, "t:ItemId", Id=item.id, ChangeKey=item.changekey)
        _t(node, "t:ItemClass", item.item_class)
        _t(node, "t:DateTimeReceived", _iso(item.received))
        _t(node, "t:Size", item.size)
        _t(node, "t:IsDraft", "true" if item.is_draft else "false")
        for uri in self.request.requested_extended():
            value = item.extended.get(_ext_key(uri))
            if value is not None:
                prop = _t(node, "t:ExtendedProperty")
                prop.append(_copy(uri))
                _t(prop, "t:Value", value)
        if tag == "Message":
            _t(node, "t:IsRead", "true" if item.is_read else "false")
        return node


def _copy(node):
    return etree.fromstring(etree.tostring(node))


# --- schema validation ---------------------------------------------------------------------------

# What messages.xsd requires of each request: child elements with minOccurs="1" and attributes
# with use="required" (with their enumerations, or None for any value).
REQUIRED = {
    "GetFolder": (("FolderShape", "FolderIds"), {}),
    "FindFolder": (
        ("FolderShape", "ParentFolderIds"),
        {"Traversal": ("Shallow", "Deep", "SoftDeleted")},
    ),
    "SyncFolderHierarchy": (("FolderShape",), {}),
    "CreateFolder": (("ParentFolderId", "Folders"), {}),
    "FindItem": (
        ("ItemShape", "ParentFolderIds"),
        {"Traversal": ("Shallow", "SoftDeleted", "Associated")},
    ),
    "GetItem": (("ItemShape", "ItemIds"), {}),
    "CreateItem": (("Items",), {}),
    "UpdateItem": (
        ("ItemChanges",),
        {"ConflictResolution": ("Never", "AutoResolve", "AlwaysOverwrite")},
    ),
    "ExportItems": (("ItemIds",), {}),
    "UploadItems": (("Items",), {}),
    "SyncFolderItems": (("ItemShape", "SyncFolderId", "MaxChangesReturned"), {}),
    "ConvertId": (("SourceIds",), {"DestinationFormat": None}),
}
# The NonEmptyArrayOf... types: at least one child.
ARRAYS = {"FolderIds", "ParentFolderIds", "Folders", "ItemIds", "Items", "ItemChanges", "SourceIds"}
# Optional attributes, checked against their enumeration when present.
ENUMERATIONS = {
    "MessageDisposition": ("SaveOnly", "SendOnly", "SendAndSaveCopy"),
    "SendMeetingInvitations": ("SendToNone", "SendOnlyToAll", "SendToAllAndSaveCopy"),
}
UPLOAD_ITEM = (
    ("ParentFolderId", "Data"),
    {"CreateAction": ("CreateNew", "Update", "UpdateOrCreate")},
)
MAX_SYNC_CHANGES = 512  # MaxSyncChangesReturnedType: xs:int from 1 to 512


def validate(operation: etree._Element):
    """Refuse what the schema refuses, before any of the request runs (as Exchange does)."""
    name = etree.QName(operation).localname
    if name not in REQUIRED:
        return
    _check_content(operation, *REQUIRED[name])
    for attribute, allowed in ENUMERATIONS.items():
        if operation.get(attribute) is not None:
            _check_attribute(operation, attribute, allowed)
    if name == "UploadItems":
        for item in operation.find(f"{{{M}}}Items"):
            _check_content(item, *UPLOAD_ITEM)
            _base64(item.find(f"{{{T}}}Data"))
    elif name == "CreateItem":
        for mime in operation.iter(f"{{{T}}}MimeContent"):
            _base64(mime)
    elif name == "SyncFolderItems":
        _check_max_changes(operation.find(f"{{{M}}}MaxChangesReturned"))


def _check_content(node: etree._Element, children: tuple, attributes: dict):
    for attribute, allowed in attributes.items():
        if node.get(attribute) is None:
            raise SchemaViolation(
                node.sourceline, f"The required attribute '{attribute}' is missing."
            )
        _check_attribute(node, attribute, allowed)
    qname = etree.QName(node)
    present = {etree.QName(child).localname: child for child in node}
    for child in children:
        if child not in present or (child in ARRAYS and not len(present[child])):
            raise SchemaViolation(
                node.sourceline,
                f"The element '{qname.localname}' in namespace '{qname.namespace}' has "
                f"incomplete content. List of possible elements expected: '{child}' in "
                f"namespace '{qname.namespace}'.",
            )


def _check_attribute(node: etree._Element, attribute: str, allowed: tuple | None):
    value = node.get(attribute)
    if allowed is not None and value not in allowed:
        raise SchemaViolation(
            node.sourceline,
            f"The '{attribute}' attribute is invalid - The value '{value}' is invalid according "
            f"to its datatype '{T}:{attribute}Type' - The Enumeration constraint failed.",
        )


def _check_max_changes(node: etree._Element):
    try:
        value = int(node.text)
    except (TypeError, ValueError):
        reason = f"The string '{node.text}' is not a valid Int32 value."
    else:
        if 1 <= value <= MAX_SYNC_CHANGES:
            return
        bound = "MinInclusive" if value < 1 else "MaxInclusive"
        reason = f"The {bound} constraint failed."
    raise SchemaViolation(
        node.sourceline,
        f"The '{M}:MaxChangesReturned' element is invalid - The value '{node.text}' is invalid "
        f"according to its datatype '{T}:MaxSyncChangesReturnedType' - {reason}",
    )


def _base64(node: etree._Element) -> bytes:
    """xs:base64Binary content (whitespace allowed, as XML Schema says)."""
    try:
        return base64.b64decode("".join((node.text or "").split()), validate=True)
    except binascii.Error as error:
        qname = etree.QName(node)
        raise SchemaViolation(
            node.sourceline,
            f"The '{qname.namespace}:{qname.localname}' element is invalid - The value is "
            f"invalid according to its datatype 'http://www.w3.org/2001/XMLSchema:base64Binary' "
            f"- {error}.",
        ) from error


# --- operations ----------------------------------------------------------------------------------


def get_folder(req: EwsRequest, out: EwsResponder):
    def answer(message, ref):
        out.folder(_t(message, "m:Folders"), req.resolve_folder(ref))

    out.each(req.folder_ids("FolderIds"), answer)


def find_folder(req: EwsRequest, out: EwsResponder):
    deep = req.operation_element.get("Traversal") == "Deep"

    def below(folder_id):
        for child in req.state.children(folder_id):
            yield child
            if deep:
                yield from below(child.id)

    def answer(message, ref):
        found = list(below(req.resolve_folder(ref).id))
        page, offset, last = _page(req, "IndexedPageFolderView", found)
        root = _t(
            message,
            "m:RootFolder",
            IndexedPagingOffset=offset,
            TotalItemsInView=len(found),
            IncludesLastItemInRange=str(last).lower(),
        )
        folders = _t(root, "t:Folders")
        for folder in page:
            out.folder(folders, folder)

    out.each(req.folder_ids("ParentFolderIds"), answer)


def _page(req: EwsRequest, view_tag: str, things: list):
    view = req.operation_element.find(f"{{{M}}}{view_tag}")
    start = int(view.get("Offset", 0)) if view is not None else 0
    size = (
        int(view.get("MaxEntriesReturned", len(things) or 1)) if view is not None else len(things)
    )
    page = things[start : start + size]
    end = start + len(page)
    return page, end, end >= len(things)


def create_folder(req: EwsRequest, out: EwsResponder):
    parent = req.resolve_folder(req.operation_element.find(f"{{{M}}}ParentFolderId")[0])

    def answer(message, spec):
        name = spec.findtext(f"{{{T}}}DisplayName")
        if any(f.name.lower() == name.lower() for f in req.state.children(parent.id)):
            raise ItemError("ErrorFolderExists", "A folder with the specified name already exists.")
        folder_class = spec.findtext(f"{{{T}}}FolderClass") or "IPF.Note"
        with req.state.lock:
            created = req.state._folder(parent.mailbox, parent.id, name, folder_class)
        folder_node = _t(_t(message, "m:Folders"), f"t:{etree.QName(spec).localname}")
        _t(folder_node, "t:FolderId", Id=created.id, ChangeKey="FCK")

    out.each(req.folder_ids("Folders"), answer)


def sync_folder_hierarchy(req: EwsRequest, out: EwsResponder):
    """Creates only: the sync state is the set of folder ids already reported."""
    sync_folder = req.operation_element.find(f"{{{M}}}SyncFolderId")
    top = req.resolve_folder(sync_folder[0]) if sync_folder is not None else None
    known = set(
        json.loads(base64.b64decode(req.operation_element.findtext(f"{{{M}}}SyncState") or "W10="))
    )  # base64 of "[]"
    below, todo = [], list(req.state.children((top or req.state.mailbox_root(req.mailbox)).id))
    while todo:
        folder = todo.pop(0)
        below.append(folder)
        todo.extend(req.state.children(folder.id))
    message = out.message()
    state = json.dumps(sorted(known | {f.id for f in below}))
    _t(message, "m:SyncState", base64.b64encode(state.encode()).decode())
    _t(message, "m:IncludesLastFolderInRange", "true")
    changes = _t(message, "m:Changes")
    for folder in below:
        if folder.id not in known:
            out.folder(_t(changes, "t:Create"), folder)


def find_item(req: EwsRequest, out: EwsResponder):
    def answer(message, ref):
        items = req.state.items_in(req.resolve_folder(ref))
        page, offset, last = _page(req, "IndexedPageItemView", items)
        root = _t(
            message,
            "m:RootFolder",
            IndexedPagingOffset=offset,
            TotalItemsInView=len(items),
            IncludesLastItemInRange=str(last).lower(),
        )
        container = _t(root, "t:Items")
        for item in page:
            out.item(container, item)

    out.each(req.folder_ids("ParentFolderIds"), answer)


def _stored_item(req: EwsRequest, ref: etree._Element) -> StoredItem:
    item = req.state.items.get(ref.get("Id"))
    if item is None:
        raise ItemError("ErrorItemNotFound", "The specified object was not found in the store.")
    req.open(req.state.folders[item.folder_id].mailbox)
    if item.id in req.state.corrupt_ids:
        raise ItemError("ErrorItemCorrupt", "The item is corrupt.")
    return item


def get_item(req: EwsRequest, out: EwsResponder):
    mime = req.wants_mime()

    def answer(message, ref):
        out.item(_t(message, "m:Items"), _stored_item(req, ref), mime=mime)

    out.each(req.folder_ids("ItemIds"), answer)


def export_items(req: EwsRequest, out: EwsResponder):
    def answer(message, ref):
        item = _stored_item(req, ref)
        _t(message, "m:ItemId", Id=item.id, ChangeKey=item.changekey)
        blob = _export_blob(item) if item.blob is None else item.blob
        _t(message, "m:Data", base64.b64encode(blob).decode())

    out.each(req.folder_ids("ItemIds"), answer)


def _export_blob(item: StoredItem) -> bytes:
    record = dict(
        item_class=item.item_class,
        mime=base64.b64encode(item.mime).decode(),
        is_read=item.is_read,
        received=_iso(item.received),
        extended=item.extended,
    )
    return json.dumps(record).encode()


def own_export(data: bytes) -> dict | None:
    """The record of a blob this server exported; None for anyone else's (a FastTransfer stream)."""
    try:
        record = json.loads(data)
    except ValueError:  # includes UnicodeDecodeError
        return None
    fields = {"item_class", "mime", "is_read", "received", "extended"}
    return record if isinstance(record, dict) and fields <= record.keys() else None


def _check_acceptable(req: EwsRequest, content: bytes):
    for marker, code in req.state.rejected_markers.items():
        if marker in content:
            raise ItemError(code, f"The item was refused by the server ({code}).")


def upload_items(req: EwsRequest, out: EwsResponder):
    def answer(message, spec):
        folder = req.resolve_folder(spec.find(f"{{{T}}}ParentFolderId"))
        data = _base64(spec.find(f"{{{T}}}Data"))
        record = own_export(data)
        if record is None:
            _check_acceptable(req, data)
            # Exchange reads the class from the stream; the folder's is the best guess here.
            item_class = folder.folder_class.replace("IPF.", "IPM.", 1)
            item = req.state.add_item(folder, b"", item_class, blob=data)
        else:
            mime = base64.b64decode(record["mime"])
            _check_acceptable(req, mime)
            item = req.state.add_item(
                folder,
                mime,
                record["item_class"],
                is_read=record["is_read"],
                received=datetime.fromisoformat(record["received"]),
                extended=record["extended"],
            )
        _t(message, "m:ItemId", Id=item.id, ChangeKey=item.changekey)

    out.each(req.folder_ids("Items"), answer)


def create_item(req: EwsRequest, out: EwsResponder):
    folder = req.resolve_folder(req.operation_element.find(f"{{{M}}}SavedItemFolderId")[0])

    def answer(message, spec):
        item_class = ITEM_CLASS_OF_TAG.get(etree.QName(spec).localname, "IPM.Note")
        _require_disposition(req, item_class)
        mime = base64.b64decode(spec.findtext(f"{{{T}}}MimeContent") or "")
        _check_acceptable(req, mime)
        extended = {
            _ext_key(p.find(f"{{{T}}}ExtendedFieldURI")): p.findtext(f"{{{T}}}Value")
            for p in spec.findall(f"{{{T}}}ExtendedProperty")
        }
        flags = int(extended[PR_MESSAGE_FLAGS]) if PR_MESSAGE_FLAGS in extended else None
        # Exchange marks a MIME import as an unsent draft unless PR_MESSAGE_FLAGS says otherwise.
        is_draft = flags is None or bool(flags & MSGFLAG_UNSENT)
        is_read = spec.findtext(f"{{{T}}}IsRead") in ("1", "true") or bool(
            (flags or 0) & MSGFLAG_READ
        )
        delivered = extended.get(PR_MESSAGE_DELIVERY_TIME)
        received = (
            datetime.fromisoformat(delivered)
            if delivered
            else datetime.now(UTC).replace(microsecond=0)
        )
        item = req.state.add_item(
            folder,
            mime,
            item_class,
            is_read=is_read,
            is_draft=is_draft,
            extended=extended,
            received=received,
        )
        items = _t(message, "m:Items")
        _t(
            _t(items, f"t:{etree.QName(spec).localname}"),
            "t:ItemId",
            Id=item.id,
            ChangeKey=item.changekey,
        )

    out.each(req.folder_ids("Items"), answer)


def _require_disposition(req: EwsRequest, item_class: str):
    # MessageDisposition is optional in the schema but required for e-mail messages: it decides
    # between saving and sending (createitem-operation, updateitem-operation).
    if item_class == "IPM.Note" and req.operation_element.get("MessageDisposition") is None:
        raise ItemError(
            "ErrorMessageDispositionRequired", "MessageDisposition attribute is required."
        )


def update_item(req: EwsRequest, out: EwsResponder):
    def answer(message, change):
        item = _stored_item(req, change.find(f"{{{T}}}ItemId"))
        _require_disposition(req, item.item_class)
        for prop in change.iter(f"{{{T}}}ExtendedProperty"):
            item.extended[_ext_key(prop.find(f"{{{T}}}ExtendedFieldURI"))] = prop.findtext(
                f"{{{T}}}Value"
            )
        item.changekey = f"CK{next(req.state.seq)}"
        tag = ITEM_TAGS.get(item.item_class, "Message")
        _t(_t(_t(message, "m:Items"), f"t:{tag}"), "t:ItemId", Id=item.id, ChangeKey=item.changekey)
        _t(message, "m:ConflictResults").append(
            etree.fromstring(f'<t:Count xmlns:t="{T}">0</t:Count>')
        )

    out.each(req.folder_ids("ItemChanges"), answer)


def sync_folder_items(req: EwsRequest, out: EwsResponder):
    folder = req.resolve_folder(req.operation_element.find(f"{{{M}}}SyncFolderId")[0])
    since = _read_sync_state(req, folder)
    limit = int(req.operation_element.findtext(f"{{{M}}}MaxChangesReturned"))
    pending = [i for i in req.state.items_in(folder) if i.seq > since]
    batch = pending[:limit]
    watermark = batch[-1].seq if batch else since
    message = out.message()
    state = json.dumps({"folder": folder.id, "seq": watermark, "epoch": req.state.sync_epoch})
    _t(message, "m:SyncState", base64.b64encode(state.encode()).decode())
    _t(message, "m:IncludesLastItemInRange", str(len(batch) == len(pending)).lower())
    changes = _t(message, "m:Changes")
    for item in batch:
        out.item(_t(changes, "t:Create"), item)


def _read_sync_state(req: EwsRequest, folder: StoredFolder) -> int:
    text = req.operation_element.findtext(f"{{{M}}}SyncState")
    if not text:
        return 0
    try:
        state = json.loads(base64.b64decode(text))
        valid = state["folder"] == folder.id and state["epoch"] == req.state.sync_epoch
    except (ValueError, KeyError, TypeError):
        valid = False
    if not valid:
        raise EwsFault(
            "ErrorInvalidSyncStateData",
            "Synchronization state data is corrupt or otherwise invalid.",
        )
    return state["seq"]


def convert_id(req: EwsRequest, out: EwsResponder):
    # exchangelib's version probe: any answer with a ServerVersionInfo header will do.
    out.message(ItemError("ErrorInvalidIdMalformed", "Id is malformed."))


OPERATIONS = {
    "GetFolder": get_folder,
    "FindFolder": find_folder,
    "SyncFolderHierarchy": sync_folder_hierarchy,
    "CreateFolder": create_folder,
    "FindItem": find_item,
    "GetItem": get_item,
    "CreateItem": create_item,
    "UpdateItem": update_item,
    "ExportItems": export_items,
    "UploadItems": upload_items,
    "SyncFolderItems": sync_folder_items,
    "ConvertId": convert_id,
}


def _fault_envelope(fault: EwsFault) -> bytes:
    envelope = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"s": SOAP})
    node = _t(_t(envelope, "s:Body"), "s:Fault")
    code = etree.SubElement(node, "faultcode", nsmap={"a": T})
    code.text = f"a:{fault.code}"
    etree.SubElement(node, "faultstring").text = fault.message
    detail = etree.SubElement(node, "detail")
    etree.SubElement(detail, f"{{{E}}}ResponseCode", nsmap={"e": E}).text = fault.code
    etree.SubElement(detail, f"{{{E}}}Message", nsmap={"e": E}).text = fault.message
    if fault.back_off_ms is not None:
        xml = etree.SubElement(detail, f"{{{T}}}MessageXml", nsmap={"t": T})
        _t(xml, "t:Value", fault.back_off_ms, Name="BackOffMilliseconds")
    if isinstance(fault, SchemaViolation):
        xml = etree.SubElement(detail, f"{{{T}}}MessageXml", nsmap={"t": T})
        _t(xml, "t:LineNumber", fault.line)
        _t(xml, "t:Violation", fault.violation)
    return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")


class EwsHandler(BaseHTTPRequestHandler):
    protocol_version = (
        "HTTP/1.1"  # keep-alive: exchangelib treats "Connection: close" as throttling
    )
    state: EwsState  # set on the subclass made per server

    def setup(self):
        super().setup()
        self.ntlm_context, self.ntlm_user = None, None
        # Headers and body leave in two writes; without NODELAY, Nagle holds the body ~40 ms.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args):  # silence the per-request stderr lines
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.endswith("/oauth2/v2.0/token"):
            return self._token(body)
        if self.path != EWS_PATH:
            return self._send(404, b"")
        login = self._authenticate()
        if login is None:
            return None
        try:
            request = EwsRequest(self.state, body, login)
        except etree.XMLSyntaxError as error:
            # Exchange parses before anything else and answers bad XML as a schema violation.
            return self._fault(SchemaViolation(error.lineno, error.msg))
        except (IndexError, TypeError):
            return self._send(400, b"Bad request")
        with self.state.lock:
            self.state.requests[request.operation] += 1
        with self._in_flight(request.mailbox):
            return self._serve(request)

    @contextmanager
    def _in_flight(self, mailbox: str):
        state = self.state
        with state.lock:
            state.in_flight[mailbox] += 1
            state.max_in_flight[mailbox] = max(
                state.max_in_flight[mailbox], state.in_flight[mailbox]
            )
        try:
            time.sleep(state.hold)
            yield
        finally:
            with state.lock:
                state.in_flight[mailbox] -= 1

    def _serve(self, request: EwsRequest):
        if self.state.ews_blocked:
            return self._ews_blocked()
        fault = self.state.take_fault(request.operation)
        if fault and fault["kind"] == "http503":
            return self._send(
                503, b"Service Unavailable", {"Retry-After": str(fault.get("retry_after", 1))}
            )
        try:
            if fault and fault["kind"] == "busy":
                raise EwsFault(
                    "ErrorServerBusy",
                    "The server cannot service this request right now. Try again later.",
                    fault.get("back_off_ms", 1000),
                )
            validate(request.operation_element)
            self._check_impersonation(request)
            if request.operation not in OPERATIONS:
                raise EwsFault("ErrorInvalidOperation", f"{request.operation} is not served here.")
            responder = EwsResponder(request)
            OPERATIONS[request.operation](request, responder)
        except EwsFault as error:
            return self._fault(error)
        payload = etree.tostring(responder.envelope, xml_declaration=True, encoding="utf-8")
        return self._send(200, payload, {"Content-Type": "text/xml; charset=utf-8"})

    def _fault(self, fault: EwsFault):
        return self._send(500, _fault_envelope(fault), {"Content-Type": "text/xml; charset=utf-8"})

    def _check_impersonation(self, request: EwsRequest):
        if request.impersonated and request.login not in self.state.impersonators:
            raise EwsFault(
                "ErrorImpersonateUserDenied",
                "The account does not have permission to impersonate the requested user.",
            )
        if request.impersonated and request.impersonated not in self.state.passwords:
            raise EwsFault(
                "ErrorNonExistentMailbox",
                f"The SMTP address has no mailbox associated with it: {request.impersonated}",
            )

    def _authenticate(self) -> str | None:
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme == "Basic":
            user, _, password = base64.b64decode(value).decode().partition(":")
            if self.state.passwords.get(user) == password and password:
                return user
        elif scheme == "Bearer" and value in self.state.tokens:
            return self.state.tokens[value]
        elif scheme == "NTLM":
            return self._ntlm_step(base64.b64decode(value))
        elif not header and self.ntlm_user:
            return self.ntlm_user  # NTLM authenticates the connection, not each request
        if header:
            with self.state.lock:
                self.state.requests["(refused login)"] += 1
        self._refuse()
        return None

    def _ntlm_step(self, token: bytes) -> str | None:
        """NTLM (MS-NLMP) over HTTP: negotiate -> 401 with the challenge -> authenticate.
        pyspnego checks the response against NTLM_USER_FILE, the way IIS checks against AD."""
        if self.ntlm_context is None or token[8:9] == b"\x01":  # a new NEGOTIATE_MESSAGE
            self.ntlm_context = spnego.server(protocol="ntlm")
        try:
            challenge = self.ntlm_context.step(token)
        except spnego.exceptions.SpnegoError:
            with self.state.lock:
                self.state.requests["(refused login)"] += 1
            self.ntlm_context = None
            self._refuse()
            return None
        if not self.ntlm_context.complete:
            self._send(
                401, b"", [("WWW-Authenticate", f"NTLM {base64.b64encode(challenge).decode()}")]
            )
            return None
        self.ntlm_user = self.ntlm_context.client_principal.rpartition("\\")[2]
        return self.ntlm_user

    def _refuse(self):
        # Exchange offers every scheme it accepts, one header each.
        challenges = [("WWW-Authenticate", "NTLM"), ("WWW-Authenticate", 'Basic realm="127.0.0.1"')]
        self._send(401, b"", challenges)

    def _token(self, body: bytes):
        form = dict(parse_qsl(body.decode()))
        client_id = form.get("client_id")
        if not client_id or self.state.clients.get(client_id) != form.get("client_secret"):
            answer = {
                "error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret.",
            }
            return self._send(
                401, json.dumps(answer).encode(), {"Content-Type": "application/json"}
            )
        token = uuid.uuid4().hex
        self.state.tokens[token] = f"app:{client_id}"
        answer = {"token_type": "Bearer", "expires_in": 3599, "access_token": token}
        return self._send(200, json.dumps(answer).encode(), {"Content-Type": "application/json"})

    def _ews_blocked(self):
        # Exchange Online with EWS turned off for the tenant or mailbox (EWSEnabled, MC1015893),
        # or the app not on EWSAllowedAppIDs, answers HTTP 403 Forbidden with no SOAP body; this
        # is what Microsoft's EWS "scream tests" before the MC1227454 shutdown looked like to
        # clients (EWS Managed API: "The remote server returned an error: (403) Forbidden").
        return self._send(403, b"", {"X-MS-Diagnostics": '2000008;reason="EWS access blocked"'})

    def _send(self, status: int, payload: bytes, headers: dict | list | None = None):
        self.send_response(status)
        for name, value in headers.items() if isinstance(headers, dict) else headers or []:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class EwsServer:
    """A running server: ``url`` is the EWS endpoint, ``state`` what it holds. With
    ``tls_dir`` it speaks HTTPS with a self-signed certificate written there."""

    def __init__(self, tls_dir: Path | None = None):
        self.state = EwsState()
        handler = type("BoundEwsHandler", (EwsHandler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        scheme = "http"
        if tls_dir is not None:
            # Imported here: at module level it would load the Graph plugin before pytest can
            # rewrite its asserts.
            from tests.servers.graph_server import _tls_files

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*_tls_files(tls_dir))
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.base_url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"
        self.url = self.base_url + EWS_PATH
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __getattr__(self, name):
        return getattr(self.state, name)

    def start(self) -> EwsServer:
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def start_ews_server(tls_dir: Path | None = None) -> EwsServer:
    return EwsServer(tls_dir).start()


@pytest.fixture
def ews_server():
    server = start_ews_server()
    yield server
    server.stop()
