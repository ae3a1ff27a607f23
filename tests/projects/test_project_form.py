import pytest
from django.urls import reverse

from projects.models import Project

from .helpers import form_data


@pytest.mark.django_db
class TestProjectCreate:
    def test_creates_project_tenants_domains_and_membership(self, client, alice):
        client.force_login(alice)
        response = client.post(reverse("project_create"), form_data())
        project = Project.objects.get(client_name="Fabrikam")
        assert response.status_code == 302 and response["Location"] == project.get_absolute_url()
        assert list(project.members.all()) == [alice]
        assert [d.name for d in project.domains.all()] == [
            "fabrikam.example",
            "mail.fabrikam.example",
        ]
        assert project.source.secret == "Winter2026!" and project.target.kind == "ews"

    def test_bad_input_saves_nothing(self, client, alice):
        client.force_login(alice)
        data = form_data(**{"domains": "not a domain", "target-oauth_client_id": ""})
        response = client.post(reverse("project_create"), data)
        assert response.status_code == 200
        assert b"not a valid domain name" in response.content
        assert b"Required for OAuth2 client credentials" in response.content
        assert not Project.objects.exists()

    def test_imap_needs_a_host(self, client, alice):
        client.force_login(alice)
        response = client.post(reverse("project_create"), form_data(**{"source-endpoint": ""}))
        assert b"Give the IMAP host." in response.content


@pytest.mark.django_db
class TestProjectEdit:
    def test_empty_secret_keeps_the_stored_one(self, client, bob, project):
        project.source.secret = "Old-secret"
        project.source.save()
        client.force_login(bob)
        data = form_data(**{"source-secret": "", "domains": "contoso.example"})
        response = client.post(reverse("project_edit", args=[project.pk]), data)
        assert response.status_code == 302
        project.refresh_from_db()
        assert project.source.secret == "Old-secret"
        assert [d.name for d in project.domains.all()] == ["contoso.example"]

    def test_editor_stays_a_member(self, client, bob, alice, project):
        client.force_login(bob)
        data = form_data(members=[alice.pk])
        client.post(reverse("project_edit", args=[project.pk]), data)
        assert set(project.members.all()) == {alice, bob}

    def test_outsider_cannot_edit(self, client, charlie, project):
        client.force_login(charlie)
        response = client.post(reverse("project_edit", args=[project.pk]), form_data())
        assert response.status_code == 404
        project.refresh_from_db()
        assert project.client_name == "Contoso"


@pytest.mark.django_db
class TestFolderMapping:
    def test_renames_and_exclusions_are_stored_and_shown_again(self, client, bob, project):
        client.force_login(bob)
        mapping = "Old Mail/2019 => Archive/2019\n\nJunk => -\n"
        data = form_data(folder_mappings=mapping)
        assert client.post(reverse("project_edit", args=[project.pk]), data).status_code == 302
        stored = project.folder_mappings.values_list("source_path", "target_path", "exclude")
        assert sorted(stored) == [("Junk", "", True), ("Old Mail/2019", "Archive/2019", False)]
        page = client.get(reverse("project_edit", args=[project.pk])).content.decode()
        assert "Junk =&gt; -" in page and "Old Mail/2019 =&gt; Archive/2019" in page

    def test_bad_lines_are_listed_and_nothing_changes(self, client, bob, project):
        project.folder_mappings.create(source_path="Junk", exclude=True)
        client.force_login(bob)
        data = form_data(folder_mappings="Junk -> Trash\nA => B\nA => C\n")
        response = client.post(reverse("project_edit", args=[project.pk]), data)
        assert response.status_code == 200
        assert "Line 1: write" in response.content.decode()
        assert "Line 3: A is mapped twice." in response.content.decode()
        assert list(project.folder_mappings.values_list("source_path", flat=True)) == ["Junk"]


@pytest.mark.django_db
class TestTimeZone:
    def test_chosen_stored_shown_again_and_kept_when_left_out(self, client, bob, project):
        client.force_login(bob)
        url = reverse("project_edit", args=[project.pk])
        page = client.get(url).content.decode()
        assert '<option value="UTC" selected>UTC</option>' in page
        assert '<option value="Europe/Berlin">' in page
        assert client.post(url, form_data(time_zone="Europe/Berlin")).status_code == 302
        project.refresh_from_db()
        assert project.time_zone == "Europe/Berlin"
        page = client.get(url).content.decode()
        assert '<option value="Europe/Berlin" selected>Europe/Berlin</option>' in page
        assert client.post(url, form_data()).status_code == 302
        project.refresh_from_db()
        assert project.time_zone == "Europe/Berlin"

    def test_an_unknown_zone_is_refused(self, client, bob, project):
        client.force_login(bob)
        url = reverse("project_edit", args=[project.pk])
        response = client.post(url, form_data(time_zone="Mars/Olympus"))
        assert response.status_code == 200
        assert "is not a time zone; use a name like Europe/Berlin" in response.content.decode()
        project.refresh_from_db()
        assert project.time_zone == "UTC"

    def test_a_new_project_starts_in_utc(self, client, alice):
        client.force_login(alice)
        client.post(reverse("project_create"), form_data())
        assert Project.objects.get(client_name="Fabrikam").time_zone == "UTC"
