"""Checks of stored domains: the records the migration's route expects (or the target tenant
lists), asked of every server, results stored per server."""

from __future__ import annotations

import logging
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from mailboxes.connectors import ConnectorError, TransientError
from mailboxes.connectors.reach import ReachError, addresses
from projects.models import Domain, Tenant, endpoint_reach

from . import checker
from .models import DnsCheck, DnsRecord, DnsResult, TenantFetch
from .records import InvalidDomain, from_tenant, normalize_domain, old_value, route_records
from .rules import is_spf

logger = logging.getLogger(__name__)

# Before cutover the beat's re-check reads the tenant's records again, at most this often.
TENANT_REFRESH = timedelta(hours=1)


def target_kind(source: Tenant, target: Tenant) -> str:
    """The route, for the records it expects: "m365" (Exchange Online, or EWS at
    office365.com), "google-m365" (from Google Workspace to Microsoft 365: Google's records go
    too), "imap" (an IMAP host), "exchange" (Exchange on premises) or "none" (a maildir, or
    mail staying on the server it is on: nothing in DNS changes)."""
    office365 = target.kind == Tenant.Kind.EWS and "office365.com" in target.endpoint.lower()
    if target.kind == Tenant.Kind.EXCHANGE_ONLINE or office365:
        if source.kind == Tenant.Kind.GOOGLE:
            return "google-m365"
        return "m365"  # even between two tenants: the domain moves, so its records change
    if source.kind == target.kind and target_host(source) == target_host(target):
        return "none"
    return {Tenant.Kind.IMAP: "imap", Tenant.Kind.EWS: "exchange"}.get(target.kind, "none")


def target_host(tenant: Tenant) -> str:
    """The server the tenant's mail lives on: the IMAP host, the EWS URL's host ("" when
    autodiscovered)."""
    if tenant.kind == Tenant.Kind.IMAP:
        return tenant.endpoint.strip().lower()
    if tenant.kind == Tenant.Kind.EWS and tenant.endpoint:
        return (urlsplit(tenant.endpoint).hostname or "").lower()
    return ""


def _store(domain: Domain, expected, source: str, fetched_at=None) -> tuple[DnsRecord, bool]:
    return DnsRecord.objects.get_or_create(
        domain=domain,
        name=expected.name,
        rtype=expected.rtype,
        value=expected.value,
        present=expected.present,
        defaults={
            "group": expected.group,
            "match": expected.match,
            "changes": expected.changes,
            "optional": expected.optional,
            "source": source,
            "fetched_at": fetched_at,
        },
    )


def ensure_default_records(domain: Domain, sip: bool | None = None) -> None:
    """Give a domain its route's records once (a consultant may remove some; the tenant's,
    once fetched, stand instead); ``sip`` adds or removes the optional SIP records."""
    try:
        name = normalize_domain(domain.name)
    except InvalidDomain:
        return
    records = domain.dns_records
    if sip is False:
        records.filter(group=DnsRecord.Group.SIP).exclude(
            source=DnsRecord.Source.CONSULTANT
        ).delete()
    elif (
        sip is None
        and records.filter(source__in=[DnsRecord.Source.DEFAULT, DnsRecord.Source.TENANT]).exists()
    ):
        return
    project = domain.project
    route = target_kind(project.source, project.target)
    for expected in route_records(route, name, target_host(project.target), sip=bool(sip)):
        if not sip or expected.group == DnsRecord.Group.SIP:
            _store(domain, expected, DnsRecord.Source.DEFAULT)


def tenant_records(tenant: Tenant, domain: str) -> list:
    """What the target tenant lists for the domain (Graph); ConnectorError saying why not."""
    from mailboxes.connectors.graph_domains import GraphDomains

    if tenant.kind != Tenant.Kind.EXCHANGE_ONLINE:
        raise ConnectorError(
            "Only an Exchange Online (Microsoft Graph) target lists the records of its domains."
        )
    with GraphDomains(tenant.endpoint_config()) as graph:
        return graph.dns_records(domain)


def fetch_tenant_records(domain: Domain) -> TenantFetch:
    """Replace the domain's records from the tenant with what it lists now (the consultant's
    stay); how it went is stored for the page, a failure with its reason."""
    now = timezone.now()
    try:
        name = normalize_domain(domain.name)
        listed = tenant_records(domain.project.target, name)
    except (InvalidDomain, ConnectorError) as exc:
        logger.warning("DNS records of %s from the tenant: %s", domain.name, exc)
        fetch, _ = TenantFetch.objects.update_or_create(
            domain=domain, defaults={"attempted_at": now, "error": str(exc)}
        )
        return fetch
    # The route's records first: those the tenant does not list (DKIM, DMARC) stay expected.
    ensure_default_records(domain)
    sip = domain.dns_records.filter(group=DnsRecord.Group.SIP).exists()
    expected = from_tenant(name, listed, sip=sip)
    with transaction.atomic():
        # One replacement at a time (the button and the beat may meet).
        Domain.objects.select_for_update().get(pk=domain.pk)
        _replace_tenant_records(domain, expected, now)
        fetch, _ = TenantFetch.objects.update_or_create(
            domain=domain,
            defaults={
                "attempted_at": now,
                "fetched_at": now,
                "error": "",
                "records": len(expected),
            },
        )
    return fetch


def _replace_tenant_records(domain: Domain, expected: list, now) -> None:
    """Unchanged records keep their rows (and so their latest results); the route's computed
    records of the groups the tenant lists give way to the tenant's own values (those that
    must be gone stay: the tenant lists what it needs, not what the old provider had)."""
    wanted = {(e.name, e.rtype, e.value, e.present): e for e in expected}
    for record in domain.dns_records.filter(source=DnsRecord.Source.TENANT):
        key = (record.name, record.rtype, record.value, record.present)
        if key in wanted:
            record.fetched_at = now
            record.save(update_fields=["fetched_at"])
        else:
            record.delete()
    domain.dns_records.filter(
        source=DnsRecord.Source.DEFAULT, present=True, group__in={e.group for e in expected}
    ).delete()
    for e in wanted.values():
        _store(domain, e, DnsRecord.Source.TENANT, fetched_at=now)


def refresh_tenant_records(project, max_age: timedelta = TENANT_REFRESH) -> list[TenantFetch]:
    """Before cutover: read again the records of each domain whose last attempt is older than
    ``max_age`` (Exchange Online targets only)."""
    if project.target.kind != Tenant.Kind.EXCHANGE_ONLINE:
        return []
    recent = timezone.now() - max_age
    stale = project.domains.exclude(tenant_fetch__attempted_at__gte=recent)
    return [
        fetch_tenant_records(domain)
        for domain in stale.select_related("project__source", "project__target")
    ]


def servers_from_setting(text_or_list, role: str) -> list[checker.Server]:
    """Servers from "host:port, host:port" or a list of such strings."""
    if isinstance(text_or_list, str):
        text_or_list = [text_or_list]
    items = [item for text in text_or_list for item in text.split(",")]
    return [checker.Server.parse(item, role) for item in items if item.strip()]


def split_dns_servers(text: str) -> list[checker.Server]:
    """The servers a project names for its domain (split DNS), each one a tenant may reach:
    not the machine itself nor the app's own services unless ALLOW_LOCAL_ENDPOINTS. Checked
    when saved and again just before every check (the name may resolve elsewhere by then);
    ValueError with the reason."""
    servers = servers_from_setting(text, "authoritative")
    for server in servers:
        try:
            addresses(endpoint_reach(), server.host, server.port)
        except ReachError as exc:
            raise ValueError(f"Refused: {exc}.") from exc
        except TransientError:
            pass  # not resolvable now: the check itself says so, per server
    return servers


def check_domain(domain: Domain) -> DnsCheck:
    """Run the check now and store it; a check that cannot run is stored with its reason."""
    ensure_default_records(domain)
    records = {r.pk: r for r in domain.dns_records.all()}
    try:
        report = checker.check(
            domain.name,
            [r.expected() for r in records.values()],
            servers=split_dns_servers(domain.nameservers),
            resolvers=servers_from_setting(settings.DNSCHECK_RESOLVERS, "resolver"),
            timeout=settings.DNSCHECK_TIMEOUT,
            cutover_at=domain.project.planned_cutover,
        )
    except (InvalidDomain, checker.CheckError, ValueError) as exc:
        with transaction.atomic():
            check = DnsCheck.objects.create(domain=domain, error=str(exc))
            check.prune()
        return check
    with transaction.atomic():
        check = DnsCheck.objects.create(
            domain=domain,
            checked_at=report.checked_at,
            servers=[s.label for s in report.servers],
            findings=[f.as_dict() for f in report.findings],
            ok=report.ok,
        )
        DnsResult.objects.bulk_create(
            DnsResult(
                dns_check=check,
                record=records[r.record.key],
                server=r.server.label,
                role=r.server.role,
                verdict=r.verdict,
                values=r.values,
                ttl=r.ttl,
                message=r.message[:300],
                checked_at=report.checked_at,
            )
            for r in report.results
        )
        check.prune()
    return check


def check_project(project) -> list[DnsCheck]:
    return [
        check_domain(d)
        for d in project.domains.select_related("project__source", "project__target")
    ]


def record_current_as_old(domain: Domain) -> list[DnsRecord]:
    """Before cutover: what DNS serves now for the records that will change becomes the old
    provider's records, which must be gone afterwards ("old value still served" until then)."""
    ensure_default_records(domain)
    changing = list(domain.dns_records.filter(present=True, changes=True))
    served = checker.served_now(
        domain.name,
        [r.expected() for r in changing],
        servers=split_dns_servers(domain.nameservers),
        resolvers=servers_from_setting(settings.DNSCHECK_RESOLVERS, "resolver"),
        timeout=settings.DNSCHECK_TIMEOUT,
    )
    created = []
    for expected, values in served.items():
        for value in values:
            # Other TXT records at the name (site verifications) stay: only the SPF changes.
            if expected.matches(value) or (expected.rtype == "TXT" and not is_spf(value)):
                continue
            record, new = DnsRecord.objects.get_or_create(
                domain=domain,
                name=expected.name,
                rtype=expected.rtype,
                value=old_value(expected.rtype, value),
                present=False,
                defaults={
                    "group": DnsRecord.Group.OLD,
                    "changes": True,
                    "source": DnsRecord.Source.SNAPSHOT,
                },
            )
            if new:
                created.append(record)
    return created
