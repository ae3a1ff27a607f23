"""The project's audit log: read by every member, filtered, paged, downloaded as CSV. There is
no view that changes or removes an entry."""

from zoneinfo import ZoneInfo

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render

from mailboxes import csvsafe
from mailboxes.csvio import csv_attachment
from projects.access import get_project_for_user

from .forms import AuditFilterForm
from .log import Action, record

PER_PAGE = 50
CSV_HEADER = ["When", "Time zone", "Who", "From", "Action", "What"]


def _filtered(request, project):
    form = AuditFilterForm(request.GET or None, project=project)
    return form, form.filter(project.audit_entries.select_related("actor"))


@login_required
def audit_log(request, project_id):
    project = get_project_for_user(request, project_id)
    form, entries = _filtered(request, project)
    page = Paginator(entries, PER_PAGE).get_page(request.GET.get("page"))
    context = {"project": project, "form": form, "page": page, "query": form.querystring()}
    template = "audit/log.html#entries" if request.htmx else "audit/log.html"
    return render(request, template, context)


@login_required
def audit_csv(request, project_id):
    project = get_project_for_user(request, project_id)
    form, entries = _filtered(request, project)
    entries = list(entries)
    record(request, project, Action.EXPORT_DOWNLOADED, "Downloaded the audit log (CSV)")
    zone = ZoneInfo(project.time_zone)
    response = csv_attachment(project, "audit")
    writer = csvsafe.writer(response)
    writer.writerow(CSV_HEADER)
    for entry in entries:
        writer.writerow(
            [
                entry.at.astimezone(zone).isoformat(timespec="seconds"),
                project.time_zone,
                entry.actor_label,
                entry.remote_addr or "",
                entry.get_action_display(),
                entry.detail,
            ]
        )
    return response
