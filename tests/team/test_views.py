"""The team page, role changes, removals, revocations and the public sign-up link, one class
per view. alice owns Contoso (with bob), olga operates it, vera views it, charlie is outside."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEntry
from projects.models import Invitation, Project, Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(project, django_user_model):
    olga = django_user_model.objects.create_user("olga", "olga@example.org", "password-olga")
    vera = django_user_model.objects.create_user("vera", "vera@example.org", "password-vera")
    project.memberships.create(user=olga, role=Role.OPERATOR)
    project.memberships.create(user=vera, role=Role.VIEWER)
    return {"olga": olga, "vera": vera}


def roles(project):
    return {m.user.username: m.role for m in project.memberships.select_related("user")}


def actions(project):
    return list(project.audit_entries.order_by("id").values_list("action", "detail"))


class TestTeam:
    def url(self, project):
        return reverse("team", args=[project.pk])

    def test_a_viewer_sees_the_members_and_no_controls(self, client, project, team):
        client.force_login(team["vera"])
        page = client.get(self.url(project)).content.decode()
        for name in ("alice", "bob", "olga", "vera"):
            assert name in page
        assert 'method="post"' not in page.replace('action="/logout/"', "").split("<main")[-1]
        assert "Invite a colleague" not in page

    def test_only_the_projects_members_are_named(self, client, project, team, charlie):
        from tests.conftest import make_project

        make_project(members=[team["olga"], charlie], client_name="Fabrikam")
        client.force_login(team["olga"])
        page = client.get(self.url(project)).content.decode()
        assert "charlie" not in page and "Fabrikam" not in page

    def test_an_owner_invites_and_sees_the_link_once(self, client, project, alice):
        client.force_login(alice)
        response = client.post(self.url(project), {"email": "dora@example.org", "role": "viewer"})
        page = response.content.decode()
        link = re.search(r'value="(http://testserver/invite/[^"]+/)"', page).group(1)
        invitation = project.invitations.get()
        assert (invitation.email, invitation.role, invitation.invited_by) == (
            "dora@example.org",
            Role.VIEWER,
            alice,
        )
        token = link.rstrip("/").rsplit("/", 1)[1]
        assert Invitation.find(token) == invitation
        assert token not in client.get(self.url(project)).content.decode()
        assert actions(project) == [("member_invited", "Invited dora@example.org as viewer")]

    def test_inviting_an_existing_account_reads_like_any_other(self, client, project, alice):
        """An owner learns nothing of other accounts: the answer is the same, and nobody joins
        before they open the link."""
        client.force_login(alice)

        def said(email):
            response = client.post(self.url(project), {"email": email, "role": "viewer"})
            message = re.search(r'<li class="message[^"]*">([^<]+)</li>', response.content.decode())
            return message.group(1).replace(email, "ADDRESS")

        assert said("charlie@example.org") == said("nobody@example.org")
        assert "charlie" not in roles(project)

    def test_a_bad_address_invites_nobody(self, client, project, alice):
        client.force_login(alice)
        response = client.post(self.url(project), {"email": "not an address", "role": "viewer"})
        assert (
            response.status_code == 200
            and "Enter a valid email address" in response.content.decode()
        )
        assert not project.invitations.exists()

    def test_an_operator_cannot_invite(self, client, project, team):
        client.force_login(team["olga"])
        response = client.post(self.url(project), {"email": "dora@example.org", "role": "owner"})
        assert response.status_code == 403 and not project.invitations.exists()


class TestMemberRole:
    def post(self, client, project, user, role):
        membership = project.memberships.get(user=user)
        url = reverse("member_role", args=[project.pk, membership.pk])
        return client.post(url, {f"m{membership.pk}-role": role})

    def test_an_owner_changes_a_role(self, client, project, team, alice):
        client.force_login(alice)
        response = self.post(client, project, team["vera"], "operator")
        assert response.status_code == 302 and roles(project)["vera"] == Role.OPERATOR
        assert actions(project) == [
            ("member_role_changed", "Changed vera's role from viewer to operator")
        ]

    def test_the_last_owner_stays_owner(self, client, project, alice, bob):
        project.memberships.filter(user=bob).update(role=Role.VIEWER)
        client.force_login(alice)
        response = self.post(client, project, alice, "viewer")
        assert roles(project)["alice"] == Role.OWNER
        page = client.get(response["Location"]).content.decode()
        assert "The project needs an owner" in page
        assert 'aria-label="Remove bob"' in page and 'aria-label="Remove alice"' not in page

    def test_an_operator_cannot_promote_themself(self, client, project, team):
        client.force_login(team["olga"])
        assert self.post(client, project, team["olga"], "owner").status_code == 403
        assert roles(project)["olga"] == Role.OPERATOR and not AuditEntry.objects.exists()


class TestMemberRemove:
    def post(self, client, project, user):
        membership = project.memberships.get(user=user)
        return client.post(reverse("member_remove", args=[project.pk, membership.pk]))

    def test_an_owner_removes_a_member_who_then_gets_404(self, client, project, team, alice):
        client.force_login(alice)
        assert self.post(client, project, team["olga"]).status_code == 302
        assert "olga" not in roles(project)
        assert actions(project) == [("member_removed", "Removed olga")]
        client.force_login(team["olga"])
        assert client.get(project.get_absolute_url()).status_code == 404

    def test_not_the_last_owner(self, client, project, alice, bob):
        client.force_login(alice)
        self.post(client, project, bob)
        self.post(client, project, alice)
        assert roles(project) == {"alice": Role.OWNER}

    def test_a_viewer_removes_nobody(self, client, project, team):
        client.force_login(team["vera"])
        assert self.post(client, project, team["olga"]).status_code == 403
        assert "olga" in roles(project)


class TestInvitationRevoke:
    def test_a_revoked_link_no_longer_works(self, client, project, alice):
        invitation, token = Invitation.send(project, "dora@example.org", Role.VIEWER, alice)
        client.force_login(alice)
        response = client.post(reverse("invitation_revoke", args=[project.pk, invitation.pk]))
        assert response.status_code == 302 and not project.invitations.exists()
        client.logout()
        assert client.get(reverse("invitation_accept", args=[token])).status_code == 404

    def test_an_operator_cannot_revoke(self, client, project, team, alice):
        invitation, _ = Invitation.send(project, "dora@example.org", Role.VIEWER, alice)
        client.force_login(team["olga"])
        url = reverse("invitation_revoke", args=[project.pk, invitation.pk])
        assert client.post(url).status_code == 403 and project.invitations.exists()


class TestInvitationAccept:
    def signup(self, client, token, username="dora", password="Tall-Ships-Sail-2026"):
        url = reverse("invitation_accept", args=[token])
        data = {"username": username, "password1": password, "password2": password}
        return client.post(url, data)

    def test_a_newcomer_signs_up_joins_and_is_signed_in(
        self, client, project, alice, django_user_model
    ):
        _, token = Invitation.send(project, "dora@example.org", Role.OPERATOR, alice)
        page = client.get(reverse("invitation_accept", args=[token])).content.decode()
        assert "Contoso" in page and "dora@example.org" in page
        response = self.signup(client, token)
        assert response.status_code == 302 and response["Location"] == project.get_absolute_url()
        dora = django_user_model.objects.get(username="dora")
        assert dora.email == "dora@example.org" and dora.check_password("Tall-Ships-Sail-2026")
        assert roles(project)["dora"] == Role.OPERATOR
        assert client.get(project.get_absolute_url()).status_code == 200
        assert project.audit_entries.get(action="member_joined").actor == dora

    def test_the_link_works_once(self, client, project, alice, django_user_model):
        _, token = Invitation.send(project, "dora@example.org", Role.OPERATOR, alice)
        self.signup(client, token)
        client.logout()
        response = self.signup(client, token, username="dora2")
        assert response.status_code == 410 and "used already" in response.content.decode()
        assert not django_user_model.objects.filter(username="dora2").exists()

    def test_an_expired_link_creates_nothing(self, client, project, alice, django_user_model):
        invitation, token = Invitation.send(project, "dora@example.org", Role.OPERATOR, alice)
        Invitation.objects.filter(pk=invitation.pk).update(
            expires=timezone.now() - timedelta(seconds=1)
        )
        response = self.signup(client, token)
        assert response.status_code == 410 and "expired" in response.content.decode()
        assert not django_user_model.objects.filter(username="dora").exists()

    def test_an_unknown_link_creates_nothing(self, client, project, alice, django_user_model):
        _, token = Invitation.send(project, "dora@example.org", Role.OPERATOR, alice)
        response = self.signup(client, token[:-1] + ("A" if token[-1] != "A" else "B"))
        assert response.status_code == 404
        assert not django_user_model.objects.filter(username="dora").exists()

    def test_django_password_rules_apply(self, client, project, alice, django_user_model):
        _, token = Invitation.send(project, "dora@example.org", Role.OPERATOR, alice)
        response = self.signup(client, token, password="12345678")
        assert response.status_code == 200 and "too common" in response.content.decode()
        assert not django_user_model.objects.filter(username="dora").exists()
        assert Invitation.find(token).accepted_at is None

    def test_a_signed_in_user_with_that_address_joins(self, client, alice, charlie):
        from tests.conftest import make_project

        fabrikam = make_project(members=[alice], client_name="Fabrikam")
        _, token = Invitation.send(fabrikam, "Charlie@Example.org", Role.VIEWER, alice)
        client.force_login(charlie)
        url = reverse("invitation_accept", args=[token])
        assert "Join as charlie" in client.get(url).content.decode()
        assert client.post(url)["Location"] == fabrikam.get_absolute_url()
        assert roles(fabrikam) == {"alice": Role.OWNER, "charlie": Role.VIEWER}

    def test_someone_else_signed_in_cannot_use_it(self, client, project, alice, charlie):
        _, token = Invitation.send(project, "dora@example.org", Role.OWNER, alice)
        client.force_login(charlie)
        assert client.post(reverse("invitation_accept", args=[token])).status_code == 403
        assert "charlie" not in roles(project)
        assert Project.objects.for_user(charlie).count() == 0
