"""One access helper per kind of object: every view goes through these, so none can forget
the project scope. Anyone outside the project gets a 404, as if it did not exist."""

from django.shortcuts import get_object_or_404

from .models import Project


def get_project_for_user(request, project_id: int) -> Project:
    projects = Project.objects.for_user(request.user).select_related("source", "target")
    return get_object_or_404(projects, pk=project_id)


def get_mailbox_for_user(request, project_id: int, mailbox_id: int):
    project = get_project_for_user(request, project_id)
    return get_object_or_404(project.mailboxes.select_related("project"), pk=mailbox_id)
