"""The project form offers as members only the people the consultant already works with: the
colleagues who share a project with them, the project's members and themself (staff: everyone).
Anyone else is neither listed nor accepted."""

import pytest
from django.urls import reverse

from projects.models import Project
from tests.conftest import make_project
from tests.projects.test_project_form import form_data

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(alice, bob, charlie, django_user_model, project):
    """alice and bob share Contoso; charlie works with bob on Fabrikam, not with alice;
    dorothea works with nobody."""
    make_project(members=[bob, charlie], client_name="Fabrikam")
    dorothea = django_user_model.objects.create_user("dorothea-unrelated", password="x")
    return {"alice": alice, "bob": bob, "charlie": charlie, "dorothea": dorothea}


def offered(client, url) -> set[str]:
    response = client.get(url)
    assert response.status_code == 200
    form = response.context["form"]
    names = {user.username for user in form.fields["members"].queryset}
    page = response.content.decode()
    # What the page shows is what the field offers: no other username appears.
    for username in {"alice", "bob", "charlie", "dorothea-unrelated"} - names:
        assert username not in page
    return names


def test_new_project_offers_the_colleagues_of_the_consultant(client, people):
    client.force_login(people["alice"])
    assert offered(client, reverse("project_create")) == {"alice", "bob"}
    client.force_login(people["bob"])
    assert offered(client, reverse("project_create")) == {"alice", "bob", "charlie"}


def test_editing_offers_the_projects_members_too(client, people, project):
    project.members.add(people["dorothea"])
    client.force_login(people["alice"])
    url = reverse("project_edit", args=[project.pk])
    assert offered(client, url) == {"alice", "bob", "dorothea-unrelated"}


def test_staff_are_offered_everyone(client, people, django_user_model):
    staff = django_user_model.objects.create_user("sam", password="x", is_staff=True)
    client.force_login(staff)
    assert offered(client, reverse("project_create")) == {
        "alice",
        "bob",
        "charlie",
        "dorothea-unrelated",
        "sam",
    }


def test_a_post_naming_someone_else_is_refused(client, people, project):
    client.force_login(people["alice"])
    for stranger in (people["charlie"], people["dorothea"]):
        data = form_data(client_name="Northwind", members=[people["bob"].pk, stranger.pk])
        response = client.post(reverse("project_create"), data)
        assert response.status_code == 200
        assert f"{stranger.pk} is not one of the available choices" in response.content.decode()
        assert not Project.objects.filter(client_name="Northwind").exists()
        response = client.post(reverse("project_edit", args=[project.pk]), data)
        assert response.status_code == 200
        assert set(project.members.all()) == {people["alice"], people["bob"]}
