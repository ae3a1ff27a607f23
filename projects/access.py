"""One access helper per kind of object: every view goes through these, so none can forget
the project scope. Anyone outside the project gets a 404, as if it did not exist; a member
whose role is too low for the request gets a 403."""

from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404

from .models import Project, Role

# Reading needs a viewer; anything else changes something and needs an operator at least.
SAFE_METHODS = ("GET", "HEAD")


def get_project_for_user(request, project_id: int, role: str | None = None) -> Project:
    """The project, with the user's role on it (``project.can_operate``, ``project.can_own``).
    ``role`` asks for more than the method needs: owner-only pages pass ``Role.OWNER``."""
    user = request.user
    projects = Project.objects.for_user(user).with_role(user).select_related("source", "target")
    project = get_object_or_404(projects, pk=project_id)
    needed = role or (Role.VIEWER if request.method in SAFE_METHODS else Role.OPERATOR)
    if not project.allows(needed):
        raise PermissionDenied(f"This needs the {needed} role in {project}.")
    return project


def get_mailbox_for_user(request, project_id: int, mailbox_id: int, role: str | None = None):
    project = get_project_for_user(request, project_id, role)
    mailbox = get_object_or_404(project.mailboxes, pk=mailbox_id)
    mailbox.project = project  # the role travels with it to the page
    return mailbox
