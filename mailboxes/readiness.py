"""The readiness page of a project: discovery's figures and problems for every mailbox,
sorted by volume, with the copy time estimate; a CSV of the same; and the "Discover" button.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import reverse

from projects.access import get_project_for_user

from . import csvsafe, discovery
from .csvio import csv_attachment
from .live import render_live

CSV_COLUMNS = [
    "source_address",
    "target_address",
    "items",
    "bytes",
    "folders",
    "oldest",
    "newest",
    "largest",
    "over_limit",
    "quota_free",
    "estimate_seconds",
    "blocking",
    "problems",
    "discovered_at",
]


@login_required
def project_readiness(request, project_id):
    """Every discovered mailbox, largest first, with its problems and estimate; polled while
    a discovery is under way."""
    project = get_project_for_user(request, project_id)
    ready = discovery.readiness(project)
    context = {"project": project, "ready": ready}
    return render_live(
        request, "mailboxes/readiness.html", "readiness", context, bool(ready.pending)
    )


@login_required
def project_discover(request, project_id):
    """Discover (again) every mailbox of the project in the worker."""
    project = get_project_for_user(request, project_id)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    count = discovery.request_discovery(project.mailboxes.all())
    if count:
        messages.success(request, f"Discovering {count} mailbox{'es' if count != 1 else ''}.")
    else:
        messages.error(request, "This project has no mailboxes to discover yet.")
    return redirect(reverse("project_readiness", args=[project.pk]))


@login_required
def project_readiness_csv(request, project_id):
    project = get_project_for_user(request, project_id)
    ready = discovery.readiness(project)
    response = csv_attachment(project, "readiness")
    writer = csvsafe.writer(response)
    writer.writerow(CSV_COLUMNS)
    for row in ready.rows:
        report = row.report
        quota = report.get("quota") or {}
        largest = max((item["size"] for item in report.get("largest", [])), default=0)
        writer.writerow(
            [
                row.mailbox.source_address,
                row.mailbox.target_address,
                report.get("items", 0),
                report.get("bytes", 0),
                len(report.get("folders", [])),
                report.get("oldest") or "",
                report.get("newest") or "",
                largest,
                report.get("over_limit_count", 0),
                quota.get("free", ""),
                row.estimate_seconds,
                "yes" if row.mailbox.discovery_blocking else "no",
                discovery.problems_text(report),
                report.get("discovered_at", ""),
            ]
        )
    writer.writerow(
        ["TOTAL", "", ready.items, ready.bytes, "", "", "", "", "", "", ready.estimate_seconds]
        + [ready.blocked, "", ""]
    )
    return response
