"""The cutover-day checklist: tick and un-tick (recorded), edit the steps (add, add back, rename,
move, remove, reset to the route's template), start the delta pass.

Per-user steps show how many mailboxes are done; the mailboxes themselves are a filtered page of
the drill-down (``PerUserFilterForm``), so the page stays the same size whatever the project's
size. Every action keeps the drill-down's filter and page (``here``) in its URL.
"""

import logging
from functools import wraps

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import transaction
from django.http import HttpResponseNotAllowed, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property

from audit import log as audit
from dnscheck.models import DnsCheck
from mailboxes.filters import MailboxFilterForm
from mailboxes.identity import IdentityRefused
from mailboxes.services import start_passes

from ..access import get_mailbox_for_user, get_project_for_user
from ..cutover import (
    ROUTES,
    add_step,
    add_template_step,
    checklist_route,
    dns_blocking,
    ensure_checklist,
    mailboxes_in_state,
    missing_steps,
    move_step,
    passes_done,
    per_user_done,
    reset_checklist,
)
from ..models import CutoverEvent, CutoverStep, MailboxStep, Project

logger = logging.getLogger(__name__)


def post_after_access(view=None, *, role=None):
    """Outsiders get 404 whatever the method (access first), members may only POST: as an
    operator, or with ``role`` when the view asks for more (``@post_after_access(role=…)``)."""

    def decorate(view):
        @login_required
        @wraps(view)
        def wrapper(request, project_id, **kwargs):
            project = get_project_for_user(
                request, project_id, role if request.method == "POST" else None
            )
            if request.method != "POST":
                return HttpResponseNotAllowed(["POST"])
            return view(request, project, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate


# Mailboxes per page of the per-user drill-down.
PER_USER_PAGE = 50


class StepForm(forms.Form):
    title = forms.CharField(max_length=200)
    why = forms.CharField(max_length=300, required=False)
    owner = forms.ModelChoiceField(queryset=None, required=False)

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = project.members.all()


class NewStepForm(forms.Form):
    title = forms.CharField(max_length=200)
    kind = forms.ChoiceField(
        choices=[c for c in CutoverStep.Kind.choices if c[0] in ("manual", "per_user")]
    )
    why = forms.CharField(
        label="Why it matters",
        max_length=300,
        required=False,
        help_text="One line anyone understands: what goes wrong if it is skipped.",
    )


class TemplateStepForm(forms.Form):
    """Add back one of the route's template steps the checklist does not have."""

    key = forms.ChoiceField(label="Step of the template")

    def __init__(self, *args, missing, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["key"].choices = [(t.key, t.title) for t in missing]


class ResetForm(forms.Form):
    confirm = forms.BooleanField(
        label="Yes: drop every step with its ticks and history, and start again from the template"
    )


class PerUserFilterForm(forms.Form):
    """The drill-down of per-user steps: one step's done or to-do mailboxes, by address."""

    step = forms.ChoiceField(label="Step", required=False)
    state = forms.ChoiceField(
        label="State", required=False, choices=[("", "Any"), ("todo", "To do"), ("done", "Done")]
    )
    q = forms.CharField(label="Address or name", required=False, max_length=254)

    def __init__(self, data, *, steps):
        super().__init__(data)
        self.steps = steps
        self.fields["step"].choices = [(str(step.pk), step.title) for step in steps]

    @cached_property
    def chosen(self) -> dict:
        """The valid filter; a hand-edited URL falls back to the first step, unfiltered."""
        data = self.cleaned_data if self.is_valid() else {}
        step = next((s for s in self.steps if str(s.pk) == data.get("step")), None)
        return {
            "step": step or (self.steps[0] if self.steps else None),
            "state": data.get("state", ""),
            "q": data.get("q", "").strip(),
        }

    def filter(self, mailboxes):
        chosen = self.chosen
        if chosen["q"]:
            mailboxes = MailboxFilterForm({"q": chosen["q"]}).filter(mailboxes)
        if chosen["step"] and chosen["state"]:
            mailboxes = mailboxes_in_state(mailboxes, chosen["step"], chosen["state"] == "done")
        return mailboxes


def _query(form: PerUserFilterForm, page_number: int) -> str:
    """The drill-down's filter and a page of it as a query string."""
    query = QueryDict(mutable=True)
    chosen = form.chosen
    # The step matters only to the state filter: the table shows every per-user step.
    if chosen["step"] and chosen["state"]:
        query.update({"step": chosen["step"].pk, "state": chosen["state"]})
    if chosen["q"]:
        query["q"] = chosen["q"]
    if page_number > 1:
        query["page"] = page_number
    return f"?{query.urlencode()}" if query else ""


def per_user_context(project: Project, per_user: list, query) -> dict:
    """The per-user steps' counts and one page of the drill-down."""
    form = PerUserFilterForm(query, steps=per_user)
    mailboxes = form.filter(project.mailboxes.all())
    page = Paginator(mailboxes, PER_USER_PAGE).get_page(query.get("page"))
    page.object_list = list(page.object_list)
    parts = MailboxStep.objects.filter(step__in=per_user, mailbox__in=page.object_list)
    done = {(p.step_id, p.mailbox_id): p for p in parts.select_related("done_by")}
    cutover_url = reverse("cutover", args=[project.pk])
    page_urls = {}
    if page.has_previous():
        page_urls["previous"] = cutover_url + _query(form, page.previous_page_number())
    if page.has_next():
        page_urls["next"] = cutover_url + _query(form, page.next_page_number())
    return {
        "per_user": per_user,
        "per_user_form": form,
        "per_user_filter": form.chosen,
        "page": page,
        "mailbox_rows": [
            (m, [(s, done.get((s.pk, m.pk))) for s in per_user]) for m in page.object_list
        ],
        # Every action posts to its URL plus ``here``, so that it leaves the drill-down as it was.
        "here": _query(form, page.number),
        "page_urls": page_urls,
    }


def checklist_context(project: Project, query=None) -> dict:
    steps = list(project.cutover_steps.select_related("owner", "done_by", "project"))
    domains = list(project.domains.all())
    checks = list(DnsCheck.objects.latest_per_domain(domains).with_results())
    per_user = [s for s in steps if s.kind == CutoverStep.Kind.PER_USER]
    done = per_user_done(per_user)
    missing = missing_steps(project, steps)
    rows = []
    for step in steps:
        waiting = []
        if step.kind == CutoverStep.Kind.DNS and not step.is_done:
            waiting = dns_blocking(step, checks, len(domains))
        elif step.kind in (CutoverStep.Kind.COPY, CutoverStep.Kind.DELTA) and not step.is_done:
            waiting = [] if passes_done(step) else ["not every mailbox's pass is done yet"]
        more = max(0, len(waiting) - 5)
        rows.append(
            {"step": step, "waiting": waiting[:5], "more": more, "done": done.get(step.pk, 0)}
        )
    return {
        "project": project,
        "rows": rows,
        "members": project.members.all(),
        "mailbox_count": project.mailboxes.count(),
        **per_user_context(project, per_user, query or QueryDict()),
        "checks": checks,
        "events": CutoverEvent.objects.filter(step__project=project).select_related(
            "step", "by", "mailbox"
        )[:25],
        "polling": project.state == Project.State.CUTOVER,
        "new_step_form": NewStepForm(),
        "template_step_form": TemplateStepForm(missing=missing) if missing else None,
        "reset_form": ResetForm(),
        "route": ROUTES[checklist_route(project)],
    }


def _checklist_response(request, project):
    """After an action: the checklist with the drill-down as it was (its filter is in the URL)."""
    if request.htmx:
        context = checklist_context(project, request.GET)
        return render(request, "projects/cutover.html#checklist", context)
    url = reverse("cutover", args=[project.pk])
    return redirect(f"{url}?{request.GET.urlencode()}" if request.GET else url)


@login_required
def cutover(request, project_id):
    project = get_project_for_user(request, project_id)
    ensure_checklist(project)
    # The drill-down pushes its URL: going back to it asks for the whole page again.
    partial = request.htmx and not request.htmx.history_restore_request
    template = "projects/cutover.html#checklist" if partial else "projects/cutover.html"
    return render(request, template, checklist_context(project, request.GET))


def _step(project, step_id) -> CutoverStep:
    return get_object_or_404(project.cutover_steps.select_related("project"), pk=step_id)


@post_after_access
def cutover_tick(request, project, step_id):
    step = _step(project, step_id)
    note = request.POST.get("note", "").strip()
    if request.POST.get("done") == "1":
        step.tick(request.user, note)
        audit.record(request, project, audit.Action.CHECKLIST_TICKED, f"Ticked “{step}”")
    elif step.is_done:
        step.untick(request.user, note)
        audit.record(request, project, audit.Action.CHECKLIST_TICKED, f"Unticked “{step}”")
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
    detail = f"{'Ticked' if done else 'Unticked'} “{step}” for {mailbox}"
    audit.record(request, project, audit.Action.CHECKLIST_TICKED, detail)
    return _checklist_response(request, project)


@post_after_access
def cutover_step_add(request, project):
    """A step of the project's own, or (``key``) a template step added back."""
    if "key" in request.POST:
        return _add_template_step(request, project)
    form = NewStepForm(request.POST)
    if form.is_valid():
        step = add_step(project, **form.cleaned_data)
        audit.record(request, project, audit.Action.CHECKLIST_EDITED, f"Added the step “{step}”")
    else:
        messages.error(request, "A new step needs a title (and a why of 300 characters at most).")
    return _checklist_response(request, project)


def _add_template_step(request, project):
    form = TemplateStepForm(
        request.POST, missing=missing_steps(project, project.cutover_steps.all())
    )
    # Checked again under the project's lock: two people may add the same step at once.
    step = add_template_step(project, form.cleaned_data["key"]) if form.is_valid() else None
    if step is None:
        messages.error(request, "That step is not one the checklist is missing.")
    else:
        audit.record(request, project, audit.Action.CHECKLIST_EDITED, f"Added back “{step}”")
    return _checklist_response(request, project)


@post_after_access
def cutover_step_edit(request, project, step_id):
    step = _step(project, step_id)
    form = StepForm(request.POST, project=project)
    if form.is_valid():
        step.title = form.cleaned_data["title"]
        step.why = form.cleaned_data["why"]
        step.owner = form.cleaned_data["owner"]
        step.save(update_fields=["title", "why", "owner"])
        audit.record(request, project, audit.Action.CHECKLIST_EDITED, f"Edited the step “{step}”")
    else:
        messages.error(
            request,
            "A step needs a title (and a why of 300 characters at most), and its owner must be "
            "a project member.",
        )
    return _checklist_response(request, project)


@post_after_access
def cutover_step_move(request, project, step_id):
    step = _step(project, step_id)
    direction = "up" if request.POST.get("direction") == "up" else "down"
    move_step(project, step, up=direction == "up")
    audit.record(request, project, audit.Action.CHECKLIST_EDITED, f"Moved “{step}” {direction}")
    return _checklist_response(request, project)


@post_after_access
def cutover_step_remove(request, project, step_id):
    """The step goes with its per-mailbox parts and history (its ticks mean nothing without it)."""
    step = _step(project, step_id)
    step.delete()
    audit.record(request, project, audit.Action.CHECKLIST_EDITED, f"Removed the step “{step}”")
    return _checklist_response(request, project)


@post_after_access
def cutover_reset(request, project):
    """Start again from the route's template, once confirmed: every step goes with its ticks."""
    if ResetForm(request.POST).is_valid():
        dropped = reset_checklist(project)
        detail = f"Reset the checklist to its template ({dropped} step(s) dropped)"
        audit.record(request, project, audit.Action.CHECKLIST_EDITED, detail)
        # The steps' history went with them: the log keeps who started the list again.
        logger.info(
            "Checklist of project %s reset to its template by %s: %s step(s) dropped",
            project.pk,
            request.user,
            dropped,
        )
        messages.success(
            request,
            "The checklist starts again from the template for migrations "
            f"{ROUTES[checklist_route(project)]}: "
            f"{dropped} step(s) and their ticks were dropped.",
        )
    else:
        messages.error(request, "Nothing was reset: tick the confirmation first.")
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
    detail = f"Started a delta pass for {len(started)} mailbox(es) from the checklist"
    audit.record(request, project, audit.Action.PASS_STARTED, detail)
    messages.success(request, f"Delta pass queued for {len(started)} mailbox(es).")
    return _checklist_response(request, project)


@post_after_access
def cutover_state(request, project):
    """Start the cutover (DNS re-checked every minute, page live) or close the project."""
    state = request.POST.get("state")
    if state in (Project.State.CUTOVER, Project.State.CLOSED) and state != project.state:
        was = project.get_state_display()
        project.state = state
        project.save(update_fields=["state"])
        detail = f"Changed the project state from {was} to {project.get_state_display()}"
        audit.record(request, project, audit.Action.PROJECT_STATE, detail)
    return redirect("cutover", project.pk)
