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


WITH_LOGINS = (
    "source_address,target_address,display_name,source_login,source_password,target_login,"
    "target_password\r\n"
    "ann@old.example,ann@new.example,Ann,ann.old,old-secret-1,ann.new,new-secret-1\r\n"
    "bob@old.example,bob@new.example,Bob,bob.old,old-secret-2,,\r\n"
)


# Longer than the database columns (254 and 200): PostgreSQL refuses them, SQLite does not.
LONG_ADDRESS = "a" * 64 + "@" + ".".join(["b" * 60] * 3) + ".example"
LONG_NAME = "N" * 10_000
TOO_LONG = (
    "source_address,target_address,display_name\r\n"
    "ann@old.example,ann@new.example,Ann\r\n"
    f"{LONG_ADDRESS},bob@new.example,Bob\r\n"
    f"carl@old.example,carl@new.example,{LONG_NAME}\r\n"
)


def logins(project):
    return [
        (m.source_address, m.source_login, m.source_password, m.target_login, m.target_password)
        for m in project.mailboxes.order_by("source_address")
    ]


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
            (f"{LONG_ADDRESS},carl@new.example,Carl\n", "Line 3: source_address is longer than"),
            (f"carl@old.example,carl@new.example,{LONG_NAME}\n", "Line 3: display_name is longer"),
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
        other.target.endpoint = "/tmp/elsewhere"
        other.target.save()
        import_mailboxes(project, GOOD.encode())
        assert import_mailboxes(other, GOOD.encode()).created == 2
        assert Mailbox.objects.count() == 4

    def test_a_target_account_another_project_writes_into_is_refused(self, project, alice):
        from tests.conftest import make_project

        other = make_project(members=[alice], client_name="Fabrikam")
        import_mailboxes(project, GOOD.encode())
        with pytest.raises(CsvImportError) as exc:
            import_mailboxes(other, GOOD.encode())
        assert exc.value.problems[0].startswith(
            "Line 2: ann@new.example would write into the target account ann@new.example, "
            "which project Contoso already writes into"
        )
        assert other.mailboxes.count() == 0


@pytest.mark.django_db
class TestLoginColumns:
    def test_logins_and_passwords_are_imported(self, project):
        result = import_mailboxes(project, WITH_LOGINS.encode())
        assert (result.created, result.updated, result.unchanged) == (2, 0, 0)
        assert logins(project) == [
            ("ann@old.example", "ann.old", "old-secret-1", "ann.new", "new-secret-1"),
            ("bob@old.example", "bob.old", "old-secret-2", "", ""),
        ]
        ann = project.mailboxes.get(source_address="ann@old.example")
        assert ann.login_label("source") == "ann.old"

    @pytest.mark.parametrize(
        "header",
        [
            "Source Address,Target Address,Display Name,Source Login,Source Password,"
            "Target Login,Target Password",
            "source-address;target-address;display-name;source-login;source-password;"
            "target-login;target-password",
            "SOURCE_ADDRESS , target__address,Display_Name,source login,Source-Password,"
            "TARGET LOGIN,target_PASSWORD",
        ],
    )
    def test_header_names_match_whatever_the_case_spaces_underscores_hyphens(self, project, header):
        body = WITH_LOGINS.split("\r\n", 1)[1]
        if ";" in header:
            body = body.replace(",", ";")
        import_mailboxes(project, f"{header}\r\n{body}".encode())
        assert logins(project)[0] == (
            "ann@old.example",
            "ann.old",
            "old-secret-1",
            "ann.new",
            "new-secret-1",
        )

    def test_columns_in_any_order_and_only_some_of_them(self, project):
        data = (
            "target_login,Target Address,source_address\nann.new,ann@new.example,ann@old.example\n"
        )
        import_mailboxes(project, data.encode())
        assert logins(project) == [("ann@old.example", "", "", "ann.new", "")]

    def test_reimport_updates_given_values_and_keeps_empty_ones(self, project):
        import_mailboxes(project, WITH_LOGINS.encode())
        data = (
            "source_address,target_address,display_name,source_login,source_password\n"
            "ann@old.example,ann@new.example,Ann,,changed-secret\n"
            "bob@old.example,bob@new.example,Bob,,\n"
        )
        result = import_mailboxes(project, data.encode())
        assert (result.created, result.updated, result.unchanged) == (0, 1, 1)
        assert result.outcomes == [("ann@old.example", "updated"), ("bob@old.example", "unchanged")]
        assert logins(project) == [
            ("ann@old.example", "ann.old", "changed-secret", "ann.new", "new-secret-1"),
            ("bob@old.example", "bob.old", "old-secret-2", "", ""),
        ]

    def test_reimporting_the_same_file_changes_nothing(self, project):
        import_mailboxes(project, WITH_LOGINS.encode())
        before = list(project.mailboxes.values())
        result = import_mailboxes(project, WITH_LOGINS.encode())
        assert (result.created, result.updated, result.unchanged) == (0, 0, 2)
        assert list(project.mailboxes.values()) == before

    def test_a_file_without_display_names_keeps_them(self, project):
        import_mailboxes(project, GOOD.encode())
        data = "source_address,target_address\nann@old.example,ann@new.example\n"
        assert import_mailboxes(project, data.encode()).unchanged == 1
        assert project.mailboxes.get(source_address="ann@old.example").display_name == "Ann Æsir"

    def test_unknown_and_repeated_columns_are_refused(self, project):
        data = "source_address,target_address,source_pasword,Source Login,source-login\n"
        with pytest.raises(CsvImportError) as exc:
            import_mailboxes(project, (data + "a@o.example,a@n.example,x,y,z\n").encode())
        assert exc.value.problems == [
            "Line 1: unknown column 'source_pasword' (known: source_address, target_address, "
            "display_name, source_login, source_password, target_login, target_password).",
            "Line 1: the column source_login appears more than once.",
        ]

    def test_a_password_without_a_login_is_refused_and_never_quoted(self, project):
        data = (
            "source_address,target_address,target_password\n"
            "ann@old.example,ann@new.example,hunter2\n"
        )
        with pytest.raises(CsvImportError) as exc:
            import_mailboxes(project, data.encode())
        assert exc.value.problems == [
            "Line 2: target_password is given without a target_login: the password of a "
            "mailbox is used only with its own login."
        ]
        assert "hunter2" not in str(exc.value)

    def test_a_password_for_a_mailbox_that_has_a_login_already(self, project):
        import_mailboxes(project, WITH_LOGINS.encode())
        data = "source_address,target_address,target_password\nann@old.example,ann@new.example,n2\n"
        import_mailboxes(project, data.encode())
        assert logins(project)[0][3:] == ("ann.new", "n2")

    def test_two_mailboxes_on_one_login_are_refused(self, project):
        data = (
            "source_address,target_address,source_login,source_password\n"
            "ann@old.example,ann@new.example,shared,s3cret-a\n"
            "bob@old.example,bob@new.example,Shared,s3cret-b\n"
        )
        with pytest.raises(CsvImportError) as exc:
            import_mailboxes(project, data.encode())
        assert exc.value.problems == [
            "Lines 2 and 3: ann@old.example and bob@old.example would all log in to the source "
            "as shared: one account would be copied for several mailboxes. Give each its own "
            "login."
        ]
        assert project.mailboxes.count() == 0

    def test_a_login_clashing_with_an_existing_mailbox_is_refused(self, project):
        import_mailboxes(project, WITH_LOGINS.encode())
        data = (
            "source_address,target_address,source_login\ncarl@old.example,c@new.example,bob.old\n"
        )
        with pytest.raises(CsvImportError) as exc:
            import_mailboxes(project, data.encode())
        assert exc.value.problems[0].startswith(
            "Line 2: bob@old.example and carl@old.example would all log in to the source as bob.old"
        )
        assert project.mailboxes.count() == 2


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

    def test_page_explains_the_columns_and_links_the_sample(self, client, bob, project):
        client.force_login(bob)
        response = client.get(reverse("mailbox_import", args=[project.pk]))
        page = response.content.decode()
        assert reverse("mailbox_sample", args=[project.pk]) in page
        assert "source_login,source_password,target_login,target_password" in page
        assert "Who logs in" in page

    def test_too_long_fields_are_line_errors_not_a_server_error(self, client, bob, project):
        client.force_login(bob)
        response = self.post(client, project, TOO_LONG)
        assert response.status_code == 400
        page = response.content.decode()
        assert "Nothing was imported" in page
        assert "Line 3: source_address is longer than 254 characters." in page
        assert "Line 4: display_name is longer than 200 characters." in page
        assert LONG_NAME not in page
        assert project.mailboxes.count() == 0

    def test_problems_never_show_a_password(self, client, bob, project):
        client.force_login(bob)
        text = "source_address,target_address,source_password\nann@old.example,bad,pa55word\n"
        response = self.post(client, project, text)
        assert response.status_code == 400
        assert b"Line 2: target_address" in response.content
        assert b"pa55word" not in response.content

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
        assert response.content.decode() == (
            "source_address,target_address,display_name,source_login,target_login\r\n"
            "ann@old.example,ann@new.example,Ann Æsir,,\r\n"
            'bob@old.example,bob@new.example,"Bob, the builder",,\r\n'
        )
        assert import_mailboxes(project, response.content).unchanged == 2

    def test_export_writes_logins_and_never_a_password(self, client, bob, project):
        import_mailboxes(project, WITH_LOGINS.encode())
        client.force_login(bob)
        response = client.get(reverse("mailbox_export", args=[project.pk]))
        text = response.content.decode()
        assert text.splitlines()[0] == (
            "source_address,target_address,display_name,source_login,target_login"
        )
        assert "ann@old.example,ann@new.example,Ann,ann.old,ann.new" in text
        assert "password" not in text and "secret" not in text
        # Re-importing the export keeps the passwords it does not carry.
        assert import_mailboxes(project, response.content).unchanged == 2
        ann = project.mailboxes.get(source_address="ann@old.example")
        assert (ann.source_password, ann.target_password) == ("old-secret-1", "new-secret-1")


@pytest.mark.django_db
class TestSampleView:
    def test_the_sample_imports_as_it_is(self, client, bob, project):
        client.force_login(bob)
        response = client.get(reverse("mailbox_sample", args=[project.pk]))
        assert response["Content-Type"].startswith("text/csv")
        assert response["Content-Disposition"] == (
            'attachment; filename="contoso-mailboxes-sample.csv"'
        )
        header = response.content.decode().splitlines()[0]
        assert header == (
            "source_address,target_address,display_name,source_login,source_password,"
            "target_login,target_password"
        )
        assert import_mailboxes(project, response.content).created == 3

    def test_outsider_gets_404(self, client, charlie, project):
        client.force_login(charlie)
        assert client.get(reverse("mailbox_sample", args=[project.pk])).status_code == 404


@pytest.mark.django_db
class TestImportCommand:
    def test_imports_file_one_line_per_mailbox(self, project, tmp_path, capsys):
        path = tmp_path / "users.csv"
        path.write_text(GOOD)
        call_command("import_mailboxes", project.pk, path)
        assert capsys.readouterr().out == "ann@old.example created\nbob@old.example created\n"
        assert project.mailboxes.count() == 2
        path.write_text(
            "source_address,target_address,display_name,source_login\n"
            "ann@old.example,ann@new.example,Ann Æsir,ann.old\n"
            'bob@old.example,bob@new.example,"Bob, the builder",\n'
        )
        call_command("import_mailboxes", project.pk, path)
        assert capsys.readouterr().out == "ann@old.example updated\nbob@old.example unchanged\n"
        path.write_text(WITH_LOGINS)
        call_command("import_mailboxes", project.pk, path)
        assert capsys.readouterr().out == "ann@old.example updated\nbob@old.example updated\n"
        call_command("import_mailboxes", project.pk, path)
        assert capsys.readouterr().out == "ann@old.example unchanged\nbob@old.example unchanged\n"

    def test_bad_file_fails_with_lines(self, project, tmp_path):
        path = tmp_path / "users.csv"
        path.write_text(GOOD + "bad\n")
        with pytest.raises(CommandError, match="Line 4: expected 3 columns"):
            call_command("import_mailboxes", project.pk, path)
        assert project.mailboxes.count() == 0

    def test_too_long_fields_fail_with_lines(self, project, tmp_path):
        path = tmp_path / "users.csv"
        path.write_text(TOO_LONG)
        with pytest.raises(CommandError) as caught:
            call_command("import_mailboxes", project.pk, path)
        assert caught.value.returncode == 1
        assert str(caught.value).splitlines()[1:] == [
            "  Line 3: source_address is longer than 254 characters.",
            "  Line 4: display_name is longer than 200 characters.",
        ]
        assert project.mailboxes.count() == 0

    def test_unknown_project(self, tmp_path):
        path = tmp_path / "users.csv"
        path.write_text(GOOD)
        with pytest.raises(CommandError, match="no project 999") as caught:
            call_command("import_mailboxes", 999, path)
        assert caught.value.returncode == 2

    def test_every_problem_is_printed_and_no_password(self, project, tmp_path):
        path = tmp_path / "users.csv"
        path.write_text(
            "source_address,target_address,source_login,source_password\n"
            "ann@old.example,ann@new.example,,pw-without-login\n"
            "bad,bob@new.example,bob,bobs-secret\n"
        )
        with pytest.raises(CommandError) as caught:
            call_command("import_mailboxes", project.pk, path)
        message = str(caught.value)
        assert message.startswith("Nothing was imported:\n")
        assert "Line 3: source_address 'bad' is not a valid email address." in message
        assert "pw-without-login" not in message and "bobs-secret" not in message
        assert caught.value.returncode == 1
        assert project.mailboxes.count() == 0
