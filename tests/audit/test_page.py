"""The audit page, its filters and its CSV."""

import csv
import io
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from audit.log import Action, record
from audit.models import AuditEntry
from tests.rendered import caption, options, table_rows


def shown(response) -> list[str]:
    """The "What" of each entry the page lists, top to bottom."""
    return [row[4] for row in table_rows(response, "audit")]


def entry_at(project, when, action=Action.PASS_STARTED, detail="", actor_label="command line"):
    entry = record(None, project, action, detail, actor_label=actor_label)
    # The app never moves an entry in time; the test needs fixed times to read them back.
    AuditEntry._base_manager.filter(pk=entry.pk).update(at=when)
    return entry


@pytest.fixture
def log(project, alice):
    project.time_zone = "Europe/Paris"
    project.save(update_fields=["time_zone"])
    entry_at(project, datetime(2026, 12, 1, 8, 30, tzinfo=UTC), detail="First", actor_label="alice")
    entry_at(
        project,
        datetime(2026, 12, 2, 23, 30, tzinfo=UTC),
        Action.CHECKLIST_TICKED,
        "Ticked “Lower TTLs”",
        "bob",
    )
    entry_at(
        project, datetime(2026, 12, 3, 9, 0, tzinfo=UTC), Action.PASS_PAUSED, "Last", "schedule"
    )
    return project


@pytest.mark.django_db
class TestAuditLogPage:
    def test_newest_first_in_the_project_time_zone(self, client, bob, log):
        client.force_login(bob)
        response = client.get(reverse("audit_log", args=[log.pk]))
        html = response.content.decode()
        assert shown(response) == ["Last", "Ticked “Lower TTLs”", "First"]
        # 23:30 UTC on the 2nd is 00:30 on the 3rd in Paris.
        assert "2026-12-03 00:30:00" in html and "2026-12-01 09:30:00" in html
        assert "Entries 1–3 of 3, newest first" in html
        assert "Ticked “Lower TTLs”" in html and ">schedule<" in html

    def test_linked_from_the_project_page(self, client, bob, project):
        client.force_login(bob)
        page = client.get(reverse("project_detail", args=[project.pk])).content.decode()
        assert reverse("audit_log", args=[project.pk]) in page

    def test_fifty_a_page_in_a_fixed_number_of_queries(
        self, client, bob, project, django_assert_max_num_queries
    ):
        for number in range(120):
            record(None, project, Action.PASS_STARTED, f"entry {number}")
        client.force_login(bob)
        url = reverse("audit_log", args=[project.pk])
        with django_assert_max_num_queries(9) as few:
            first = client.get(url)
        with django_assert_max_num_queries(len(few.captured_queries)):
            third = client.get(url, {"page": 3})
        assert len(shown(first)) == 50
        assert caption(first, "audit") == "Entries 1–50 of 120, newest first"
        assert shown(third) == [f"entry {n}" for n in range(19, -1, -1)]
        assert caption(third, "audit") == "Entries 101–120 of 120, newest first"

    def test_htmx_gets_only_the_entries(self, client, bob, log):
        client.force_login(bob)
        response = client.get(reverse("audit_log", args=[log.pk]), HTTP_HX_REQUEST="true")
        html = response.content.decode()
        assert html.lstrip().startswith('<section id="entries"') and "<html" not in html
        assert "Last" in html


@pytest.mark.django_db
class TestAuditLogFilters:
    def get(self, client, project, **params):
        return client.get(reverse("audit_log", args=[project.pk]), params)

    def test_by_actor_and_action(self, client, bob, log):
        client.force_login(bob)
        assert shown(self.get(client, log, actor="bob")) == ["Ticked “Lower TTLs”"]
        assert shown(self.get(client, log, action="pass_paused")) == ["Last"]

    def test_dates_are_days_in_the_project_time_zone(self, client, bob, log):
        client.force_login(bob)
        # The tick at 23:30 UTC on the 2nd happened on the 3rd in Paris.
        response = self.get(client, log, date_from="2026-12-03", date_to="2026-12-03")
        assert shown(response) == ["Last", "Ticked “Lower TTLs”"]
        assert shown(self.get(client, log, date_to="2026-12-02")) == ["First"]

    def test_the_actor_choices_are_those_in_the_log(self, client, bob, log):
        client.force_login(bob)
        assert options(self.get(client, log), "actor") == ["", "alice", "bob", "schedule"]

    def test_a_hand_edited_filter_filters_nothing(self, client, bob, log):
        client.force_login(bob)
        response = self.get(client, log, date_from="yesterday")
        assert shown(response) == ["Last", "Ticked “Lower TTLs”", "First"]


@pytest.mark.django_db
class TestAuditCsv:
    def download(self, client, project, **params):
        response = client.get(reverse("audit_csv", args=[project.pk]), params)
        assert response["Content-Disposition"] == 'attachment; filename="contoso-audit.csv"'
        return list(csv.reader(io.StringIO(response.content.decode())))

    def test_the_filtered_entries_then_its_own_download_is_logged(self, client, bob, log):
        client.force_login(bob)
        table = self.download(client, log, actor="bob")
        assert table == [
            ["When", "Time zone", "Who", "From", "Action", "What"],
            [
                "2026-12-03T00:30:00+01:00",
                "Europe/Paris",
                "bob",
                "",
                "Checklist ticked",
                "Ticked “Lower TTLs”",
            ],
        ]
        newest = log.audit_entries.first()
        assert (newest.actor_label, newest.action, newest.remote_addr) == (
            "bob",
            Action.EXPORT_DOWNLOADED,
            "127.0.0.1",
        )
        assert newest.detail == "Downloaded the audit log (CSV)"

    def test_formulas_are_neutralised(self, client, bob, project):
        record(None, project, Action.MAILBOX_ADDED, '=HYPERLINK("http://evil.example")')
        client.force_login(bob)
        assert self.download(client, project)[1][5] == '\'=HYPERLINK("http://evil.example")'


@pytest.mark.django_db
class TestAccess:
    @pytest.mark.parametrize("name", ["audit_log", "audit_csv"])
    def test_outsider_gets_404_anonymous_logs_in(self, client, charlie, log, name):
        url = reverse(name, args=[log.pk])
        assert client.get(url)["Location"].startswith(reverse("login"))
        client.force_login(charlie)
        assert client.get(url).status_code == 404
        assert log.audit_entries.count() == 3
