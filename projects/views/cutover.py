"""The cutover-day checklist: tick and un-tick (recorded), edit the steps, start the delta pass."""

from functools import wraps

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone

from dnscheck.models import DnsCheck
from mailboxes.identity import IdentityRefused
from mailboxes.services import start_passes

from ..access import get_mailbox_for_user, get_project_for_user
from ..cutover import dns_blocking, ensure_checklist, passes_done
from ..models import CutoverEvent, CutoverStep, MailboxStep, Project


def post_after_access(view):
    """Outsiders get 404 whatever the method (access first), members may only POST."""

    @login_required
    @wraps(view)
    def wrapper(request, project_id, **kwargs):
        project = get_project_for_user(request, project_id)
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        return view(request, project, **kwargs)

    return wrapper


class StepForm(forms.Form):
    title = forms.CharField(max_length=200)
    owner = forms.ModelChoiceField(queryset=None, required=False)

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = project.members.all()


class NewStepForm(forms.Form):
    title = forms.CharField(max_length=200)
    kind = forms.ChoiceField(
        choices=[c for c in CutoverStep.Kind.choices if c[0] in ("manual", "per_user")]
    )


def checklist_context(project: Project) -> dict:
    steps = list(project.cutover_steps.select_related("owner", "done_by", "project"))
    domains = list(project.domains.all())
    checks = list(DnsCheck.objects.latest_per_domain(domains).with_results())
    mailboxes = list(project.mailboxes.all())
    per_user = [s for s in steps if s.kind == CutoverStep.Kind.PER_USER]
    parts = {
        (p.step_id, p.mailbox_id): p
        for p in MailboxStep.objects.filter(step__in=per_user).select_related("done_by")
    }
    rows = []
    for step in steps:
        waiting = []
        if step.kind == CutoverStep.Kind.DNS and not step.is_done:
            waiting = dns_blocking(step, checks, len(domains))
        elif step.kind in (CutoverStep.Kind.COPY, CutoverStep.Kind.DELTA) and not step.is_done:
            waiting = [] if passes_done(step) else ["not every mailbox's pass is done yet"]
        rows.append({"step": step, "waiting": waiting[:5], "more": max(0, len(waiting) - 5)})
    return {
        "project": project,
        "rows": rows,
        "members": project.members.all(),
        "per_user": per_user,
        "mailbox_rows": [(m, [(s, parts.get((s.pk, m.pk))) for s in per_user]) for m in mailboxes],
        "checks": checks,
        "events": CutoverEvent.objects.filter(step__project=project).select_related(
            "step", "by", "mailbox"
        )[:25],
        "polling": project.state == Project.State.CUTOVER,
        "new_step_form": NewStepForm(),
    }


def _checklist_response(request, project):
    if request.htmx:
        return render(request, "projects/cutover.html#checklist", checklist_context(project))
    return redirect("cutover", project.pk)


@login_required
def cutover(request, project_id):
    project = get_project_for_user(request, project_id)
    ensure_checklist(project)
    template = "projects/cutover.html#checklist" if request.htmx else "projects/cutover.html"
    return render(request, template, checklist_context(project))


def _step(project, step_id) -> CutoverStep:
    return get_object_or_404(project.cutover_steps.select_related("project"), pk=step_id)


@post_after_access
def cutover_tick(request, project, step_id):
    step = _step(project, step_id)
    note = request.POST.get("note", "").strip()
    if request.POST.get("done") == "1":
        step.tick(request.user, note)
    elif step.is_done:
        step.untick(request.user, note)
    return _checklist_response(request, project)


@post_after_access
def cutover_mailbox_tick(request, project, step_id, mailbox_id):
    step = _step(project, step_id)
    mailbox = get_mailbox_for_user(request, project.pk, mailbox_id)
    if step.kind != CutoverStep.Kind.PER_USER:
        messages.error(request, f"“{step}” is not done per mailbox.")
        return _checklist_response(request, project)
    done = request.POST.get("done") == "1"
    step.set_mailbox_done(mailbox, request.user, done, request.POST.get("note", "").strip())
    return _checklist_response(request, project)


@post_after_access
def cutover_step_add(request, project):
    form = NewStepForm(request.POST)
    if form.is_valid():
        last = project.cutover_steps.order_by("-position").first()
        project.cutover_steps.create(
            title=form.cleaned_data["title"],
            kind=form.cleaned_data["kind"],
            position=(last.position + 1) if last else 1,
        )
    else:
        messages.error(request, "A new step needs a title.")
    return _checklist_response(request, project)


@post_after_access
def cutover_step_edit(request, project, step_id):
    step = _step(project, step_id)
    form = StepForm(request.POST, project=project)
    if form.is_valid():
        step.title = form.cleaned_data["title"]
        step.owner = form.cleaned_data["owner"]
        step.save(update_fields=["title", "owner"])
    else:
        messages.error(request, "A step needs a title, and its owner must be a project member.")
    return _checklist_response(request, project)


@post_after_access
def cutover_step_move(request, project, step_id):
    step = _step(project, step_id)
    with transaction.atomic():
        steps = list(project.cutover_steps.select_for_update())
        index = steps.index(step)
        other = index - 1 if request.POST.get("direction") == "up" else index + 1
        if 0 <= other < len(steps):
            steps[index], steps[other] = steps[other], steps[index]
        for position, s in enumerate(steps, start=1):
            s.position = position
        CutoverStep.objects.bulk_update(steps, ["position"])
    return _checklist_response(request, project)


@post_after_access
def cutover_step_remove(request, project, step_id):
    _step(project, step_id).delete()
    return _checklist_response(request, project)


@post_after_access
def cutover_delta(request, project, step_id):
    """Queue a delta pass for every mailbox (those with a pass under way are left alone)."""
    step = _step(project, step_id)
    if step.kind != CutoverStep.Kind.DELTA:
        messages.error(request, f"“{step}” does not start passes.")
        return _checklist_response(request, project)
    try:
        with transaction.atomic():
            # Before the passes exist: they must count as started since the button.
            step.passes_started_at = timezone.now()
            step.save(update_fields=["passes_started_at"])
            started = start_passes(project.mailboxes.all(), "delta")
    except IdentityRefused as refused:
        messages.error(
            request, "No delta pass was started: some mailboxes would share one account."
        )
        for message in refused.messages:
            messages.error(request, message)
        return _checklist_response(request, project)
    messages.success(request, f"Delta pass queued for {len(started)} mailbox(es).")
    return _checklist_response(request, project)


@post_after_access
def cutover_state(request, project):
    """Start the cutover (DNS re-checked every minute, page live) or close the project."""
    state = request.POST.get("state")
    if state in (Project.State.CUTOVER, Project.State.CLOSED):
        project.state = state
        project.save(update_fields=["state"])
    return redirect("cutover", project.pk)
