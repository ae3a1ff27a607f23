from functools import partial

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render

from audit import log as audit
from projects.access import get_project_for_user
from projects.views.cutover import post_after_access

from .forms import RunWindowForm, ScheduleForm
from .models import RunWindow
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


def _add(request, project, form, save, label: str, name: str):
    """Save a valid ``form`` through ``save``, say so and go back to the page; or say why not
    on the page, the form ``name`` still holding what was typed."""
    if not form.is_valid():
        _errors(request, form)
        template = "schedules/card.html" if request.htmx else "schedules/page.html"
        return render(request, template, card_context(project, **{name: form}), status=400)
    added = save()
    audit.record(request, project, audit.Action.SCHEDULE_ADDED, f"{label}: {added}")
    messages.success(request, f"{label}: {added}.")
    return redirect("schedules", project.pk)


def _remove(request, project, rows, pk: int, label: str):
    removed = get_object_or_404(rows, pk=pk)
    removed.delete()
    audit.record(request, project, audit.Action.SCHEDULE_REMOVED, f"{label}: {removed}")
    messages.success(request, f"{label}: {removed}.")
    return redirect("schedules", project.pk)


@post_after_access
def schedule_add(request, project):
    form = ScheduleForm(request.POST, project=project)
    save = partial(form.save, request.user)
    return _add(request, project, form, save, "Scheduled", "schedule_form")


@post_after_access
def schedule_delete(request, project, schedule_id):
    return _remove(request, project, project.schedules, schedule_id, "Removed")


@post_after_access
def window_add(request, project):
    form = RunWindowForm(request.POST, instance=RunWindow(project=project))
    return _add(request, project, form, form.save, "Run window added", "window_form")


@post_after_access
def window_delete(request, project, window_id):
    return _remove(request, project, project.run_windows, window_id, "Run window removed")
