"""Mailbox lists in and out as CSV: all-or-nothing imports with every bad row reported."""

import csv
import io
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.http import HttpResponse
from django.utils.text import slugify

from .models import Mailbox

COLUMNS = ("source_address", "target_address", "display_name")
REQUIRED = ("source_address", "target_address")
MAX_BYTES = 20 * 1024 * 1024


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

    def __str__(self):
        return f"{self.created} added, {self.updated} updated, {self.unchanged} unchanged"


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
    header = [(name or "").strip().lower() for name in fieldnames or []]
    missing = [c for c in REQUIRED if c not in header]
    if not header or missing:
        return [
            "Line 1: the header must name the columns "
            f"{','.join(COLUMNS)} (missing: {', '.join(missing) or 'all'})."
        ]
    return []


def _address(value, line, column, problems):
    address = (value or "").strip().lower()
    if not address:
        problems.append(f"Line {line}: {column} is missing.")
        return None
    try:
        validate_email(address)
    except ValidationError:
        problems.append(f"Line {line}: {column} {address!r} is not a valid email address.")
        return None
    return address


def parse(data: bytes) -> list[dict]:
    """Rows as dicts, or CsvImportError listing every problem with its line number."""
    reader = _reader(_decode(data))
    problems = _check_header(reader.fieldnames)
    if problems:
        raise CsvImportError(problems)
    reader.fieldnames = [name.strip().lower() for name in reader.fieldnames]
    rows, seen = [], {"source_address": {}, "target_address": {}}
    for record in reader:
        line = reader.line_num
        if None in record or any(record.get(c) is None for c in REQUIRED):
            problems.append(f"Line {line}: expected {len(reader.fieldnames)} columns.")
            continue
        row = {c: _address(record.get(c), line, c, problems) for c in REQUIRED}
        row["display_name"] = (record.get("display_name") or "").strip()
        row["line"] = line
        for column in REQUIRED:
            address = row[column]
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


def _conflicts(project, rows) -> list[str]:
    """A target address already used by another source in the project cannot be imported."""
    owners = dict(project.mailboxes.values_list("target_address", "source_address"))
    problems = []
    for row in rows:
        owner = owners.get(row["target_address"])
        if owner and owner != row["source_address"]:
            problems.append(
                f"Line {row['line']}: target_address {row['target_address']} "
                f"already belongs to {owner}."
            )
    return problems


def import_mailboxes(project, data: bytes) -> ImportResult:
    rows = parse(data)
    problems = _conflicts(project, rows)
    if problems:
        raise CsvImportError(problems)
    result = ImportResult()
    with transaction.atomic():
        existing = {m.source_address: m for m in project.mailboxes.select_for_update()}
        new = []
        for row in rows:
            mailbox = existing.get(row["source_address"])
            fields = {c: row[c] for c in COLUMNS}
            if mailbox is None:
                new.append(Mailbox(project=project, **fields))
            elif (mailbox.target_address, mailbox.display_name) == (
                row["target_address"],
                row["display_name"],
            ):
                result.unchanged += 1
            else:
                mailbox.target_address = row["target_address"]
                mailbox.display_name = row["display_name"]
                mailbox.save(update_fields=["target_address", "display_name"])
                result.updated += 1
        Mailbox.objects.bulk_create(new, batch_size=1000)
        result.created = len(new)
    return result


def export_mailboxes(project, out) -> None:
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in project.mailboxes.order_by("source_address").values_list(*COLUMNS):
        writer.writerow(row)


def csv_attachment(project, what: str) -> HttpResponse:
    """An empty CSV download named after the project, for a view to write rows into."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    filename = f"{slugify(project.client_name) or 'project'}-{what}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
