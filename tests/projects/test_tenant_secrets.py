import pytest
from django.db import connection
from django.urls import reverse

from projects.models import Tenant


def stored_secret(tenant):
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM projects_tenant WHERE id = %s", [tenant.pk])
        return cursor.fetchone()[0]


@pytest.mark.django_db
class TestTenantSecrets:
    def test_encrypted_at_rest(self, project):
        tenant = project.source
        tenant.secret = "Sommer2026!"
        tenant.save()
        raw = stored_secret(tenant)
        assert raw and "Sommer2026!" not in raw and raw.startswith("gAAAA")
        assert Tenant.objects.get(pk=tenant.pk).secret == "Sommer2026!"

    def test_unreadable_with_another_key(self, project, settings):
        project.source.secret = "Sommer2026!"
        project.source.save()
        settings.FIELD_ENCRYPTION_KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
        assert Tenant.objects.get(pk=project.source.pk).secret == ""

    def test_key_rotation_keeps_old_secrets_readable(self, project, settings):
        old_key = settings.FIELD_ENCRYPTION_KEY
        project.source.secret = "Sommer2026!"
        project.source.save()
        settings.FIELD_ENCRYPTION_KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=," + old_key
        assert Tenant.objects.get(pk=project.source.pk).secret == "Sommer2026!"

    def test_never_rendered_in_the_edit_form(self, client, bob, project):
        project.source.secret = "Sommer2026!"
        project.source.save()
        client.force_login(bob)
        response = client.get(reverse("project_edit", args=[project.pk]))
        assert response.status_code == 200
        assert b"Sommer2026!" not in response.content
        assert stored_secret(project.source).encode() not in response.content

    def test_not_in_repr(self, project):
        project.source.secret = "Sommer2026!"
        assert "Sommer2026!" not in repr(project.source.endpoint_config())
