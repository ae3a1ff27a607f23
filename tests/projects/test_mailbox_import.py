import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from mailboxes.csvio import CsvImportError, import_mailboxes
from mailboxes.models import Mailbox

GOOD = (
    "source_address,target_address,display_name\r\n"
    "ann@old.example,ann@new.example,Ann Æsir\r\n"
    'bob@old.example,bob@new.example,"Bob, the builder"\r\n'
)


def addresses(project):
    return sorted(project.mailboxes.values_list("source_address", "target_address", "display_name"))


@pytest.mark.django_db
class TestImportMailboxes:
    def test_good_file_imports_every_row(self, project):
        result = import_mailboxes(project, GOOD.encode())
        assert (result.created, result.updated, result.unchanged) == (2, 0, 0)
        assert addresses(project) == [
            ("ann@old.example", "ann@new.example", "Ann Æsir"),
            ("bob@old.example", "bob@new.example", "Bob, the builder"),
        ]

    def test_reimport_changes_nothing(self, project):
        import_mailboxes(project, GOOD.encode())
        before = list(project.mailboxes.values())
        result = import_mailboxes(project, GOOD.encode())
        assert (result.created, result.updated, result.unchanged) == (0, 0, 2)
        assert list(project.mailboxes.values()) == before

    def test_bom_and_semicolons(self, project):
        data = "\ufeff" + GOOD.replace(",", ";").replace('"Bob; the builder"', "Bob")
        import_mailboxes(project, data.encode("utf-8"))
        assert [a[0] for a in addresses(project)] == ["ann@old.example", "bob@old.example"]

    def test_changed_display_name_updates(self, project):
        import_mailboxes(project, GOOD.encode())
        result = import_mailboxes(project, GOOD.replace("Ann Æsir", "Ann A.").encode())
        assert (result.created, result.updated, result.unchanged) == (0, 1, 1)
        assert project.mailboxes.get(source_address="ann@old.example").display_name == "Ann A."

    @pytest.mark.parametrize(
        ("body", "problem"),
        [
            ("ann@old.example,not-an-address,Ann\n", "Line 3: target_address 'not-an-address'"),
            (
                "ann@old.example,ann2@new.example,Ann\n",
                "Line 3: source_address ann@old.example duplicates line 2",
            ),
            (
                "carl@old.example,ann@new.example,Carl\n",
                "Line 3: target_address ann@new.example duplicates line 2",
            ),
            (",carl@new.example,Carl\n", "Line 3: source_address is missing"),
            ("carl@old.example\n", "Line 3: expected 3 columns"),
            ("carl@old.example,carl@new.example,Carl,extra\n", "Line 3: expected 3 columns"),
        ],
    )
    def test_each_bad_row_kind_is_reported_and_nothing_imported(self, project, body, problem):
        data = "source_address,target_address,display_name\nann@old.example,ann@new.example,A\n"
        with pytest.raises(CsvImportError) as exc:
            import_mailboxes(project, (data + body).encode())
        assert any(p.startswith(problem) for p in exc.value.problems), exc.value.problems
        assert project.mailboxes.count() == 0

    def test_all_bad_rows_listed_at_once(self, project):
        data = GOOD + "x,y,z\n,carl@new.example,Carl\n"
        with pytest.raises(CsvImportError) as exc:
            import_mailboxes(project, data.encode())
        assert [p.split(":")[0] for p in exc.value.problems] == ["Line 4", "Line 4", "Line 5"]
        assert project.mailboxes.count() == 0

    def test_missing_header(self, project):
        with pytest.raises(CsvImportError) as exc:
            import_mailboxes(project, b"ann@old.example,ann@new.example,Ann\n")
        assert exc.value.problems[0].startswith("Line 1: the header must name the columns")

    def test_not_utf8(self, project):
        with pytest.raises(CsvImportError, match="not UTF-8"):
            import_mailboxes(project, GOOD.replace("Æ", "").encode() + "é\n".encode("latin-1"))

    def test_target_owned_by_another_mailbox(self, project):
        import_mailboxes(project, GOOD.encode())
        data = "source_address,target_address\ncarl@old.example,ann@new.example\n"
        with pytest.raises(CsvImportError, match="already belongs to ann@old.example"):
            import_mailboxes(project, data.encode())
        assert project.mailboxes.count() == 2

    def test_same_addresses_in_another_project_are_independent(self, project, alice):
        from tests.conftest import make_project

        other = make_project(members=[alice], client_name="Fabrikam")
        import_mailboxes(project, GOOD.encode())
        assert import_mailboxes(other, GOOD.encode()).created == 2
        assert Mailbox.objects.count() == 4


@pytest.mark.django_db
class TestMailboxImportView:
    def post(self, client, project, text):
        upload = SimpleUploadedFile("users.csv", text.encode(), content_type="text/csv")
        return client.post(reverse("mailbox_import", args=[project.pk]), {"file": upload})

    def test_good_file_redirects_with_summary(self, client, bob, project):
        client.force_login(bob)
        response = self.post(client, project, GOOD)
        assert response.status_code == 302
        assert project.mailboxes.count() == 2

    def test_bad_file_lists_lines_and_imports_nothing(self, client, bob, project):
        client.force_login(bob)
        response = self.post(client, project, GOOD + "bad,row,here\n")
        assert response.status_code == 400
        assert b"Nothing was imported" in response.content
        assert b"Line 4: source_address" in response.content
        assert project.mailboxes.count() == 0

    def test_outsider_cannot_import(self, client, charlie, project):
        client.force_login(charlie)
        assert self.post(client, project, GOOD).status_code == 404
        assert project.mailboxes.count() == 0


@pytest.mark.django_db
class TestMailboxExportView:
    def test_export_round_trips(self, client, bob, project):
        import_mailboxes(project, GOOD.encode())
        client.force_login(bob)
        response = client.get(reverse("mailbox_export", args=[project.pk]))
        assert response["Content-Type"].startswith("text/csv")
        assert response.content.decode() == GOOD
        assert import_mailboxes(project, response.content).unchanged == 2


@pytest.mark.django_db
class TestImportCommand:
    def test_imports_file(self, project, tmp_path, capsys):
        path = tmp_path / "users.csv"
        path.write_text(GOOD)
        call_command("import_mailboxes", project.pk, path)
        assert "2 added" in capsys.readouterr().out
        assert project.mailboxes.count() == 2

    def test_bad_file_fails_with_lines(self, project, tmp_path):
        path = tmp_path / "users.csv"
        path.write_text(GOOD + "bad\n")
        with pytest.raises(CommandError, match="Line 4: expected 3 columns"):
            call_command("import_mailboxes", project.pk, path)
        assert project.mailboxes.count() == 0

    def test_unknown_project(self, tmp_path):
        path = tmp_path / "users.csv"
        path.write_text(GOOD)
        with pytest.raises(CommandError, match="no project 999"):
            call_command("import_mailboxes", 999, path)
