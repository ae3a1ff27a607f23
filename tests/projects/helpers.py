"""Helpers the project tests share: a full project form, a connection test a worker records."""

from projects.models import Tenant
from tests.servers.worker import wait_until


def form_data(**overrides):
    data = {
        "client_name": "Fabrikam",
        "state": "planning",
        "planned_cutover": "2026-12-12T18:00",
        "domains": "fabrikam.example\nFabrikam.example.\nmail.fabrikam.example",
        "source-kind": "imap",
        "source-endpoint": "imap.old.example",
        "source-port": "993",
        "source-security": "tls",
        "source-auth_method": "basic",
        "source-username": "admin@fabrikam.example",
        "source-secret": "Winter2026!",
        "target-kind": "ews",
        "target-endpoint": "https://outlook.example/EWS/Exchange.asmx",
        "target-security": "tls",
        "target-auth_method": "oauth2",
        "target-oauth_tenant_id": "tid",
        "target-oauth_client_id": "cid",
        "target-secret": "client-secret",
        "target-impersonation": "svc@fabrikam.example",
        "target-verify_tls": "on",
        "source-verify_tls": "on",
    }
    data.update(overrides)
    return data


def recorded_check(tenant, worker):
    return wait_until(
        lambda: Tenant.objects.filter(pk=tenant.pk, last_check_at__isnull=False).first(),
        message=lambda: "the worker never recorded the connection test:\n" + worker.log(),
    )
