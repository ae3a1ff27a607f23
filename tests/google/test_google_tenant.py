"""A Google Workspace tenant on the project form (its own fields, the key write-only and
checked on save) and its connection test, run against the loopback Gmail API server."""

import json

import pytest
from django.db import connection
from django.urls import reverse

from mailboxes.identity import conflicts
from projects.models import Project
from projects.tasks import check_tenant
from tests.projects.helpers import form_data

from .seed import USERS, seed

pytestmark = pytest.mark.django_db


def google_source(gmail, key, **fields):
    data = form_data(
        **{
            "source-kind": "google",
            "source-endpoint": gmail.url,
            "source-secret": json.dumps(key, indent=2),
            "source-username": USERS[0],
            "source-options": json.dumps({"ca_file": str(gmail.cert_file)}),
            "source-verify_tls": "on",
        }
    )
    for name in ("source-port", "source-security", "source-auth_method"):
        data.pop(name)
    return data | fields


class TestProjectFormWithAGoogleSource:
    def test_the_key_is_stored_encrypted_and_never_shown(self, client, alice, gmail):
        client.force_login(alice)
        response = client.post(reverse("project_create"), google_source(gmail, gmail.key))
        assert response.status_code == 302, response.content.decode()[:3000]
        project = Project.objects.get(client_name="Fabrikam")
        source = project.source
        assert (source.kind, source.username) == ("google", USERS[0])
        assert json.loads(source.secret) == gmail.key
        with connection.cursor() as cursor:
            cursor.execute("SELECT secret FROM projects_tenant WHERE id = %s", [source.pk])
            stored = cursor.fetchone()[0]
        assert stored.startswith("gAAAA") and "PRIVATE KEY" not in stored
        edit = client.get(reverse("project_edit", args=[project.pk])).content.decode()
        assert "Service account key (JSON)" in edit and "Connection test user" in edit
        assert gmail.key["private_key"].splitlines()[1] not in edit
        assert gmail.key["client_email"] not in edit

    @pytest.mark.parametrize(
        "pasted, said",
        [
            ("Winter2026!", "it is not JSON"),
            ('{"type": "authorized_user", "client_id": "x"}', "not a service account key"),
        ],
    )
    def test_something_else_pasted_as_the_key_is_refused(self, client, alice, gmail, pasted, said):
        client.force_login(alice)
        data = google_source(gmail, gmail.key) | {"source-secret": pasted}
        response = client.post(reverse("project_create"), data)
        assert response.status_code == 200 and said in response.content.decode()
        assert not Project.objects.exists()

    def test_the_labels_strategy_is_one_of_two(self, client, alice, gmail):
        client.force_login(alice)
        options = {"ca_file": str(gmail.cert_file), "labels": "categories"}
        data = google_source(gmail, gmail.key) | {"source-options": json.dumps(options)}
        response = client.post(reverse("project_create"), data)
        assert "The labels option is every_folder or one_folder, not &#x27;categories&#x27;." in (
            response.content.decode()
        )
        options["labels"] = "one_folder"
        data["source-options"] = json.dumps(options)
        assert client.post(reverse("project_create"), data).status_code == 302
        assert Project.objects.get().source.options["labels"] == "one_folder"


class TestGoogleConnectionTest:
    def make(self, project, gmail, key, username=USERS[0]):
        source = project.source
        source.kind, source.endpoint, source.username = "google", gmail.url, username
        source.secret = json.dumps(key)
        source.options = {"ca_file": str(gmail.cert_file)}
        source.save()
        return source

    def test_reads_the_test_users_mailbox_through_delegation(self, project, gmail):
        seed(gmail, per_user=5)
        source = self.make(project, gmail, gmail.key)
        check_tenant(source.pk)
        source.refresh_from_db()
        assert source.last_check_ok is True
        assert source.last_check_message == (
            f"Connected: {len(gmail.users[USERS[0]].labels)} labels, 5 messages in {USERS[0]}."
        )

    def test_a_client_id_without_delegation_says_what_to_grant(self, project, gmail):
        seed(gmail, per_user=1)
        other = gmail.add_service_account("not-delegated")
        source = self.make(project, gmail, other)
        check_tenant(source.pk)
        source.refresh_from_db()
        assert source.last_check_ok is False
        assert "unauthorized_client" in source.last_check_message
        assert "gmail.readonly" in source.last_check_message


class TestGoogleMailboxLogins:
    def test_the_service_account_reads_each_mailbox_whatever_login_a_row_carries(
        self, project, gmail
    ):
        """A Google source never logs in as a user: a login typed on a mailbox row neither
        replaces the service account's key nor names the account read."""
        TestGoogleConnectionTest().make(project, gmail, gmail.key)
        rows = [
            project.mailboxes.create(
                source_address=user,
                target_address=f"t{n}@contoso.example",
                source_login="shared-login",
                source_password=f"password-{n}",
            )
            for n, user in enumerate(USERS)
        ]
        for row, user in zip(rows, USERS, strict=True):
            assert row.login_label("source") == f"the service account, acting for {user}"
            assert json.loads(row.endpoint("source").secret) == gmail.key
        assert conflicts(project, rows) == []


class TestGoogleEndpointsAreChecked:
    @pytest.fixture(autouse=True)
    def strict(self, settings):
        settings.ALLOW_LOCAL_ENDPOINTS = False

    def test_the_form_refuses_a_gmail_api_url_on_the_machine_itself(self, client, alice, gmail):
        client.force_login(alice)
        response = client.post(reverse("project_create"), google_source(gmail, gmail.key))
        port = gmail.httpd.server_address[1]
        assert f"endpoint 127.0.0.1:{port} is a loopback address" in response.content.decode()
        assert not Project.objects.exists()

    def test_the_worker_refuses_a_token_uri_on_the_machine_itself(self, project, gmail):
        """The key's token_uri is not a form field: the connector checks it when it connects."""
        seed(gmail, per_user=1)
        source = TestGoogleConnectionTest().make(project, gmail, gmail.key)
        source.endpoint = ""  # the real Gmail API; the token is asked for first
        source.save()
        check_tenant(source.pk)
        source.refresh_from_db()
        assert source.last_check_ok is False
        port = gmail.httpd.server_address[1]
        assert f"endpoint 127.0.0.1:{port} is a loopback address" in source.last_check_message
        assert gmail.counts["token"] == 0
