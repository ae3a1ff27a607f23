"""A local Maildir++ tree, laid out as Dovecot writes it, so it can read a Dovecot maildir.

- ``Endpoint.host`` is a root folder; the mailbox is the root itself when it holds
  ``cur/new/tmp``, else ``root/<mailbox address>``.
- Folders are ``.Parent.Child`` directories beside the INBOX's ``cur/new/tmp``; names are IMAP
  modified UTF-7 on disk, and a ``.`` or ``/`` inside a name is written ``\\2e``/``\\2f`` as
  Dovecot's listescape plugin does (``\\`` itself is ``\\5c``).
- Flags are the ``:2,`` info letters (https://cr.yp.to/proto/maildir.html); keywords are the
  lowercase letters, numbered by the folder's ``dovecot-keywords`` file (Dovecot's own scheme).
- INTERNALDATE is the file's mtime. Messages are stored byte for byte, written to ``tmp/`` and
  renamed into ``cur/`` so no reader ever sees half a message.
- A message's id is the unique part of its file name (before ``:`` and any ``,S=`` extension),
  which survives the renames that flag changes and new -> cur moves make.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

from . import utf7
from .base import (
    INBOX,
    MAIL,
    MAX_FOLDER_NAME,
    RFC822,
    Changes,
    Connector,
    ConnectorError,
    Folder,
    Item,
    ItemRef,
    StoreResult,
    fingerprint,
)
from .reach import ReachError, maildir_folder
from .roles import COMMON_FOLDER_NAMES, DEFAULT_ROLE_NAMES

SYSTEM_FLAGS = {
    "D": "\\Draft",
    "F": "\\Flagged",
    "P": "$Forwarded",  # "passed" in the maildir spec
    "R": "\\Answered",
    "S": "\\Seen",
    "T": "\\Deleted",
}
FLAG_LETTERS = {flag: letter for letter, flag in SYSTEM_FLAGS.items() if letter != "P"}
KEYWORDS_FILE = "dovecot-keywords"
MAX_KEYWORDS = 26  # one lowercase letter each
_ESCAPES = {"\\": "\\5c", ".": "\\2e", "/": "\\2f"}
_ESCAPED = re.compile(r"\\([0-9a-fA-F]{2})")
_SUBDIRS = ("cur", "new", "tmp")
_counter = itertools.count()


def encode_name(component: str) -> str:
    return "".join(_ESCAPES.get(char, char) for char in utf7.encode(component))


def decode_name(component: str) -> str:
    return utf7.decode(_ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), component))


def folder_dir_name(path: tuple[str, ...]) -> str:
    """The directory of a folder relative to the mailbox; "" is the INBOX."""
    if not path or (len(path) == 1 and path[0].upper() == "INBOX"):
        return ""
    return "." + ".".join(encode_name(part) for part in path)


def unique_part(filename: str) -> str:
    return filename.split(":", 1)[0].split(",", 1)[0]


def new_unique_name() -> str:
    now = time.time()
    host = socket.gethostname().replace("/", "\\057").replace(":", "\\072").replace(",", "\\054")
    return f"{int(now)}.M{int(now % 1 * 1e6)}P{os.getpid()}Q{next(_counter)}.{host}"


class MaildirConnector(Connector):
    kind = "maildir"
    native_format = RFC822

    def __init__(self, endpoint, mailbox):
        super().__init__(endpoint, mailbox)
        # Checked on every start, not only when the tenant was saved: a tenant saved before
        # MAILDIR_ROOT was set, or changed in the database, must not reach outside it either.
        self.root = maildir_folder(endpoint.reach, endpoint.host)
        # The mailbox folder is root/<address> (or the root itself): no address may climb out.
        root, folder = (Path(os.path.realpath(p)) for p in (self.root, self.root / mailbox))
        if folder != root and root not in folder.parents:
            raise ReachError(f"{mailbox!r} names no maildir under {self.root}.")
        self._listings: dict[str, dict[str, Path]] = {}

    @property
    def base(self) -> Path:
        if all((self.root / sub).is_dir() for sub in _SUBDIRS):
            return self.root
        return self.root / self.mailbox

    def open(self) -> None:
        if not self.endpoint.host or not self.root.is_dir():
            raise ConnectorError(f"The maildir root {str(self.root)!r} is not a folder.")

    def check(self) -> str:
        self.open()
        if not os.access(self.root, os.R_OK | os.W_OK | os.X_OK):
            raise ConnectorError(f"The maildir root {str(self.root)!r} is not writable.")
        return f"Connected: maildir root {self.root} is readable and writable."

    def folders(self) -> list[Folder]:
        base = self.base
        if not (base / "cur").is_dir():
            raise ConnectorError(f"There is no maildir for {self.mailbox} under {self.root}.")
        found = [self._folder(("INBOX",), "", INBOX)]
        for entry in sorted(os.scandir(base), key=lambda e: e.name):
            if entry.name.startswith(".") and (Path(entry.path) / "cur").is_dir():
                path = tuple(decode_name(part) for part in entry.name[1:].split("."))
                role = COMMON_FOLDER_NAMES.get(path[0].lower()) if len(path) == 1 else None
                found.append(self._folder(path, entry.name, role))
        return found

    def _folder(self, path, native_id, role) -> Folder:
        files = self._scan(native_id)
        size = sum(p.stat().st_size for p in files.values())
        return Folder(path, MAIL, role, len(files), size, native_id)

    def ensure_folder(self, path: tuple[str, ...], kind: str, role: str | None) -> Folder:
        if role:
            existing = next((f for f in self._existing_folders() if f.role == role), None)
            if existing:
                return existing
            path = (DEFAULT_ROLE_NAMES[role],)
        native_id = folder_dir_name(path)
        for directory in {self.base, self.base / native_id}:
            for sub in _SUBDIRS:
                (directory / sub).mkdir(parents=True, exist_ok=True)
        if native_id:
            # Dovecot marks every Maildir++ subfolder with this empty file.
            (self.base / native_id / "maildirfolder").touch()
        role = INBOX if not native_id else role
        return Folder(("INBOX",) if not native_id else path, MAIL, role, native_id=native_id)

    def _existing_folders(self) -> list[Folder]:
        return self.folders() if (self.base / "cur").is_dir() else []

    def changes(self, folder: Folder, state: dict, before: datetime | None = None) -> Changes:
        # Stat before listing: a message arriving during the scan changes the mtimes again.
        marks = self._marks(folder.native_id)
        if state and state == marks and before is None:
            return Changes([], state)
        refs = []
        for unique, path in self._scan(folder.native_id).items():
            stat = path.stat()
            received = datetime.fromtimestamp(stat.st_mtime, UTC)
            if before is None or received < before:
                refs.append((stat.st_mtime_ns, unique, ItemRef(unique, stat.st_size, received)))
        refs.sort(key=lambda entry: entry[:2])
        return Changes([ref for *_, ref in refs], marks)

    def _marks(self, native_id: str) -> dict[str, int]:
        """The directories' mtimes: any delivery, removal or rename (a flag change) moves one."""
        directory = self.base / native_id
        return {sub: (directory / sub).stat().st_mtime_ns for sub in ("cur", "new")}

    def flag_changes(self, folder: Folder, state: dict) -> dict[str, frozenset[str]]:
        """Maildir has no modification sequence, and remembering every item's flags in
        ``state`` would make it as big as the folder. So: nothing when the directories did not
        change since ``state``, else the current flags of every item, read from the file names
        of one directory listing (no stat, no file read: ~0.5 s per 100,000 items). The
        engine sets only those that differ from the flags it recorded at copy time."""
        if state and state == self._marks(folder.native_id):
            return {}
        keywords = self._keywords(folder.native_id)
        files = self._scan(folder.native_id)
        return {unique: _flags_from_name(path.name, keywords) for unique, path in files.items()}

    def set_flags(self, folder: Folder, flags: dict[str, frozenset[str]]) -> None:
        """Each file is renamed (atomic) to carry the new info letters, and moves to ``cur/``."""
        keywords = self._keywords(folder.native_id)
        known = len(keywords)
        renames = []
        for unique, wanted in flags.items():
            path = self._locate(folder.native_id, unique)
            if path is None:
                continue
            try:
                info = _info_letters(wanted, keywords)
            except ValueError as exc:
                raise ConnectorError(f"Setting flags in {folder.display}: {exc}") from exc
            name = f"{path.name.split(':', 1)[0]}:2,{info}"
            renames.append((unique, path, path.parent.parent / "cur" / name))
        if len(keywords) != known:  # numbered before any file names the new letters
            self._write_keywords(folder.native_id, keywords)
        listing = self._listings.setdefault(folder.native_id, {})
        for unique, old, new in renames:
            if old != new:
                os.rename(old, new)
                listing[unique] = new

    def _scan(self, native_id: str) -> dict[str, Path]:
        directory = self.base / native_id
        files = {}
        for sub in ("new", "cur"):
            for entry in os.scandir(directory / sub):
                if not entry.name.startswith(".") and entry.is_file():
                    files[unique_part(entry.name)] = Path(entry.path)
        self._listings[native_id] = files
        return files

    def fetch(self, folder: Folder, ids: list[str], format: str = RFC822) -> list[Item]:
        keywords = self._keywords(folder.native_id)
        items = []
        for source_id in ids:
            path = self._locate(folder.native_id, source_id)
            if path is None:
                continue  # deleted since it was listed: nothing left to copy
            data = path.read_bytes()
            received = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            flags = _flags_from_name(path.name, keywords)
            items.append(Item(source_id, data, RFC822, flags, received))
        return items

    def _locate(self, native_id: str, unique: str) -> Path | None:
        path = self._listings.get(native_id, {}).get(unique)
        if path is None or not path.exists():
            path = self._scan(native_id).get(unique)
        return path

    def store(self, folder: Folder, items: list[Item]) -> list[StoreResult]:
        directory = self.base / folder.native_id
        keywords = self._keywords(folder.native_id)
        known = len(keywords)
        results = []
        for item in items:
            try:
                info = _info_letters(item.flags, keywords)
            except ValueError as exc:
                results.append(StoreResult(item.source_id, error=str(exc), error_code="keywords"))
                continue
            unique = new_unique_name()
            temporary = directory / "tmp" / unique
            temporary.write_bytes(item.data)
            if item.received:
                stamp = item.received.timestamp()
                os.utime(temporary, (stamp, stamp))
            os.rename(temporary, directory / "cur" / f"{unique}:2,{info}")
            results.append(StoreResult(item.source_id, unique))
        if len(keywords) != known:
            self._write_keywords(folder.native_id, keywords)
        return results

    def fingerprints(self, folder: Folder) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for unique, path in sorted(self._scan(folder.native_id).items()):
            found.setdefault(fingerprint(path.read_bytes()), []).append(unique)
        return found

    def _keywords(self, native_id: str) -> list[str]:
        path = self.base / native_id / KEYWORDS_FILE
        if not path.exists():
            return []
        keywords: list[str] = []
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            number, _, name = line.partition(" ")
            if number.isdigit() and name and int(number) < MAX_KEYWORDS:
                keywords.extend([""] * (int(number) + 1 - len(keywords)))
                keywords[int(number)] = name
        return keywords

    def _write_keywords(self, native_id: str, keywords: list[str]) -> None:
        path = self.base / native_id / KEYWORDS_FILE
        temporary = path.with_name(f"{KEYWORDS_FILE}.{new_unique_name()}")
        temporary.write_text("".join(f"{i} {k}\n" for i, k in enumerate(keywords) if k))
        os.rename(temporary, path)

    # -- discovery (before copying) --------------------------------------------------------

    def check_target(self) -> None:
        """A mailbox's maildir is made by its first copy: the root must be writable."""
        self.check()

    def folder_problem(self, path: tuple[str, ...], kind: str) -> str:
        """Maildir++ keeps a whole folder path in one directory name (``.a.b``), which the
        file system limits to 255 bytes (NAME_MAX)."""
        if len(os.fsencode(folder_dir_name(path))) > MAX_FOLDER_NAME:
            return f"its directory name would be longer than {MAX_FOLDER_NAME} bytes"
        return super().folder_problem(path, kind)


def _flags_from_name(filename: str, keywords: list[str]) -> frozenset[str]:
    _, _, info = filename.partition(":2,")
    flags = set()
    for letter in info:
        if letter in SYSTEM_FLAGS:
            flags.add(SYSTEM_FLAGS[letter])
        elif "a" <= letter <= "z" and ord(letter) - ord("a") < len(keywords):
            flags.add(keywords[ord(letter) - ord("a")])
    flags.discard("")
    return frozenset(flags)


def _info_letters(flags, keywords: list[str]) -> str:
    """The ``:2,`` letters for ``flags``, numbering unknown keywords in ``keywords`` (in place)."""
    letters = set()
    for flag in flags:
        if flag in FLAG_LETTERS:
            letters.add(FLAG_LETTERS[flag])
        elif not flag.startswith("\\"):  # \Recent and unknown system flags cannot be stored
            if flag not in keywords:
                if len(keywords) >= MAX_KEYWORDS:
                    raise ValueError(f"A maildir folder holds at most {MAX_KEYWORDS} keywords.")
                keywords.append(flag)
            letters.add(chr(ord("a") + keywords.index(flag)))
    return "".join(sorted(letters))
