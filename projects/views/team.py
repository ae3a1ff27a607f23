"""The project's team: members and their roles, invitations, and the one-time sign-up link."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from audit.log import Action, record

from ..access import SAFE_METHODS, get_project_for_user
from ..forms import InviteForm, RoleForm, SignupForm
from ..models import Invitation, Role
from ..tasks import queue_invitation
from .cutover import post_after_access


def _team_page(request, project, form, link=None):
    memberships = list(project.memberships.select_related("user"))
    if project.can_own:
        for membership in memberships:
            membership.form = RoleForm(instance=membership, prefix=f"m{membership.pk}")
    context = {
        "project": project,
        "memberships": memberships,
        "invitations": project.invitations.filter(accepted_at__isnull=True),
        "form": form,
        "link": link,
    }
    return render(request, "projects/team.html", context)


@login_required
def team(request, project_id):
    """Every member sees who is in and who is invited; owners invite (POST). The new link is
    shown once, on the answer to the POST: only its hash is kept."""
    owner = None if request.method in SAFE_METHODS else Role.OWNER
    project = get_project_for_user(request, project_id, owner)
    form = InviteForm(request.POST or None)
    if request.method != "POST" or not form.is_valid():
        return _team_page(request, project, form)
    email, role = form.cleaned_data["email"], form.cleaned_data["role"]
    with transaction.atomic():
        invitation, token = Invitation.send(project, email, role, request.user)
        record(request, project, Action.MEMBER_INVITED, f"Invited {email} as {role}")
        transaction.on_commit(lambda: queue_invitation(invitation, token))
    how = "the link is mailed to them" if settings.EMAIL_HOST else "send them the link below"
    messages.success(request, f"{email} is invited as {role}; {how}.")
    link = request.build_absolute_uri(reverse("invitation_accept", args=[token]))
    return _team_page(request, project, InviteForm(), link)


@post_after_access(role=Role.OWNER)
def member_role(request, project, membership_id):
    membership = get_object_or_404(project.memberships, pk=membership_id)
    form = RoleForm(request.POST, instance=membership, prefix=f"m{membership.pk}")
    was = membership.role
    if form.is_valid():
        form.save()
        if membership.role != was:
            detail = f"Changed {membership.user}'s role from {was} to {membership.role}"
            record(request, project, Action.MEMBER_ROLE_CHANGED, detail)
        messages.success(request, f"{membership.user} is {membership.get_role_display()}.")
    else:
        messages.error(request, " ".join(form.errors.get("role", [])))
    return redirect("team", project.pk)


@post_after_access(role=Role.OWNER)
def member_remove(request, project, membership_id):
    membership = get_object_or_404(project.memberships, pk=membership_id)
    if membership.is_last_owner:
        messages.error(request, "The project needs an owner: make someone else owner first.")
        return redirect("team", project.pk)
    membership.delete()
    record(request, project, Action.MEMBER_REMOVED, f"Removed {membership.user}")
    messages.success(request, f"{membership.user} is no longer a member of {project}.")
    if membership.user == request.user:
        return redirect("home")
    return redirect("team", project.pk)


@post_after_access(role=Role.OWNER)
def invitation_revoke(request, project, invitation_id):
    invitation = get_object_or_404(project.invitations, pk=invitation_id, accepted_at=None)
    invitation.delete()
    messages.success(request, f"The invitation of {invitation.email} no longer works.")
    return redirect("team", project.pk)


def _invalid(request, status, why):
    return render(request, "projects/invitation_invalid.html", {"why": why}, status=status)


def invitation_accept(request, invite_token):
    """The public sign-up link: a new account (or the signed-in user the invitation is for)
    joins the project with the invitation's role. Nothing is created from a bad link."""
    invitation = Invitation.find(invite_token)
    if invitation is None:
        return _invalid(request, 404, "This invitation link is not known.")
    if not invitation.is_usable:
        used = invitation.accepted_at is not None
        return _invalid(
            request,
            410,
            "This invitation was used already."
            if used
            else "This invitation has expired; ask for a new one.",
        )
    user = request.user
    if user.is_authenticated and user.email.lower() != invitation.email.lower():
        why = f"This invitation is for {invitation.email}; you are signed in as {user}."
        return _invalid(request, 403, why)
    form = None if user.is_authenticated else SignupForm(request.POST or None)
    if request.method == "POST" and (form is None or form.is_valid()):
        with transaction.atomic():
            if form is not None:
                user = form.save(commit=False)
                user.email = invitation.email
                user.save()
            if not invitation.accept(user):
                transaction.set_rollback(True)
                return _invalid(request, 410, "This invitation was used already.")
            if form is not None:
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            detail = f"{user} joined as {invitation.role} (invited by {invitation.invited_by})"
            record(request, invitation.project, Action.MEMBER_JOINED, detail)
        messages.success(request, f"Welcome to {invitation.project}.")
        return redirect(invitation.project)
    context = {"invitation": invitation, "form": form}
    return render(request, "projects/invitation_accept.html", context)
