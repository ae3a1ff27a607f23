import logging
import smtplib

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.urls import reverse
from django.utils import timezone

from mailboxes.connectors import ConnectorError, open_connector

from .models import Invitation, Tenant, hash_token

log = logging.getLogger(__name__)


def _probe_mailbox(tenant: Tenant) -> str:
    """The account a connection test logs in as: the tenant's own, or its first mailbox."""
    project = tenant.project
    first = project.mailboxes.first() if project else None
    if first is not None and (tenant.impersonation or not tenant.username):
        return first.source_address if tenant == project.source else first.target_address
    return tenant.username


@shared_task(acks_late=True, ignore_result=True)
def check_tenant(tenant_id: int) -> None:
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return
    try:
        with open_connector(tenant.endpoint_config(), _probe_mailbox(tenant)) as connector:
            message = connector.check()
        ok = True
    except ConnectorError as exc:
        ok, message = False, str(exc)
    except Exception:
        # A connector bug must still end the "checking…" state with a message, not hang it.
        log.exception("connection test of tenant %s crashed", tenant_id)
        ok, message = False, "The connection test failed unexpectedly; see the worker log."
    log.info("connection test of tenant %s: %s", tenant_id, "ok" if ok else "failed")
    tenant.record_check(ok, message)


def queue_invitation(invitation: Invitation, token: str) -> None:
    """Mail the link from the worker. Only the hash is stored, so the token travels in the
    message; ``argsrepr`` keeps it out of the worker's log and monitoring."""
    send_invitation.apply_async((invitation.pk, token), argsrepr=f"({invitation.pk}, '…')")


@shared_task(
    acks_late=True,
    ignore_result=True,
    autoretry_for=(OSError, smtplib.SMTPException),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=6,
)
def send_invitation(invitation_id: int, token: str) -> None:
    """Mail the sign-up link once; nothing for a link already mailed, used, or replaced by a
    newer invitation (its hash no longer matches)."""
    invitation = Invitation.objects.filter(
        pk=invitation_id, token_hash=hash_token(token), mailed_at__isnull=True
    ).first()
    if invitation is None or not invitation.is_usable:
        return
    if not settings.EMAIL_HOST:
        invitation.mail_error = "No mail server is set (EMAIL_HOST): send the link yourself."
        invitation.save(update_fields=["mail_error"])
        return
    link = settings.SITE_URL.rstrip("/") + reverse("invitation_accept", args=[token])
    inviter = invitation.invited_by or "A colleague"
    expires = timezone.localtime(invitation.expires).strftime("%Y-%m-%d %H:%M %Z")
    try:
        send_mail(
            f"{inviter} invites you to {invitation.project} on mailferry",
            f"You are invited to the migration project {invitation.project} as "
            f"{invitation.get_role_display().lower()}.\n\nSign up with this link (it works "
            f"once, until {expires}):\n{link}\n",
            None,
            [invitation.email],
        )
    except smtplib.SMTPRecipientsRefused as exc:
        # The address itself is refused: trying again changes nothing.
        code, reason = next(iter(exc.recipients.values()))
        invitation.mail_error = f"{code} {reason.decode(errors='replace')}"
        invitation.save(update_fields=["mail_error"])
        return
    invitation.mailed_at = timezone.now()
    invitation.mail_error = ""
    invitation.save(update_fields=["mailed_at", "mail_error"])
