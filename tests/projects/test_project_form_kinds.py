"""The project form: each tenant shows only its connector kind's fields (htmx redraw, and the
same without JavaScript), the contact shown to end users, and a changed tenant forgets its last
connection test."""

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from projects.cutover import template_for
from projects.models import Project

from .helpers import form_data

SHOWN = {
    "imap": {
        "endpoint",
        "port",
        "security",
        "auth_method",
        "username",
        "secret",
        "impersonation",
        "oauth_tenant_id",
        "oauth_client_id",
        "oauth_authority",
        "verify_tls",
        "options",
    },
    "ews": {
        "endpoint",
        "auth_method",
        "username",
        "secret",
        "impersonation",
        "oauth_tenant_id",
        "oauth_client_id",
        "oauth_authority",
        "verify_tls",
        "options",
    },
    "exchange_online": {
        "oauth_tenant_id",
        "oauth_client_id",
        "secret",
        "certificate_key",
        "oauth_authority",
        "endpoint",
        "verify_tls",
        "options",
    },
    "maildir": {"endpoint"},
}


def fields_of(html, side):
    """The visible field names of one tenant's fieldset."""
    start = html.index(f'id="tenant-{side}"')
    fieldset = html[start : html.index("</fieldset>", start)]
    names = re.findall(rf'name="{side}-(\w+)"', fieldset)
    hidden = set(re.findall(rf'type="hidden" name="{side}-(\w+)"', fieldset))
    return {name for name in names if name not in hidden and name != "kind"}


def redraw(client, url, side, **values):
    query = {"tenant_fields": side, **{f"{side}-{k}": v for k, v in values.items()}}
    return client.get(url, query, headers={"HX-Request": "true"})


@pytest.mark.django_db
class TestFieldsPerKind:
    @pytest.mark.parametrize("kind", sorted(SHOWN))
    def test_the_kind_select_redraws_only_that_kinds_fields(self, client, alice, kind):
        client.force_login(alice)
        response = redraw(client, reverse("project_create"), "source", kind=kind)
        html = response.content.decode()
        assert response.status_code == 200 and html.lstrip().startswith("<fieldset")
        assert fields_of(html, "source") == SHOWN[kind]
        assert f'name="source-shown_kind" value="{kind}"' in html
        assert 'hx-get="/projects/new/?tenant_fields=source"' in html
        assert 'hx-params="not source-secret"' in html  # a typed secret never goes in a URL

    def test_edit_page_shows_each_tenants_kind(self, client, bob, project):
        client.force_login(bob)
        html = client.get(reverse("project_edit", args=[project.pk])).content.decode()
        assert fields_of(html, "source") == SHOWN["imap"]
        assert fields_of(html, "target") == SHOWN["maildir"]
        assert "Maildir folder" in html and "IMAP host" in html
        assert "Show fields for this kind" in html  # inside <noscript>

    def test_values_typed_survive_the_redraw_but_not_across_meanings(self, client, alice):
        client.force_login(alice)
        html = redraw(
            client,
            reverse("project_create"),
            "target",
            kind="ews",
            shown_kind="imap",
            endpoint="imap.old.example",
            username="admin@fabrikam.example",
            impersonation="svc@fabrikam.example",
            options='{"timeout": 60}',
        ).content.decode()
        assert 'value="admin@fabrikam.example"' in html and 'value="svc@fabrikam.example"' in html
        assert "imap.old.example" not in html  # an IMAP host is no EWS URL
        # The options come back as typed, not as a quoted JSON string the save would refuse.
        assert "{&quot;timeout&quot;: 60}</textarea>" in html
        assert "verify_tls" in html and 'id="id_target-verify_tls">' in html  # unchecked kept
        assert "errorlist" not in html  # a redraw validates nothing yet

    def test_switching_kind_resets_the_other_kinds_fields(self, client, bob, project, settings):
        project.source.impersonation, project.source.port = "master", 1993
        project.source.save()
        bob.is_staff, settings.MAILDIR_ROOT = True, "/srv"  # only staff choose maildir
        bob.save()
        client.force_login(bob)
        data = form_data(
            **{
                "source-kind": "maildir",
                "source-shown_kind": "maildir",
                "source-endpoint": "/srv/mail",
            }
        )
        response = client.post(reverse("project_edit", args=[project.pk]), data)
        assert response.status_code == 302
        project.source.refresh_from_db()
        source = project.source
        assert (source.kind, source.endpoint) == ("maildir", "/srv/mail")
        assert (source.impersonation, source.username, source.port, source.secret) == (
            "",
            "",
            None,
            "",
        )

    def test_graph_needs_its_application(self, client, alice):
        client.force_login(alice)
        data = form_data(
            **{"target-kind": "exchange_online", "target-shown_kind": "exchange_online"}
        )
        data.pop("target-oauth_tenant_id")
        response = client.post(reverse("project_create"), data)
        assert response.status_code == 200
        assert "Required for OAuth2 client credentials" in response.content.decode()
        assert not Project.objects.exists()


@pytest.mark.django_db
class TestWithoutJavaScript:
    def test_show_fields_redraws_and_saves_nothing(self, client, alice):
        client.force_login(alice)
        data = form_data(**{"source-kind": "maildir", "show_fields": "source"})
        response = client.post(reverse("project_create"), data)
        html = response.content.decode()
        assert response.status_code == 200 and not Project.objects.exists()
        assert fields_of(html, "source") == SHOWN["maildir"]
        assert "Fill in the fields of the kind chosen; nothing is saved yet." in html
        assert 'value="Fabrikam"' in html  # the rest of the form is kept

    def test_a_kind_changed_without_its_fields_is_shown_not_saved(self, client, bob, project):
        bob.is_staff = True  # only staff may change a maildir tenant
        bob.save()
        client.force_login(bob)
        # The page showed IMAP fields; the user picked EWS and pressed Save straight away.
        data = form_data(**{"source-shown_kind": "imap", "target-shown_kind": "maildir"})
        response = client.post(reverse("project_edit", args=[project.pk]), data)
        assert response.status_code == 200
        assert fields_of(response.content.decode(), "target") == SHOWN["ews"]
        project.target.refresh_from_db()
        assert project.target.kind == "maildir"


@pytest.mark.django_db
class TestContact:
    def test_contact_is_stored_and_shown_again(self, client, bob, project):
        client.force_login(bob)
        data = form_data(
            contact_name="Dana Helpdesk",
            contact_email="help@fabrikam.example",
            **{"source-shown_kind": "imap", "target-shown_kind": "ews"},
        )
        assert client.post(reverse("project_edit", args=[project.pk]), data).status_code == 302
        project.refresh_from_db()
        assert (project.contact_name, project.contact_email) == (
            "Dana Helpdesk",
            "help@fabrikam.example",
        )
        html = client.get(reverse("project_edit", args=[project.pk])).content.decode()
        assert 'value="Dana Helpdesk"' in html and "shown on their progress page" in html


@pytest.mark.django_db
class TestConnectionTestIsForgotten:
    @pytest.fixture
    def tested(self, project):
        tenant = project.source
        tenant.secret = "pw"
        tenant.save()
        tenant.request_check()
        tenant.record_check(True, "Connected: 7 folders in admin.")
        return project

    def post(self, client, project, **changes):
        data = form_data(
            **{
                "source-endpoint": "imap.old.example",
                "source-username": "admin",
                "source-secret": "",
                "source-port": "",
                "source-shown_kind": "imap",
                "target-kind": "maildir",
                "target-shown_kind": "maildir",
                "target-endpoint": "/tmp/nowhere",
                **changes,
            }
        )
        response = client.post(reverse("project_edit", args=[project.pk]), data)
        assert response.status_code == 302, response.content.decode()[:2000]
        project.source.refresh_from_db()
        return project.source

    def test_unchanged_tenant_keeps_its_result(self, client, bob, tested):
        client.force_login(bob)
        tenant = self.post(client, tested, client_name="Contoso Ltd")
        assert tenant.last_check_ok is True and tenant.last_check_message

    @pytest.mark.parametrize(
        "changes",
        [
            {"source-endpoint": "imap.other.example"},
            {"source-secret": "new-password"},
            {"source-verify_tls": ""},
            {"source-impersonation": "master"},
        ],
    )
    def test_a_changed_connection_field_clears_the_result(self, client, bob, tested, changes):
        client.force_login(bob)
        tenant = self.post(client, tested, **changes)
        assert (tenant.last_check_at, tenant.last_check_ok, tenant.last_check_message) == (
            None,
            None,
            "",
        )
        assert tenant.check_requested_at is None
        html = client.get(tested.get_absolute_url()).content.decode()
        assert "Connected: 7 folders" not in html and "Not tested yet." in html


@pytest.mark.django_db
class TestChecklistCount:
    def test_a_new_project_has_its_checklist(self, client, alice):
        client.force_login(alice)
        client.post(reverse("project_create"), form_data())
        project = Project.objects.get()
        assert project.cutover_steps.count() == len(template_for(project))
        html = client.get(project.get_absolute_url()).content.decode()
        assert f"checklist 0 / {len(template_for(project))}" in html

    def test_a_checklist_never_opened_counts_the_template(self, client, bob, project):
        # Made before steps came with the project (or from the command line): no rows yet.
        assert not project.cutover_steps.exists()
        client.force_login(bob)
        page = client.get(project.get_absolute_url()).content.decode()
        assert f"checklist 0 / {len(template_for(project))}" in page
        dashboard = client.get(reverse("home")).content.decode()
        assert f"0 / {len(template_for(project))}" in dashboard
        client.get(reverse("cutover", args=[project.pk]))  # opening it changes no figure
        step = project.cutover_steps.first()
        step.done_at = timezone.now()
        step.save()
        page = client.get(project.get_absolute_url()).content.decode()
        assert f"checklist 1 / {len(template_for(project))}" in page
