"""Fixtures for the copy engine: projects between two maildirs or two Dovecot servers."""

import pytest

from mailboxes import engine, services
from mailboxes.connectors.base import Endpoint
from projects.models import Project, Tenant


def tenant_for(endpoint: Endpoint) -> Tenant:
    return Tenant.objects.create(
        kind=endpoint.kind,
        endpoint=endpoint.host,
        port=endpoint.port,
        security=endpoint.security,
        auth_method=endpoint.auth_method,
        username=endpoint.username,
        secret=endpoint.secret,
        oauth_tenant_id=endpoint.oauth_tenant_id,
        oauth_client_id=endpoint.oauth_client_id,
        oauth_authority=endpoint.oauth_authority,
        impersonation=endpoint.impersonation,
        verify_tls=endpoint.verify_tls,
        options=endpoint.options,
    )


def make_mailbox(source: Endpoint, target: Endpoint, source_address: str, target_address: str):
    project = Project.objects.create(
        client_name="Fabrikam", source=tenant_for(source), target=tenant_for(target)
    )
    return project.mailboxes.create(source_address=source_address, target_address=target_address)


def run_pass(mailbox, kind="full", older_than_days=None):
    """One pass, start to end, in this process through the engine's own scheduler."""
    scheduler = engine.InlineScheduler("test:1")
    (mailbox_pass,) = services.start_passes([mailbox], kind, older_than_days, scheduler)
    scheduler.run()
    mailbox_pass.refresh_from_db()
    mailbox.refresh_from_db()
    return mailbox_pass


@pytest.fixture
def copy_settings(settings):
    """Small batches so every folder takes several; quick retries."""
    settings.COPY_BATCH_ITEMS = 7
    settings.COPY_RETRY_BASE_SECONDS = 0.01
    settings.COPY_MAX_RETRIES = 2
    return settings
