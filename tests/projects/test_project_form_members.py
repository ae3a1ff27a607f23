"""Members are no longer chosen on the project form (they are invited on the team page): the
creator of a project is its owner, and a members field forged into the form changes nobody's
membership. Whom the team page names is tested in tests/team/."""

import pytest
from django.urls import reverse

from projects.models import Project, Role
from tests.projects.helpers import form_data

pytestmark = pytest.mark.django_db


def test_the_form_offers_no_members(client, alice):
    client.force_login(alice)
    response = client.get(reverse("project_create"))
    html = response.content.decode()
    assert 'name="client_name"' in html and 'name="members"' not in html
    assert "members" not in response.context["form"].fields


def test_the_creator_is_the_owner(client, alice, bob):
    client.force_login(alice)
    client.post(reverse("project_create"), form_data(client_name="Northwind", members=[bob.pk]))
    project = Project.objects.get(client_name="Northwind")
    assert [(m.user, m.role) for m in project.memberships.all()] == [(alice, Role.OWNER)]


def test_a_forged_members_field_changes_nobody(client, alice, bob, charlie, project):
    project.memberships.filter(user=bob).update(role=Role.VIEWER)
    client.force_login(alice)
    data = form_data(client_name="Contoso", members=[charlie.pk])
    response = client.post(reverse("project_edit", args=[project.pk]), data)
    assert response.status_code == 302
    roles = {m.user.username: m.role for m in project.memberships.all()}
    assert roles == {"alice": Role.OWNER, "bob": Role.VIEWER}
