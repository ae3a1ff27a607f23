import logging

from celery import shared_task

from mailboxes.connectors import ConnectorError, open_connector

from .models import Tenant

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
