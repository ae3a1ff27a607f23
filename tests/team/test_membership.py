"""Roles on the model: who may do what, the migration's default for code that only adds
members, the last owner, and the invitation's token, expiry and single use."""

from datetime import timedelta

import pytest
from django.utils import timezone

from projects.models import Invitation, Membership, Project, Role, hash_token
from tests.conftest import make_project

pytestmark = pytest.mark.django_db


def loaded_for(user, project):
    return Project.objects.for_user(user).with_role(user).get(pk=project.pk)


def test_each_role_allows_what_it_names_and_less(alice, bob, charlie, django_user_model):
    project = make_project(members=[alice])
    project.memberships.create(user=bob, role=Role.OPERATOR)
    project.memberships.create(user=charlie, role=Role.VIEWER)
    seen = {
        user.username: (loaded_for(user, project).can_operate, loaded_for(user, project).can_own)
        for user in (alice, bob, charlie)
    }
    assert seen == {"alice": (True, True), "bob": (True, False), "charlie": (False, False)}
    staff = django_user_model.objects.create_user("sam", password="x", is_staff=True)
    assert loaded_for(staff, project).can_own


def test_members_set_makes_owners(alice, bob):
    project = make_project(members=[alice, bob])
    assert set(project.memberships.values_list("role", flat=True)) == {Role.OWNER}


def test_one_membership_per_user_and_project(alice, project):
    from django.db import IntegrityError

    with pytest.raises(IntegrityError):
        Membership.objects.create(project=project, user=alice, role=Role.VIEWER)


def test_the_last_owner_is_known(alice, bob, project):
    bob_membership = project.memberships.get(user=bob)
    assert not bob_membership.is_last_owner
    bob_membership.role = Role.VIEWER
    bob_membership.save()
    assert project.memberships.get(user=alice).is_last_owner
    assert not project.memberships.get(user=bob).is_last_owner


def test_the_token_is_stored_only_as_its_hash(alice, project):
    invitation, token = Invitation.send(project, "dora@example.org", Role.VIEWER, alice)
    stored = Invitation.objects.filter(pk=invitation.pk).values().get()
    assert token not in {str(value) for value in stored.values()}
    assert stored["token_hash"] == hash_token(token) and len(token) >= 40
    assert Invitation.find(token) == invitation and Invitation.find(token + "x") is None


def test_the_link_expires_after_the_setting(alice, project, settings):
    settings.INVITE_EXPIRY_DAYS = 3
    before = timezone.now()
    invitation, _ = Invitation.send(project, "dora@example.org", Role.VIEWER, alice)
    assert before + timedelta(days=3) <= invitation.expires <= timezone.now() + timedelta(days=3)


def test_inviting_again_replaces_the_link(alice, project):
    first, old = Invitation.send(project, "dora@example.org", Role.VIEWER, alice)
    second, new = Invitation.send(project, "Dora@example.org", Role.OPERATOR, alice)
    assert Invitation.find(old) is None and Invitation.find(new) == second
    assert list(project.invitations.all()) == [second]


def test_accepting_works_once(alice, charlie, django_user_model, project):
    invitation, _ = Invitation.send(project, "charlie@example.org", Role.VIEWER, alice)
    assert invitation.accept(charlie)
    dora = django_user_model.objects.create_user("dora", "dora@example.org", "x")
    assert not Invitation.objects.get(pk=invitation.pk).accept(dora)
    assert project.memberships.get(user=charlie).role == Role.VIEWER
    assert not project.memberships.filter(user=dora).exists()


def test_a_member_keeps_a_higher_role(alice, bob, project):
    invitation, _ = Invitation.send(project, "bob@example.org", Role.VIEWER, alice)
    assert invitation.accept(bob)
    assert project.memberships.get(user=bob).role == Role.OWNER
