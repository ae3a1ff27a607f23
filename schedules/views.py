from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render

from audit import log as audit
from projects.access import get_project_for_user

from .forms import RunWindowForm, ScheduleForm
from .templatetags.schedules import card_context


@login_required
def schedules(request, project_id):
    """The project's schedules and run windows: a card the project page loads (htmx), or a
    page of its own without JavaScript."""
    project = get_project_for_user(request, project_id)
    template = "schedules/card.html" if request.htmx else "schedules/page.html"
    return render(request, template, card_context(project))


def _errors(request, form) -> None:
    for field, errors in form.errors.items():
        label = form.fields[field].label if field in form.fields else ""
        for error in errors:
            messages.error(request, f"{label}: {error}" if label else error)


@login_required
def schedule_add(request, project_id):
    project = get_project_for_user(request, project_id)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    form = ScheduleForm(request.POST, project=project)
    if form.is_valid():
        schedule = form.save(request.user)
        audit.record(request, project, audit.Action.SCHEDULE_ADDED, f"Scheduled: {schedule}")
        messages.success(request, f"Scheduled: {schedule}.")
    else:
        _errors(request, form)
    return redirect(project)


@login_required
def schedule_delete(request, project_id, schedule_id):
    project = get_project_for_user(request, project_id)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    schedule = get_object_or_404(project.schedules, pk=schedule_id)
    schedule.delete()
    audit.record(request, project, audit.Action.SCHEDULE_REMOVED, f"Removed: {schedule}")
    messages.success(request, "Schedule removed.")
    return redirect(project)


@login_required
def window_add(request, project_id):
    project = get_project_for_user(request, project_id)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    form = RunWindowForm(request.POST, instance=project.run_windows.model(project=project))
    if form.is_valid():
        window = form.save()
        audit.record(request, project, audit.Action.SCHEDULE_ADDED, f"Run window added: {window}")
        messages.success(request, f"Run window added: {window}.")
    else:
        _errors(request, form)
    return redirect(project)


@login_required
def window_delete(request, project_id, window_id):
    project = get_project_for_user(request, project_id)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    window = get_object_or_404(project.run_windows, pk=window_id)
    window.delete()
    audit.record(request, project, audit.Action.SCHEDULE_REMOVED, f"Run window removed: {window}")
    messages.success(request, "Run window removed.")
    return redirect(project)
