"""Writing end-user messages into the outbox, and delivering what the outbox holds."""

import logging
import smtplib
from zoneinfo import ZoneInfo

import httpx
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import IntegrityError, transaction
from django.utils import formats, timezone

from mailboxes.connectors.base import TransientError
from mailboxes.connectors.reach import ReachError
from mailboxes.connectors.reach_http import reach_transport
from projects.models import endpoint_reach

from . import texts
from .links import absolute_progress_link
from .models import Notice, NoticeSettings, NoticeTemplate, mail_configured

logger = logging.getLogger(__name__)


def event_key(project, kind: str) -> str:
    """The event a message is about: a new cutover date is news again, the same one is not."""
    if kind == "planned" and project.planned_cutover:
        return project.planned_cutover.isoformat()
    return kind


def _local(when, zone: str) -> str:
    return formats.date_format(timezone.localtime(when, ZoneInfo(zone)), "DATETIME_FORMAT")


def values_for(mailbox) -> dict:
    project = mailbox.project
    when = project.planned_cutover
    contact = project.contact_name or project.contact_email or "your IT contact"
    if project.contact_name and project.contact_email:
        contact = f"{project.contact_name} ({project.contact_email})"
    return {
        "name": mailbox.display_name or mailbox.source_address,
        "old_address": mailbox.source_address,
        "new_address": mailbox.target_address,
        "cutover_date": _local(when, project.time_zone) if when else "(not set yet)",
        "progress_link": absolute_progress_link(mailbox),
        "contact": contact,
        "steps": NoticeSettings.of(project).steps,
    }


def missing_values(project, kind: str) -> str:
    """Why ``kind`` should not go out yet, or "": a message naming a cutover date that is not
    set would tell every user "(not set yet)"."""
    template = NoticeTemplate.of(project, kind)
    if project.planned_cutover is None and "cutover_date" in template.subject + template.body:
        return (
            f"The “{template.subject}” message names the cutover date, which is not set yet: "
            "set it on the project (Edit project) first, or take it out of the template."
        )
    return ""


def compose(mailbox, kind: str) -> tuple[str, str, str]:
    template = NoticeTemplate.of(mailbox.project, kind)
    return texts.render(template.subject, template.body, values_for(mailbox))


def queue_for(mailboxes, kind: str, again: bool = False) -> list[tuple[object, Notice, bool]]:
    """(mailbox, notice, new) for each mailbox: a new message, or the one already there
    (queued again only with ``again``)."""
    results = []
    for mailbox in mailboxes:
        key = event_key(mailbox.project, kind)
        existing = Notice.objects.filter(mailbox=mailbox, kind=kind, event_key=key).first()
        if existing is not None:
            if again:
                existing.requeue()
            results.append((mailbox, existing, again))
            continue
        subject, text, html = compose(mailbox, kind)
        try:
            with transaction.atomic():
                notice = Notice.objects.create(
                    project=mailbox.project,
                    mailbox=mailbox,
                    kind=kind,
                    event_key=key,
                    recipient=mailbox.source_address,
                    subject=subject,
                    text=text,
                    html=html,
                )
        except IntegrityError:  # another run queued it a moment ago
            notice = Notice.objects.get(mailbox=mailbox, kind=kind, event_key=key)
            results.append((mailbox, notice, False))
            continue
        results.append((mailbox, notice, True))
    return results


class TransientDelivery(Exception):
    """The mail server could not be reached or answered 4xx: worth trying again later."""


def deliver(notices) -> None:
    """Send ``notices`` over one connection; keep them in the outbox when no server is set.
    A refused recipient fails that message only; a server that cannot be reached raises
    TransientDelivery after recording it, so the task retries."""
    notices = [n for n in notices if n.state in (Notice.State.QUEUED, Notice.State.FAILED)]
    transient = None
    for notice in [n for n in notices if n.channel == Notice.Channel.WEBHOOK]:
        transient = _post_webhook(notice) or transient
    notices = [n for n in notices if n.channel == Notice.Channel.EMAIL]
    if not notices:
        if transient is not None:
            raise TransientDelivery(str(transient))
        return
    if not mail_configured():
        for notice in notices:
            notice.record(Notice.State.KEPT)
        return
    try:
        with get_connection(fail_silently=False) as connection:
            for notice in notices:
                transient = _send_one(connection, notice) or transient
    except (OSError, smtplib.SMTPException) as exc:
        for notice in notices:
            if notice.state == Notice.State.QUEUED:
                notice.record(Notice.State.FAILED, f"mail server: {exc}")
        transient = exc
    if transient is not None:
        raise TransientDelivery(str(transient))


def _send_one(connection, notice: Notice):
    message = EmailMultiAlternatives(
        notice.subject, notice.text, to=[notice.recipient], connection=connection
    )
    if notice.html:
        message.attach_alternative(notice.html, "text/html")
    try:
        message.send()
    except smtplib.SMTPRecipientsRefused as exc:
        code, reason = next(iter(exc.recipients.values()))
        notice.record(Notice.State.FAILED, f"{code} {reason.decode(errors='replace')}")
        logger.warning("notice %s to %s refused: %s", notice.pk, notice.recipient, code)
        return exc if 400 <= code < 500 else None
    notice.record(Notice.State.SENT)
    return None


def _post_webhook(notice: Notice):
    """POST ``{"text": ...}`` (what Slack and Teams incoming webhooks read) to the project's
    webhook, through the same endpoint confinement as tenants' servers."""
    url = NoticeSettings.of(notice.project).webhook_url
    if not url:
        notice.record(Notice.State.FAILED, "the project has no webhook URL any more")
        return None
    try:
        with httpx.Client(transport=reach_transport(endpoint_reach()), timeout=15) as client:
            response = client.post(url, json={"text": f"{notice.subject}\n{notice.text}"})
        response.raise_for_status()
    except ReachError as exc:
        notice.record(Notice.State.FAILED, str(exc))
        return None
    except (httpx.HTTPError, TransientError) as exc:
        notice.record(Notice.State.FAILED, f"webhook: {exc}")
        status = getattr(getattr(exc, "response", None), "status_code", 500)
        return exc if status >= 500 or status == 429 else None
    notice.record(Notice.State.SENT)
    return None
