"""The project form sets up an IMAP tenant that logs in with OAuth2: Microsoft (client id,
tenant id, client secret) or Google (the service account's JSON key), chosen by the
oauth_provider option; what is missing or wrong is said before anything is saved."""

import json

import pytest
from django.urls import reverse

from projects.models import Project
from tests.projects.helpers import form_data

KEY = {
    "type": "service_account",
    "client_email": "mailferry@fabrikam-test.iam.gserviceaccount.com",
    "client_id": "100000000000000000000",
    "private_key": "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
    "token_uri": "https://oauth2.googleapis.com/token",
}


def oauth_source(**overrides) -> dict:
    data = form_data(
        **{
            "source-shown_kind": "imap",
            "source-auth_method": "oauth2",
            "source-oauth_tenant_id": "fabrikam-tenant-id",
            "source-oauth_client_id": "imap-app-id",
            "source-secret": "imap-app-secret",
            "source-options": json.dumps({"oauth_provider": "microsoft"}),
        }
    )
    data.update(overrides)
    return {name: value for name, value in data.items() if value is not None}


@pytest.mark.django_db
class TestProjectFormImapOAuth2:
    def post(self, client, user, data):
        client.force_login(user)
        return client.post(reverse("project_create"), data)

    def test_the_form_offers_the_oauth2_fields_and_options(self, client, alice):
        client.force_login(alice)
        html = client.get(reverse("project_create")).content.decode()
        for name in ("auth_method", "oauth_tenant_id", "oauth_client_id", "oauth_authority"):
            assert f'name="source-{name}"' in html
        assert "<code>oauth_provider</code>" in html and "https://mail.google.com/" in html

    def test_microsoft_client_credentials_are_stored_and_kept_on_edit(self, client, alice):
        response = self.post(client, alice, oauth_source())
        assert response.status_code == 302, response.content.decode()[:2000]
        source = Project.objects.get().source
        endpoint = source.endpoint_config()
        assert (endpoint.auth_method, endpoint.oauth_client_id, endpoint.oauth_tenant_id) == (
            "oauth2",
            "imap-app-id",
            "fabrikam-tenant-id",
        )
        assert endpoint.secret == "imap-app-secret"
        assert endpoint.options == {"oauth_provider": "microsoft"}
        # Edited with the secret left empty: nothing of the OAuth2 set-up is reset.
        edit = oauth_source(**{"source-secret": ""})
        response = client.post(reverse("project_edit", args=[Project.objects.get().pk]), edit)
        assert response.status_code == 302
        source.refresh_from_db()
        assert (source.auth_method, source.oauth_client_id, source.secret) == (
            "oauth2",
            "imap-app-id",
            "imap-app-secret",
        )

    def test_microsoft_needs_the_application(self, client, alice):
        response = self.post(client, alice, oauth_source(**{"source-oauth_client_id": None}))
        assert response.status_code == 200
        assert "Required for OAuth2 client credentials" in response.content.decode()
        assert not Project.objects.exists()

    def test_an_authority_on_a_forbidden_address_is_refused(self, client, alice, settings):
        settings.ALLOW_LOCAL_ENDPOINTS = False  # as in production
        data = oauth_source(**{"source-oauth_authority": "https://169.254.169.254/tid"})
        response = self.post(client, alice, data)
        assert response.status_code == 200 and not Project.objects.exists()
        assert "endpoint 169.254.169.254:443 is a link-local address" in response.content.decode()

    def test_google_takes_the_service_account_key_and_no_application(self, client, alice):
        data = oauth_source(
            **{
                "source-oauth_tenant_id": None,
                "source-oauth_client_id": None,
                "source-secret": json.dumps(KEY),
                "source-options": json.dumps({"oauth_provider": "google"}),
            }
        )
        response = self.post(client, alice, data)
        assert response.status_code == 302, response.content.decode()[:2000]
        endpoint = Project.objects.get().source.endpoint_config()
        assert json.loads(endpoint.secret) == KEY
        assert endpoint.options == {"oauth_provider": "google"}

    def test_google_refuses_a_secret_that_is_not_a_key(self, client, alice):
        data = oauth_source(
            **{
                "source-oauth_client_id": None,
                "source-secret": "imap-app-secret",
                "source-options": json.dumps({"oauth_provider": "google"}),
            }
        )
        response = self.post(client, alice, data)
        assert response.status_code == 200 and not Project.objects.exists()
        assert "Paste the service account&#x27;s JSON key file" in response.content.decode()
