"""A tenant-scale Exchange Online migration on the loopback Graph server, for the slow test and
``make bench-graph-scale``: N source mailboxes (each with its own mail and events) copied into N
target mailboxes of a tenant whose limits the server enforces, by real worker processes.

Plain helpers on Django models (the caller provides the database and the workers).
"""

from __future__ import annotations

from mailboxes.connectors.base import Endpoint
from projects.models import Project, Tenant

from .graph_server import TENANT_ID, GraphServer, MailboxLimits

APP, SECRET = "scale-app", "scale-secret"


def scaled_limits(window: float, requests: int, megabytes: float) -> MailboxLimits:
    """Exchange Online's per-mailbox limits with the windows shrunk to ``window`` seconds."""
    return MailboxLimits(
        concurrency=4,
        requests=requests,
        request_window=window,
        bytes=int(megabytes * 1_000_000),
        bytes_window=window,
        busy_retry_after=min(1.0, window / 10),
    )


def limit_options(limits: MailboxLimits) -> dict:
    """The tenant options that tell the connector the same limits (as a consultant would)."""
    return {
        "mailbox_concurrency": limits.concurrency,
        "mailbox_requests": limits.requests,
        "request_window": limits.request_window,
        "import_bytes": limits.bytes,
        "bytes_window": limits.bytes_window,
        "max_attempts": 20,
        # The loopback server answers in milliseconds: a killed worker's slots need not wait
        # the six minutes a real upload may take.
        "budget_lease": 5.0,
    }


def endpoint(server: GraphServer, **options) -> Endpoint:
    return Endpoint(
        kind="exchange_online",
        host=server.graph_url,
        auth_method="oauth2",
        secret=SECRET,
        oauth_tenant_id=TENANT_ID,
        oauth_client_id=APP,
        oauth_authority=server.authority,
        options={"ca_file": str(server.cert_file), **options},
    )


def seed_pairs(
    server: GraphServer, count: int, items: int, events: bool = True
) -> list[tuple[str, str]]:
    """``count`` (source, target) users; source n holds ``items + n`` messages and (with
    ``events``) n % 3 events, each naming its owner, so every mailbox's content is its own."""
    server.register_app(APP, SECRET)
    pairs = []
    for n in range(count):
        source, target = f"user{n}@old.example", f"user{n}@new.example"
        box = server.add_user(source)
        for i in range(items + n):
            body = f"From: {source}\r\nSubject: #{i}\r\n\r\n".encode() + b"x" * (500 + 37 * i)
            box.add_item("inbox", "IPM.Note", body, i % 2 == 0)
        for i in range(n % 3 if events else 0):
            box.add_item("calendar", "IPM.Appointment", f"{source} event {i}".encode())
        server.add_user(target)
        pairs.append((source, target))
    return pairs


def tenant(server: GraphServer, **options) -> Tenant:
    settings = endpoint(server, **options)
    return Tenant.objects.create(
        kind=settings.kind,
        endpoint=settings.host,
        auth_method=settings.auth_method,
        secret=settings.secret,
        oauth_tenant_id=settings.oauth_tenant_id,
        oauth_client_id=settings.oauth_client_id,
        oauth_authority=settings.oauth_authority,
        options=settings.options,
    )


def project(server: GraphServer, pairs, **options) -> Project:
    """One project moving every pair within the tenant (source and target tenant alike)."""
    moving = Project.objects.create(
        client_name="Northwind", source=tenant(server, **options), target=tenant(server, **options)
    )
    for source, target in pairs:
        moving.mailboxes.create(source_address=source, target_address=target)
    return moving


def contents(server: GraphServer, user: str) -> dict[str, list]:
    """Each non-empty folder's items, as what they are (without our recovery stamp)."""
    box = server.users[user]
    return {
        folder.display_name: sorted(item.content for item in folder.items.values())
        for folder in box.folders.values()
        if folder.items
    }
