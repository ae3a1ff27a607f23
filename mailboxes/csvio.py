"""Mailbox lists in and out as CSV: all-or-nothing imports with every bad row reported.

Columns: ``source_address,target_address`` (required), ``display_name`` and the mailbox's own
accounts ``source_login,source_password,target_login,target_password`` (optional; README "Who
logs in"). Header names match case-insensitively, spaces, underscores and hyphens alike. The
export writes the logins but never a password, and no message here ever quotes one. The export
quotes a cell that a spreadsheet would run as a formula (``csvsafe``); the import drops that
quote again, so an exported file imports back unchanged.
"""

import csv
import io
import re
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.http import HttpResponse
from django.utils.text import slugify

from . import csvsafe, identity
from .models import Mailbox

ADDRESSES = ("source_address", "target_address")
LOGINS = ("source_login", "target_login")
PASSWORDS = ("source_password", "target_password")
COLUMNS = (
    *ADDRESSES,
    "display_name",
    "source_login",
    "source_password",
    "target_login",
    "target_password",
)
EXPORT_COLUMNS = (*ADDRESSES, "display_name", *LOGINS)
# Optional columns a re-import leaves alone when the file gives them empty.
KEPT_WHEN_EMPTY = (*LOGINS, *PASSWORDS)
MAX_BYTES = 20 * 1024 * 1024
# The database's limits: PostgreSQL refuses a longer value (SQLite would store it).
MAX_LENGTH = {
    column: Mailbox._meta.get_field(column).max_length
    for column in (*ADDRESSES, "display_name", *LOGINS)
}

SAMPLE = (
    "source_address,target_address,display_name,"
    "source_login,source_password,target_login,target_password\r\n"
    "ann@old.example,ann@new.example,Ann Example,ann,ann-old-password,,\r\n"
    "bob@old.example,bob@new.example,Bob Example,bob.smith,bob-old-password,"
    "bob@new.example,bob-new-password\r\n"
    "carl@old.example,carl@new.example,Carl Example,,,,\r\n"
)


class CsvImportError(Exception):
    """The file as a whole or some rows are bad; ``problems`` lists them all."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    # (source address, "created" | "updated" | "unchanged") in the file's order.
    outcomes: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self):
        return f"{self.created} added, {self.updated} updated, {self.unchanged} unchanged"

    def note(self, address: str, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)
        self.outcomes.append((address, outcome))


@dataclass
class Row:
    """One mailbox line of the file; what ``identity.conflicts`` reads."""

    line: int
    source_address: str
    target_address: str
    display_name: str | None  # None: the file has no such column (a re-import keeps the name)
    source_login: str = ""
    source_password: str = field(default="", repr=False)
    target_login: str = ""
    target_password: str = field(default="", repr=False)


def column_name(header: str) -> str:
    """ "Source Login", "source-login" and "SOURCE_LOGIN" all name ``source_login``."""
    return re.sub(r"[\s_-]+", "_", (header or "").strip().lower())


def _decode(data: bytes) -> str:
    if len(data) > MAX_BYTES:
        raise CsvImportError([f"The file is larger than {MAX_BYTES // (1024 * 1024)} MB."])
    try:
        # utf-8-sig drops a byte-order mark when there is one.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvImportError([f"The file is not UTF-8 (byte {exc.start + 1})."]) from None


def _reader(text: str) -> csv.DictReader:
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    return csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)


def _check_header(fieldnames) -> list[str]:
    header = [column_name(name) for name in fieldnames or []]
    missing = [c for c in ADDRESSES if c not in header]
    if not header or missing:
        return [
            "Line 1: the header must name the columns "
            f"{','.join(ADDRESSES)} (missing: {', '.join(missing) or 'all'}); optional: "
            f"{', '.join(COLUMNS[2:])}."
        ]
    problems = []
    # An unknown column is refused rather than ignored: a misspelt password column would
    # otherwise import mailboxes that then log in the wrong way.
    unknown = [
        name for name, column in zip(fieldnames, header, strict=True) if column not in COLUMNS
    ]
    if unknown:
        problems.append(
            f"Line 1: unknown column{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(name) for name in unknown)} (known: {', '.join(COLUMNS)})."
        )
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:
        several = len(twice) > 1
        problems.append(
            f"Line 1: the column{'s' if several else ''} {', '.join(twice)} "
            f"appear{'' if several else 's'} more than once."
        )
    return problems


def _text(value, line, column, problems) -> str:
    """The cell as the mailbox will hold it: trimmed, without the export's formula quote."""
    text = csvsafe.uncell((value or "").strip())
    if len(text) > MAX_LENGTH[column]:
        problems.append(f"Line {line}: {column} is longer than {MAX_LENGTH[column]} characters.")
    return text


def _address(value, line, column, problems):
    address = _text(value, line, column, problems).lower()
    if not address:
        problems.append(f"Line {line}: {column} is missing.")
        return None
    if len(address) > MAX_LENGTH[column]:
        return None
    try:
        validate_email(address)
    except ValidationError:
        problems.append(f"Line {line}: {column} {address!r} is not a valid email address.")
        return None
    return address


def parse(data: bytes) -> list[Row]:
    """The file's rows, or CsvImportError listing every problem with its line number."""
    reader = _reader(_decode(data))
    problems = _check_header(reader.fieldnames)
    if problems:
        raise CsvImportError(problems)
    reader.fieldnames = [column_name(name) for name in reader.fieldnames]
    has_name = "display_name" in reader.fieldnames
    rows, seen = [], {column: {} for column in ADDRESSES}
    for record in reader:
        line = reader.line_num
        if None in record or any(value is None for value in record.values()):
            problems.append(f"Line {line}: expected {len(reader.fieldnames)} columns.")
            continue
        source, target = (_address(record.get(c), line, c, problems) for c in ADDRESSES)
        row = Row(
            line,
            source,
            target,
            _text(record.get("display_name"), line, "display_name", problems) if has_name else None,
            **{c: _text(record.get(c), line, c, problems) for c in LOGINS},
            # Passwords are taken as written: a leading or trailing space may be part of one.
            **{c: record.get(c) or "" for c in PASSWORDS},
        )
        for column in ADDRESSES:
            address = getattr(row, column)
            if address and address in seen[column]:
                problems.append(
                    f"Line {line}: {column} {address} duplicates line {seen[column][address]}."
                )
            elif address:
                seen[column][address] = line
        rows.append(row)
    if problems:
        raise CsvImportError(problems)
    if not rows:
        raise CsvImportError(["The file has a header but no mailboxes."])
    return rows


def _merged(row: Row, mailbox: Mailbox | None) -> Row:
    """What the mailbox will be after the import: empty login columns keep what it has."""
    if mailbox is None:
        return row
    kept = {c: getattr(row, c) or getattr(mailbox, c) for c in KEPT_WHEN_EMPTY}
    name = mailbox.display_name if row.display_name is None else row.display_name
    return Row(row.line, row.source_address, row.target_address, name, **kept)


def _problems(project, rows: list[Row], existing: dict[str, Mailbox]) -> list[str]:
    problems = []
    owners = {m.target_address: m.source_address for m in existing.values()}
    for row in rows:
        owner = owners.get(row.target_address)
        if owner and owner != row.source_address:
            problems.append(
                f"Line {row.line}: target_address {row.target_address} already belongs to {owner}."
            )
        for side in ("source", "target"):
            if getattr(row, f"{side}_password") and not getattr(row, f"{side}_login"):
                problems.append(
                    f"Line {row.line}: {side}_password is given without a {side}_login: the "
                    f"password of a mailbox is used only with its own login."
                )
    if problems:
        return problems
    # The identity guard over the project as it would be: the file's rows (with the logins
    # they keep) and the mailboxes the file does not mention.
    merged = {row.source_address: row for row in rows}
    resulting = [*merged.values()]
    resulting += [m for address, m in existing.items() if address not in merged]
    lines = {}
    for row in rows:
        lines[row.source_address] = lines[row.target_address] = row.line
    for conflict in identity.conflicts(project, resulting):
        involved = sorted({lines[a] for a in conflict.addresses if a in lines})
        if involved:
            where = " and ".join(str(line) for line in involved)
            problems.append(f"Line{'s' if len(involved) > 1 else ''} {where}: {conflict.message}")
    return problems


def _changes(mailbox: Mailbox, row: Row) -> list[str]:
    """The fields of ``mailbox`` that ``row`` (already merged) changes."""
    fields = ["target_address", "display_name", *KEPT_WHEN_EMPTY]
    return [name for name in fields if getattr(mailbox, name) != getattr(row, name)]


def import_mailboxes(project, data: bytes) -> ImportResult:
    rows = parse(data)
    result = ImportResult()
    with transaction.atomic():
        existing = {m.source_address: m for m in project.mailboxes.select_for_update()}
        merged = [_merged(row, existing.get(row.source_address)) for row in rows]
        problems = _problems(project, merged, existing)
        if problems:
            raise CsvImportError(problems)
        new = []
        for row in merged:
            mailbox = existing.get(row.source_address)
            if mailbox is None:
                new.append(
                    Mailbox(
                        project=project,
                        source_address=row.source_address,
                        target_address=row.target_address,
                        display_name=row.display_name or "",
                        **{c: getattr(row, c) for c in KEPT_WHEN_EMPTY},
                    )
                )
                result.note(row.source_address, "created")
                continue
            changed = _changes(mailbox, row)
            for name in changed:
                setattr(mailbox, name, getattr(row, name))
            if changed:
                mailbox.save(update_fields=changed)
            result.note(row.source_address, "updated" if changed else "unchanged")
        Mailbox.objects.bulk_create(new, batch_size=1000)
    return result


def export_mailboxes(project, out) -> None:
    """The project's mailboxes with their logins; never a password (no column for them)."""
    writer = csvsafe.writer(out, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    for row in project.mailboxes.order_by("source_address").values_list(*EXPORT_COLUMNS):
        writer.writerow(row)


def csv_attachment(project, what: str) -> HttpResponse:
    """An empty CSV download named after the project, for a view to write rows into."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    filename = f"{slugify(project.client_name) or 'project'}-{what}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
