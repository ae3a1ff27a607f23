"""Where the rest of the app says something happened: each function is one line at the place
of the event. A notification must never break the work it reports on, so failures here are
logged, not raised."""

import functools
import logging

from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from audit import log as audit
from projects.models import Project

from .models import Notice, NoticeKind, NoticeSettings

logger = logging.getLogger(__name__)


def _quiet(function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            function(*args, **kwargs)
        except Exception:
            logger.exception("notification for %s not queued", function.__name__)

    return wrapper


def tell_end_users(project: Project, mailboxes, kind: str) -> None:
    """The automatic end-user message, when the project opted in."""
    from .tasks import send_template

    if NoticeSettings.of(project).auto(kind):
        queued, _ = send_template(mailboxes, kind)
        if queued:
            detail = f"Queued the '{kind}' message for {queued} mailbox(es) on its event"
            audit.record(None, project, audit.Action.NOTICE_SENT, detail, actor_label=audit.WORKER)


def tell_consultants(project: Project, event_key: str, text: str) -> None:
    """One message per member by e-mail (if chosen) and one webhook POST, once per event."""
    choices = NoticeSettings.of(project)
    recipients = []
    if choices.email_members:
        members = project.members.exclude(email="").exclude(pk__in=choices.quiet_members.all())
        emails = members.values_list("email", flat=True)
        recipients += [(Notice.Channel.EMAIL, email) for email in emails]
    if choices.webhook_url:
        recipients.append((Notice.Channel.WEBHOOK, "webhook"))
    from .tasks import send_on_commit

    ids = []
    for channel, recipient in recipients:
        notice, new = Notice.objects.get_or_create(
            project=project,
            mailbox=None,
            kind=NoticeKind.CONSULTANT,
            event_key=event_key[:100],
            channel=channel,
            recipient=recipient,
            defaults={"subject": f"[{project}] {text.splitlines()[0][:250]}", "text": text},
        )
        if new:
            ids.append(notice.pk)
    if ids:
        detail = f"Told consultants ({len(ids)} message(s)): {text.splitlines()[0][:200]}"
        audit.record(None, project, audit.Action.NOTICE_SENT, detail, actor_label=audit.WORKER)
    send_on_commit(ids)


@_quiet
def pass_finished(mailbox_pass) -> None:
    mailbox_pass.refresh_from_db()
    mailbox = mailbox_pass.mailbox
    project = mailbox.project
    if mailbox_pass.error:
        text = f"{mailbox_pass.kind} pass of {mailbox} finished with errors: {mailbox_pass.error}"
    else:
        text = f"{mailbox_pass.kind} pass of {mailbox} finished."
        tell_end_users(project, [mailbox], NoticeKind.COPIED)
    tell_consultants(project, f"pass-{mailbox_pass.pk}", text)


@_quiet
def mailbox_failed(mailbox_pass, message: str) -> None:
    mailbox = mailbox_pass.mailbox
    text = f"{mailbox} failed ({mailbox_pass.kind} pass): {message}"
    tell_consultants(mailbox.project, f"failed-{mailbox_pass.pk}", text)


@_quiet
def discovery_done(mailbox_ids) -> None:
    from mailboxes.discovery import problems_text
    from mailboxes.models import Mailbox

    blocked = Mailbox.objects.filter(pk__in=mailbox_ids, discovery_blocking=True)
    for mailbox in blocked.select_related("project"):
        text = f"Discovery found blocking problems in {mailbox}: {problems_text(mailbox.discovery)}"
        key = f"discovery-{mailbox.pk}-{mailbox.discovered_at:%Y%m%d%H%M%S}"
        tell_consultants(mailbox.project, key, text)


@_quiet
def steps_ticked(project: Project, ticked) -> None:
    """The last DNS step ticked itself: DNS is complete."""
    dns = project.cutover_steps.filter(kind="dns")
    if any(s.kind == "dns" for s in ticked) and not dns.filter(done_at__isnull=True).exists():
        tell_consultants(project, "dns-complete", f"DNS is complete for {project}.")


@_quiet
def workers_silent() -> None:
    """No copy worker has answered while a project's passes wait for one: told once per
    silence (from the last heartbeat heard), by whoever still runs beat and the checks queue."""
    from mailboxes.models import ACTIVE_STATES
    from mailboxes.workers import silence

    for project in Project.objects.filter(mailboxes__state__in=ACTIVE_STATES).distinct():
        quiet = silence(project.mailboxes.all())
        if quiet is None:
            continue
        heard = f"{quiet.since:%Y-%m-%d %H:%M:%S} UTC" if quiet.since else "never"
        text = (
            f"No copy worker is answering (last heard: {heard}); {quiet.mailboxes} mailbox(es) "
            f"of {project} wait for one."
        )
        tell_consultants(project, f"workers-silent-{quiet.since or 'never'}", text)


@receiver(pre_save, sender=Project)
def _remember_before(sender, instance, **kwargs):
    before = Project.objects.filter(pk=instance.pk).values("planned_cutover", "state").first()
    instance._notices_before = before or {}


@receiver(post_save, sender=Project)
@_quiet
def _project_changed(sender, instance, created, **kwargs):
    """A cutover date set or moved mails 'planned'; closing the project mails 'done'."""
    before = getattr(instance, "_notices_before", {})
    mailboxes = instance.mailboxes.select_related("project")
    if instance.planned_cutover and instance.planned_cutover != before.get("planned_cutover"):
        tell_end_users(instance, mailboxes, NoticeKind.PLANNED)
    if instance.state == Project.State.CLOSED and before.get("state") != Project.State.CLOSED:
        tell_end_users(instance, mailboxes, NoticeKind.DONE)
