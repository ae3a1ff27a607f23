"""One mailbox: the consultant's page, bulk actions from the project page, the end-user page."""

from datetime import timedelta

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import OuterRef, Subquery
from django.http import HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.utils import timezone
from django_htmx.http import HttpResponseStopPolling

from audit import log as audit
from notices.services import missing_values
from notices.tasks import queued_message, send_template
from projects.access import get_mailbox_for_user, get_project_for_user
from projects.cutover import ENDUSER_HELP
from projects.models import CutoverStep, MailboxStep, Role

from . import discovery, logins, services, verification
from .charts import Rate, current_rate, throughput_chart
from .csvio import csv_attachment
from .filters import MailboxFilterForm
from .forms import MailboxForm
from .identity import IdentityRefused
from .links import LinkGone, LinkInvalid, enduser_url, mailbox_for_token, revoke_links
from .live import render_live
from .models import ACTIVE_STATES, SIDES, CopiedItem, ItemError, Mailbox, PassKind
from .report import write_report

ERRORS_SHOWN = 100
PASSES_SHOWN = 20
# While nothing runs the mailbox page still asks now and then, so a pass started elsewhere (the
# project page, the checklist, the command line) shows without a reload.
IDLE_POLL = "20s"


def _user_steps(mailbox: Mailbox) -> list[CutoverStep]:
    """The checklist's per-user steps, each with ``mailbox_done_at``: this mailbox's own part."""
    own_part = MailboxStep.objects.filter(step=OuterRef("pk"), mailbox=mailbox)
    steps = mailbox.project.cutover_steps.filter(kind=CutoverStep.Kind.PER_USER)
    steps = list(steps.annotate(mailbox_done_at=Subquery(own_part.values("done_at")[:1])))
    for step in steps:
        step.enduser_help = ENDUSER_HELP.get(step.key, "")
    return steps


def _progress_context(mailbox: Mailbox) -> dict:
    """What the polled progress partial shows, on the consultant's and the end user's page."""
    # Throughput falls to zero the moment nothing runs; an ETA exists only while copying.
    rate = current_rate(mailbox.progress_samples.all()) if mailbox.is_active else Rate()
    return {"mailbox": mailbox, "rate": rate, "eta": mailbox.eta(rate)}


class LinkForm(forms.Form):
    link_days = forms.IntegerField(
        label="Link valid for (days, empty: until revoked)",
        required=False,
        min_value=1,
        max_value=365,
    )

    def url(self, request, mailbox) -> str:
        """The link to hand out; none while the form shows an error."""
        if self.is_bound and not self.is_valid():
            return ""
        days = self.cleaned_data.get("link_days") if self.is_bound else None
        expires_at = timezone.now() + timedelta(days=days) if days else None
        return request.build_absolute_uri(enduser_url(mailbox, expires_at))


def _history_context(request, mailbox: Mailbox) -> dict:
    """The parts of the mailbox page outside the polled region."""
    errors = ItemError.objects.filter(folder_job__mailbox=mailbox).select_related("folder_job")
    altered = CopiedItem.objects.filter(mailbox=mailbox).exclude(altered="")
    link_form = LinkForm(request.GET or None)
    return {
        "passes": mailbox.passes.all()[:PASSES_SHOWN],
        "item_errors": errors.order_by("-created", "-id")[:ERRORS_SHOWN],
        "error_total": errors.count(),
        "altered_items": altered.order_by("-copied_at", "-id")[:ERRORS_SHOWN],
        "altered_total": altered.count(),
        "user_steps": _user_steps(mailbox),
        "link_form": link_form,
        "enduser_link": link_form.url(request, mailbox),
        "logins": [(side, mailbox.login_label(side)) for side in SIDES],
    }


def _link_made(context) -> str:
    days = context["link_form"].cleaned_data["link_days"]
    until = f"valid for {days} days" if days else "valid until revoked"
    return f"Made an end-user link for {context['mailbox']}, {until}"


@login_required
def mailbox_detail(request, project_id, mailbox_id):
    mailbox = get_mailbox_for_user(request, project_id, mailbox_id)
    current = mailbox.passes.first()
    context = {
        **_progress_context(mailbox),
        "chart": throughput_chart(mailbox.progress_samples.all()),
        "project": mailbox.project,
        "current_pass": current,
        "folder_jobs": current.folder_jobs.all() if current else [],
    }
    if not request.htmx:
        context.update(_history_context(request, mailbox))
        if context["link_form"].is_bound and context["enduser_link"]:
            audit.record(request, mailbox.project, audit.Action.LINK_MADE, _link_made(context))
    live = mailbox.state in ACTIVE_STATES
    return render_live(
        request, "mailboxes/detail.html", "progress", context, live, idle_poll=IDLE_POLL
    )


def _busy(mailbox: Mailbox, what: str) -> str:
    """Why ``mailbox`` cannot be changed now, or "" (a worker may be using it)."""
    if not mailbox.is_active:
        return ""
    return (
        f"A pass of {mailbox} is under way ({mailbox.get_state_display().lower()}): {what} it "
        "once the pass is done, or pause it first."
    )


@login_required
def mailbox_add(request, project_id):
    project = get_project_for_user(request, project_id, Role.OPERATOR)
    form = MailboxForm(request.POST or None, project=project)
    if request.method == "POST" and form.is_valid():
        mailbox = form.save()
        detail = f"Added the mailbox {mailbox} (to {mailbox.target_address})"
        audit.record(request, project, audit.Action.MAILBOX_ADDED, detail)
        messages.success(request, f"Mailbox {mailbox} added.")
        return redirect(mailbox)
    context = {"project": project, "form": form, "mailbox": None}
    return render(request, "mailboxes/mailbox_form.html", context)


@login_required
def mailbox_edit(request, project_id, mailbox_id):
    project = get_project_for_user(request, project_id, Role.OPERATOR)
    mailbox = get_mailbox_for_user(request, project_id, mailbox_id, Role.OPERATOR)
    busy = _busy(mailbox, "edit")
    if busy:
        messages.error(request, busy)
        return redirect(mailbox)
    form = MailboxForm(request.POST or None, instance=mailbox, project=project)
    if request.method == "POST" and form.is_valid():
        edited = form.save(commit=False)
        # Only if no pass started since the page was loaded: one conditional UPDATE, and
        # only the form's fields, so counters a worker writes are never overwritten.
        written = (
            Mailbox.objects.filter(pk=edited.pk)
            .exclude(state__in=ACTIVE_STATES)
            .update(**form.written_fields())
        )
        if written:
            detail = f"Edited the mailbox {edited}: {audit.changed(form)}"
            audit.record(request, project, audit.Action.MAILBOX_EDITED, detail)
            messages.success(request, f"Mailbox {edited} saved.")
        else:
            edited.refresh_from_db(fields=["state"])
            messages.error(request, _busy(edited, "edit") or f"Mailbox {edited} was not saved.")
        return redirect(edited)
    context = {"project": project, "form": form, "mailbox": mailbox}
    return render(request, "mailboxes/mailbox_form.html", context)


@login_required
def mailbox_delete(request, project_id, mailbox_id):
    """GET asks for confirmation and says what goes; POST deletes (mailferry's records only)."""
    mailbox = get_mailbox_for_user(request, project_id, mailbox_id, Role.OPERATOR)
    busy = _busy(mailbox, "delete")
    if busy:
        messages.error(request, busy)
        return redirect(mailbox)
    if request.method == "POST":
        deleted, _ = Mailbox.objects.filter(pk=mailbox.pk).exclude(state__in=ACTIVE_STATES).delete()
        if not deleted:
            mailbox.refresh_from_db(fields=["state"])
            messages.error(request, _busy(mailbox, "delete") or f"{mailbox} was not deleted.")
            return redirect(mailbox)
        detail = f"Deleted the mailbox {mailbox}"
        audit.record(request, mailbox.project, audit.Action.MAILBOX_DELETED, detail)
        messages.success(
            request,
            f"Mailbox {mailbox} deleted from mailferry; nothing was changed on the servers.",
        )
        return redirect(mailbox.project)
    context = {
        "project": mailbox.project,
        "mailbox": mailbox,
        "copied_items": mailbox.copied_items.count(),
        "passes": mailbox.passes.count(),
        "item_errors": ItemError.objects.filter(folder_job__mailbox=mailbox).count(),
    }
    return render(request, "mailboxes/mailbox_confirm_delete.html", context)


@login_required
def mailbox_login_checks(request, project_id):
    """The polled "Test logins" results of the rows ``?id=…`` (swapped in out of band); the
    poll ends (286) once none of them is still being tested."""
    project = get_project_for_user(request, project_id)
    ids = [pk for pk in request.GET.getlist("id") if pk.isdigit()][: logins.POLLED_ROWS]
    mailboxes = list(project.mailboxes.filter(pk__in=ids))
    for mailbox in mailboxes:
        mailbox.project = project
    context = {"project": project, "mailboxes": mailboxes}
    response = render(request, "mailboxes/_login_checks.html", context)
    if request.htmx and not any(logins.is_pending(mailbox) for mailbox in mailboxes):
        response.status_code = HttpResponseStopPolling.status_code
    return response


@login_required
def mailbox_link_revoke(request, project_id, mailbox_id):
    mailbox = get_mailbox_for_user(request, project_id, mailbox_id)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    revoke_links(mailbox)
    detail = f"Revoked every end-user link of {mailbox}"
    audit.record(request, mailbox.project, audit.Action.LINK_REVOKED, detail)
    messages.success(request, f"Every end-user link of {mailbox} so far no longer works.")
    return redirect(mailbox)


def enduser_progress(request, token):
    """Login-free, read-only: exactly one mailbox, found only through its signed token."""
    try:
        mailbox = mailbox_for_token(token, Mailbox.objects.select_related("project"))
    except LinkInvalid:
        # Tampered, cut short by a mail client, or its mailbox deleted: the same page as a
        # revoked link (a user cannot tell these apart, nor do anything else about them).
        return render_live(request, "mailboxes/enduser_gone.html", "gone", {}, False, status=404)
    except LinkGone:
        return render_live(request, "mailboxes/enduser_gone.html", "gone", {}, False, status=410)
    context = {**_progress_context(mailbox), "project": mailbox.project}
    if not request.htmx:
        context["user_steps"] = _user_steps(mailbox)
    response = render_live(
        request, "mailboxes/enduser.html", "progress", context, mailbox.state in ACTIVE_STATES
    )
    # The token is the only key: keep it out of search engines and other sites' referrer logs.
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "no-referrer"
    return response


def _mailboxes(count: int) -> str:
    return f"{count} mailbox{'es' if count != 1 else ''}"


class BulkActionForm(forms.Form):
    ACTIONS = [
        *("prestage", "full", "delta", "missing", "verify"),
        *("retry", "pause", "resume", "logins", "discover"),
        *("notice_planned", "notice_copied", "notice_done"),
    ]
    action = forms.ChoiceField(choices=[(name, name) for name in ACTIONS])
    scope = forms.ChoiceField(choices=[("selected", "selected"), ("filtered", "filtered")])
    older_than_days = forms.IntegerField(required=False, min_value=0, max_value=36500)
    AUDIT = {
        **dict.fromkeys(("prestage", "full", "delta", "missing"), audit.Action.PASS_STARTED),
        "verify": audit.Action.VERIFICATION_STARTED,
        "retry": audit.Action.PASS_RETRIED,
        "pause": audit.Action.PASS_PAUSED,
        "resume": audit.Action.PASS_RESUMED,
        "logins": audit.Action.LOGINS_TESTED,
        "discover": audit.Action.DISCOVERY_STARTED,
        **dict.fromkeys(
            ("notice_planned", "notice_copied", "notice_done"), audit.Action.NOTICE_SENT
        ),
    }

    def run(self, mailboxes, count: int) -> str:
        """Hand the mailboxes to the copy services; say what happened. A pass refused by the
        identity guard raises ``IdentityRefused`` with nothing started."""
        action = self.cleaned_data["action"]
        if action.startswith("notice_"):
            kind = action.removeprefix("notice_")
            return queued_message(kind, *send_template(mailboxes.select_related("project"), kind))
        if action == "verify":
            queued = verification.queue(mailboxes)
            return f"Verification queued for {_mailboxes(queued)}; each row shows its result."
        if action in ("prestage", "full", "delta", "missing"):
            days = self.cleaned_data["older_than_days"] if action == "prestage" else None
            passes = services.start_passes(mailboxes, action, older_than_days=days)
            started = len(passes)
            kind = PassKind(action).label
            busy = count - started
            note = f" ({_mailboxes(busy)} already had a pass under way)" if busy else ""
            queue = f" {services.QUEUE_DOWN}" if services.unqueued(passes) else ""
            return f"{kind} pass started for {_mailboxes(started)}{note}.{queue}"
        if action == "retry":
            queued = services.retry_failed(mailboxes)
            idle = count - queued
            note = f"; {idle} had nothing to retry" if idle else ""
            return f"Retry queued for {_mailboxes(queued)}{note}."
        if action == "discover":
            queued = discovery.request_discovery(mailboxes)
            return f"Discovering {_mailboxes(queued)}; the readiness page shows the results."
        if action == "logins":
            tested = logins.request_checks(mailboxes)
            return f"Testing the logins of {_mailboxes(tested)}; each row shows its result."
        if action == "pause":
            services.pause_mailboxes(mailboxes)
            return f"Pause requested for {_mailboxes(count)} (running ones only)."
        services.resume_mailboxes(mailboxes)
        return f"Resume requested for {_mailboxes(count)} (paused ones only)."


@login_required
def mailbox_bulk_action(request, project_id):
    """Start, retry, pause or resume the selected rows, or every row the filter shows."""
    project = get_project_for_user(request, project_id)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    form = BulkActionForm(request.POST)
    filter_form = MailboxFilterForm(request.POST)
    back = f"{project.get_absolute_url()}?{filter_form.querystring()}"
    if not form.is_valid():
        messages.error(request, "Choose an action and which mailboxes it applies to.")
        return redirect(back)
    mailboxes = project.mailboxes.all()
    if form.cleaned_data["scope"] == "filtered":
        mailboxes = filter_form.filter(mailboxes)
    else:
        ids = [pk for pk in request.POST.getlist("selected") if pk.isdigit()]
        mailboxes = mailboxes.filter(pk__in=ids)
    count = mailboxes.count()
    if not count:
        messages.error(request, "No mailbox selected: tick some rows or choose all filtered.")
        return redirect(back)
    action = form.cleaned_data["action"]
    problem = action.startswith("notice_") and missing_values(project, action[len("notice_") :])
    if problem:
        messages.error(request, problem)
        return redirect(back)
    try:
        done = form.run(mailboxes, count)
        audit.record(request, project, form.AUDIT[form.cleaned_data["action"]], done)
        messages.success(request, done)
    except IdentityRefused as refused:
        messages.error(request, "Nothing was started: some mailboxes would share one account.")
        for message in refused.messages:
            messages.error(request, message)
    return redirect(back)


@login_required
def project_report(request, project_id):
    """The final report as CSV: per user, copied across all passes and what never arrived."""
    project = get_project_for_user(request, project_id)
    audit.record(request, project, audit.Action.EXPORT_DOWNLOADED, "Downloaded the final report")
    response = csv_attachment(project, "report")
    write_report(project, response)
    return response
