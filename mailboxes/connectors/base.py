"""The one interface every protocol connector implements.

Plain Python: nothing here knows about Django. The copy engine (``mailboxes.engine``) drives a
source and a target connector through these calls; every call is batched so that a folder of
thousands of items costs a handful of round trips, never one per item.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from .options import OptionError, read_options

# Item kinds a folder holds (EWS folder classes map onto these; IMAP/maildir are always "mail").
MAIL, CALENDAR, CONTACTS, TASKS, NOTES = "mail", "calendar", "contacts", "tasks", "notes"
ITEM_KINDS = (MAIL, CALENDAR, CONTACTS, TASKS, NOTES)

# Well-known folder roles. A source folder with a role lands in the target's folder of that role
# (a source "Sent" becomes the target's "Sent Items"), whatever either side calls it.
INBOX, SENT, TRASH, DRAFTS, JUNK, ARCHIVE = "inbox", "sent", "trash", "drafts", "junk", "archive"
CALENDAR_ROLE, CONTACTS_ROLE, TASKS_ROLE, NOTES_ROLE = "calendar", "contacts", "tasks", "notes"

# Item formats. "rfc822" is universal for mail; a native format is only used when source and
# target connectors share it (EWS ExportItems/UploadItems blobs, Graph export/import blobs).
RFC822 = "rfc822"


class ConnectorError(Exception):
    """Something went wrong talking to a server; the message is safe to show a consultant."""


class AuthError(ConnectorError):
    """Credentials or permissions were refused. Never retried: the mailbox stops."""


class TransientError(ConnectorError):
    """Connection lost, timeout, throttling. Retried with backoff; honour ``retry_after``."""

    def __init__(self, message, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class NoConnector(ConnectorError):
    """The tenant kind has no connector in this build."""


@dataclass(frozen=True)
class Reach:
    """Where a tenant's connector may go (checked by ``reach``). The app builds it from its
    settings for every tenant; these defaults allow everything, for endpoints built by hand
    in tests and scripts."""

    allow_local: bool = True  # loopback, link-local, unspecified and the services below
    services: tuple[str, ...] = ()  # host names, addresses or networks of the app's services
    maildir_root: str = ""  # "": any folder


# Kinds that never log in as a user: an application (Google: a service account with
# domain-wide delegation) reads every mailbox, or files do.
APP_KINDS = ("exchange_online", "maildir", "google")


@dataclass(frozen=True)
class Endpoint:
    """How to reach one tenant. Built from a ``projects.Tenant``; secrets are plain text only
    in memory, never logged (``__repr__`` hides them)."""

    kind: str  # ews, exchange_online, imap, maildir
    host: str = ""  # IMAP host, EWS URL (empty: autodiscover), maildir root path
    port: int | None = None
    security: str = "tls"  # tls, starttls, plain (IMAP)
    auth_method: str = "basic"  # basic, ntlm, oauth2
    username: str = ""
    secret: str = field(default="", repr=False)  # password or OAuth client secret
    oauth_tenant_id: str = ""
    oauth_client_id: str = ""
    oauth_authority: str = ""  # override of the login endpoint (tests, sovereign clouds)
    impersonation: str = ""  # admin/master account acting for each mailbox
    verify_tls: bool = True
    options: dict = field(default_factory=dict)
    certificate_key: str = field(default="", repr=False)  # Graph: the app certificate's key
    reach: Reach = Reach()

    @property
    def acts_for_mailboxes(self) -> bool:
        """An admin or application account opens every mailbox (EWS impersonation, IMAP master
        user, OAuth2 client credentials, Graph): no mailbox needs a password of its own."""
        return bool(self.impersonation) or self.auth_method == "oauth2" or self.kind in APP_KINDS

    def for_mailbox(self, address: str, login: str = "", password: str = "") -> Endpoint:
        """How one mailbox logs in; the one rule, stated in the README ("Who logs in"):

        1. the mailbox's own login, with its own password (else the tenant's);
        2. else the tenant's admin/master account acting for the mailbox;
        3. else the mailbox's address with the tenant's password.

        The tenant's own ``username`` serves its connection test and admin calls only: it never
        becomes every mailbox's login (which copied one account into every target)."""
        if login and self.kind not in APP_KINDS:
            return replace(self, username=login, secret=password or self.secret, impersonation="")
        if self.acts_for_mailboxes:
            return self
        return replace(self, username=address)

    def login_label(self, address: str) -> str:
        """Who logs in for ``address``, in words (the "logs in as" of a mailbox row)."""
        if self.kind == "maildir":
            return f"files under {self.host}"
        if self.kind == "google":
            return f"the service account, acting for {address}"
        if self.kind in APP_KINDS or self.auth_method == "oauth2":
            return f"the application {self.oauth_client_id or '(no client id)'} for {address}"
        if self.impersonation:
            return f"{self.impersonation} acting for {address}"
        return self.username or address


@dataclass(frozen=True)
class Folder:
    path: tuple[str, ...]  # components, decoded to Unicode; separator-free
    kind: str = MAIL
    role: str | None = None
    count: int = 0
    size: int = 0
    native_id: str = ""  # the protocol's own handle (IMAP mailbox name, EWS folder id)

    @property
    def display(self) -> str:
        return "/".join(self.path)


@dataclass(frozen=True)
class ItemRef:
    """One item as listed by ``changes``: enough to plan a copy without fetching bytes."""

    source_id: str  # stable per folder: "UIDVALIDITY:UID", maildir unique name, EWS item id
    size: int = 0
    received: datetime | None = None


@dataclass
class Changes:
    items: list[ItemRef]  # new since ``state`` (or everything when ``state`` was empty/reset)
    state: dict  # JSON-serialisable watermark to pass to the next ``changes`` call
    reset: bool = False  # the old state was invalid (UIDVALIDITY changed, sync state lost):
    # the engine must match by fingerprint on the target, never copy blindly


@dataclass
class Item:
    source_id: str
    data: bytes
    format: str = RFC822
    flags: frozenset[str] = frozenset()  # IMAP spelling: \\Seen, \\Flagged, ..., keywords as-is
    received: datetime | None = None  # INTERNALDATE / received time, timezone-aware
    kind: str = MAIL
    # Set (with empty ``data``) when the source lists the item but cannot hand it over
    # (corrupt, refused): the engine records an ItemError with this reason instead of copying.
    error: str = ""
    error_code: str = ""

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.data)


@dataclass
class StoreResult:
    source_id: str
    target_id: str | None = None  # None when the target refused the item
    error: str = ""  # the server's reason, verbatim
    error_code: str = ""


@dataclass(frozen=True)
class TargetLimits:
    """What a target mailbox can take, as far as its protocol tells (None: not told).

    ``max_item_size``: the largest item it stores, in bytes, and ``size_source`` where that
    figure comes from; ``quota_limit``/``quota_used``: its storage quota, in bytes."""

    max_item_size: int | None = None
    size_source: str = ""
    quota_limit: int | None = None
    quota_used: int | None = None

    @property
    def quota_free(self) -> int | None:
        if self.quota_limit is None:
            return None
        return max(0, self.quota_limit - (self.quota_used or 0))


# Longest folder name component most servers and file systems accept (NAME_MAX, Exchange's
# displayName limit).
MAX_FOLDER_NAME = 255


def fingerprint(data: bytes) -> str:
    """Identity of an item's bytes, used to recognise a copy whose record was lost."""
    return hashlib.sha256(data).hexdigest()


_EIGHT_BIT_TO_X = bytes.maketrans(bytes(range(0x80, 0x100)), b"X" * 0x80)


def header_block(data: bytes) -> bytes:
    """An RFC 822 message's header block, without the empty line that ends it."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = data.find(separator)
        if end >= 0:
            return data[:end]
    return data


def munged_fingerprint(data: bytes) -> str | None:
    """The fingerprint the item would have once a server replaced every 8-bit byte of its
    header block with "X" while answering OK (Cyrus does by default: ``munge8bit``); None when
    the header block has no 8-bit byte, so nothing could have been rewritten that way."""
    header = header_block(data)
    munged = header.translate(_EIGHT_BIT_TO_X)
    if munged == header:
        return None
    return fingerprint(munged + data[len(header) :])


# The service that throttles, as a consultant names it on the mailbox page.
SERVICE_NAMES = {
    "exchange_online": "Exchange Online",
    "ews": "Exchange (EWS)",
    "google": "Google",
    "imap": "the IMAP server",
}


# A wait for the shared request budget longer than this is shown on the mailbox page as
# throttling.
BUDGET_NOTED_WAIT = 1.0


@dataclass(frozen=True)
class ThrottleNote:
    """A service made this mailbox wait: which one said what, and for how many seconds."""

    service: str
    reason: str
    seconds: float
    at: datetime


class Connector(ABC):
    """One open mailbox on one tenant. Use as a context manager."""

    kind: str = ""
    native_format: str = RFC822
    # Where the request budgets every worker shares are kept (``mailboxes.budget``), handed in
    # by the engine; None (scripts, a connector used alone) takes no budget. Graph reads the
    # store itself.
    budget_store = None
    # Formats ``store`` takes unchanged besides RFC 822 and its own (Graph imports EWS exports).
    import_formats: tuple[str, ...] = ()

    def __init__(self, endpoint: Endpoint, mailbox: str):
        self.endpoint = endpoint
        self.mailbox = mailbox
        try:
            self.options = read_options(self.kind, endpoint.options)
        except OptionError as exc:
            raise ConnectorError(f"The tenant's connector options are not valid: {exc}.") from exc
        # Throttling met and waited out inside the connector; the engine takes them
        # (``take_throttled``) and records them on the mailbox.
        self._throttled: list[ThrottleNote] = []

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc):
        self.close()

    def open(self) -> None:  # noqa: B027 - optional hook
        pass

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    @property
    def service(self) -> str:
        return SERVICE_NAMES.get(self.kind, self.kind)

    def throttled(self, reason: str, seconds: float) -> None:
        """Note that the service refused or held back a request and we waited ``seconds``
        (a throttling handed back to the engine as TransientError(retry_after) is noted by the
        engine itself). Safe from pool threads: list appends are atomic."""
        self._throttled.append(ThrottleNote(self.service, reason, seconds, datetime.now(UTC)))

    def budget_waited(self, reason: str, seconds: float) -> None:
        """A wait for the shared request budget: noted as throttling when longer than
        BUDGET_NOTED_WAIT; shorter ones are the budget's ordinary pacing."""
        if seconds > BUDGET_NOTED_WAIT:
            self.throttled(reason, seconds)

    def take_throttled(self) -> list[ThrottleNote]:
        taken = []
        while self._throttled:
            taken.append(self._throttled.pop(0))
        return taken

    def accepts(self, format: str) -> bool:
        return format in (RFC822, self.native_format, *self.import_formats)

    def check(self) -> str:
        """Log in and look around; return a one-line success message or raise ConnectorError."""
        folders = self.folders()
        return f"Connected: {len(folders)} folders in {self.mailbox}."

    @abstractmethod
    def folders(self) -> list[Folder]: ...

    @abstractmethod
    def ensure_folder(self, path: tuple[str, ...], kind: str, role: str | None) -> Folder: ...

    @abstractmethod
    def changes(self, folder: Folder, state: dict, before: datetime | None = None) -> Changes:
        """Items new since ``state``; with ``before``, only items received before it (pre-stage)."""

    @abstractmethod
    def fetch(self, folder: Folder, ids: list[str], format: str = RFC822) -> list[Item]: ...

    @abstractmethod
    def store(self, folder: Folder, items: list[Item]) -> list[StoreResult]: ...

    @abstractmethod
    def fingerprints(self, folder: Folder) -> dict[str, list[str]]:
        """fingerprint -> target ids of what the folder holds (for crash/UIDVALIDITY recovery).

        A list, not one id: byte-identical duplicates are distinct messages, and recovery must
        match each source copy to its own target copy, never two to one.
        """

    def recovery_keys(self, folder: Folder) -> dict[str, str]:
        """Item id -> a key the server keeps on a copy of the item (Exchange's PR_SEARCH_KEY),
        read on both sides when recovery finds no fingerprint for an item that may have been
        stored: an item stored by a worker that died before marking it. {} when the server
        keeps no such key (the default)."""
        return {}

    def stored(self, folder: Folder, ids: list[str]) -> dict[str, tuple[bytes, int]]:
        """target id -> (header block, size) of what the folder holds under ``ids``, read back
        right after ``store`` to see whether the server stored what it was sent; {} when that
        is not cheap to read (the default: nothing is checked)."""
        return {}

    def target_generations(self, folders: list[Folder]) -> dict[str, str]:
        """native id -> what each folder is now, as a target: an opaque text that changes when
        the folder is deleted and created again or its ids are reset, such that every target
        id ``store`` and ``fingerprints`` give for it starts with that text and ":" (IMAP: the
        UIDVALIDITY); "" for a folder that no longer exists. A folder left out is unknown, and
        the engine then trusts its copy records: the default knows none."""
        return {}

    def flag_changes(self, folder: Folder, state: dict) -> dict[str, frozenset[str]]:
        """source id -> current flags of the items whose flags may have changed since ``state``
        (a ``Changes.state`` this connector returned earlier). A superset is allowed: the engine
        compares with the flags it recorded at copy time and sets only those that differ.
        Without a cheap way to tell (no modification sequences), {}: flags are not synced."""
        return {}

    def set_flags(self, folder: Folder, flags: dict[str, frozenset[str]]) -> None:  # noqa: B027
        """Give these target items exactly these flags (system flags and keywords, never
        \\Recent); ids the folder no longer holds are skipped. Optional: the default keeps
        the flags the items were stored with."""

    # -- discovery (before copying): optional, with defaults every connector can live with --

    def check_target(self) -> None:
        """Raise ConnectorError unless this mailbox can be copied into now: the login works
        and the mailbox exists (Graph: the user has a mailbox). The default lists its folders."""
        self.folders()

    def limits(self) -> TargetLimits:
        """What this mailbox can take as a target. The default knows only the tenant's
        ``max_item_size`` option (bytes)."""
        configured = self.options["max_item_size"]
        if configured:
            return TargetLimits(configured, "the tenant's max_item_size option")
        return TargetLimits()

    def subjects(self, folder: Folder, ids: list[str]) -> dict[str, str]:
        """source id -> subject of a few items (the largest, for the readiness page); {} when
        not cheap to read."""
        return {}

    def folder_problem(self, path: tuple[str, ...], kind: str) -> str:
        """Why this mailbox (as a target) cannot hold a folder at ``path`` of ``kind``, or ""."""
        for part in path:
            if len(part) > MAX_FOLDER_NAME:
                return f"a folder name is longer than {MAX_FOLDER_NAME} characters"
        return ""

    def inventory(self, folders: list[Folder]) -> list[dict[str, int]]:
        """What each folder holds now, in order: item id -> size, no content (verification).
        The ids are those ``changes`` lists and ``store`` returns; the default lists each
        folder from scratch with ``changes``."""
        return [{ref.source_id: ref.size for ref in self.changes(f, {}).items} for f in folders]
