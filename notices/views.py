"""The outbox (every message with its content and fate), sending, re-sending, and the
project's templates with a preview for one real mailbox. Sending is queued for the worker."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render

from audit import log as audit
from projects.access import get_project_for_user
from projects.views.cutover import post_after_access

from . import texts
from .forms import NoticeSettingsForm
from .models import END_USER_KINDS, NoticeKind, NoticeSettings, NoticeTemplate
from .services import compose, missing_values
from .tasks import queued_message, send_on_commit, send_template


@login_required
def outbox(request, project_id):
    project = get_project_for_user(request, project_id)
    choices = NoticeSettings.of(project)
    form = NoticeSettingsForm(request.POST or None, instance=choices)
    if request.method == "POST":
        if form.is_valid():
            form.save()
            detail = f"Changed the notification settings: {audit.changed(form)}"
            audit.record(request, project, audit.Action.NOTICES_CHANGED, detail)
            messages.success(request, "Notification settings saved.")
            return redirect("notices_outbox", project.pk)
        messages.error(request, "The settings were not saved: see the form.")
    notices = project.notices.select_related("mailbox")[:500]
    return render(
        request,
        "notices/outbox.html",
        {
            "project": project,
            "notices": notices,
            "kinds": END_USER_KINDS,
            "form": form,
            "has_webhook": bool(choices.webhook_url),
        },
    )


@login_required
def notice_detail(request, project_id, notice_id):
    project = get_project_for_user(request, project_id)
    notice = get_object_or_404(project.notices, pk=notice_id)
    return render(request, "notices/notice.html", {"project": project, "notice": notice})


@post_after_access
def notice_resend(request, project, notice_id):
    notice = get_object_or_404(project.notices, pk=notice_id)
    notice.requeue()
    send_on_commit([notice.pk])
    detail = f"Sent “{notice.subject}” again to {notice.recipient}"
    audit.record(request, project, audit.Action.NOTICE_SENT, detail)
    messages.success(request, f"Sending again to {notice.recipient}.")
    return redirect("notices_outbox", project.pk)


@post_after_access
def notices_send(request, project):
    """Queue one template for the selected mailboxes (source addresses, or all)."""
    kind = request.POST.get("template")
    if kind not in NoticeKind.values or kind == NoticeKind.CONSULTANT:
        messages.error(request, "Choose which message to send.")
        return redirect("notices_outbox", project.pk)
    problem = missing_values(project, kind)
    if problem:
        messages.error(request, problem)
        return redirect("notices_outbox", project.pk)
    mailboxes = project.mailboxes.select_related("project")
    addresses = request.POST.get("addresses", "").split()
    if addresses:
        mailboxes = mailboxes.filter(source_address__in=addresses)
    queued, skipped = send_template(mailboxes, kind, again=bool(request.POST.get("again")))
    done = queued_message(kind, queued, skipped)
    audit.record(request, project, audit.Action.NOTICE_SENT, done)
    messages.success(request, done)
    return redirect("notices_outbox", project.pk)


@login_required
def notice_template(request, project_id, kind):
    """Edit one template (POST saves) and preview it for one of the project's mailboxes."""
    project = get_project_for_user(request, project_id)
    if kind not in [k.value for k in END_USER_KINDS]:
        return redirect("notices_outbox", project.pk)
    template = NoticeTemplate.of(project, kind)
    if request.method == "POST":
        subject = request.POST.get("subject", "").strip()
        body = request.POST.get("body", "").strip()
        if not subject or not body:
            messages.error(request, "A message needs a subject and a text.")
        else:
            template.subject, template.body = subject[:200], body
            template.save()
            detail = f"Edited the “{template.get_kind_display()}” message template"
            audit.record(request, project, audit.Action.NOTICES_CHANGED, detail)
            unknown = texts.unknown_variables(subject + body)
            if unknown:
                messages.warning(request, f"Unknown variables left as written: {unknown}")
            messages.success(request, "Template saved.")
            return redirect("notice_template", project.pk, kind)
    sample = project.mailboxes.select_related("project").order_by("pk").first()
    preview = compose(sample, kind) if sample is not None else None
    return render(
        request,
        "notices/template.html",
        {
            "project": project,
            "template": template,
            "sample": sample,
            "preview": preview,
            "variables": texts.VARIABLES,
        },
    )
