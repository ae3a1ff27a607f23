"""Checks of stored domains: expected records from the target kind, results stored per server."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from mailboxes.connectors import TransientError
from mailboxes.connectors.reach import ReachError, addresses
from projects.models import Domain, Tenant, endpoint_reach

from . import checker
from .models import DnsCheck, DnsRecord, DnsResult
from .records import TARGETS, InvalidDomain, normalize_domain
from .rules import is_spf


def target_kind(tenant: Tenant) -> str:
    """Which record defaults apply: Microsoft 365 for Exchange Online targets."""
    if tenant.kind == Tenant.Kind.EXCHANGE_ONLINE:
        return "m365"
    if tenant.kind == Tenant.Kind.EWS and "office365.com" in tenant.endpoint.lower():
        return "m365"
    return "none"


def ensure_default_records(domain: Domain, sip: bool | None = None) -> None:
    """Give a domain the target's default records once (a consultant may remove some: a tenant
    on Microsoft's newer MX host, say); ``sip`` adds or removes the SIP SRV records."""
    try:
        name = normalize_domain(domain.name)
    except InvalidDomain:
        return
    defaults = domain.dns_records.filter(is_default=True)
    if sip is False:
        defaults.filter(group=DnsRecord.Group.SIP).delete()
    elif sip is None and defaults.exists():
        return
    for expected in TARGETS[target_kind(domain.project.target)](name, sip=bool(sip)):
        if sip and expected.group != DnsRecord.Group.SIP:
            continue
        DnsRecord.objects.get_or_create(
            domain=domain,
            name=expected.name,
            rtype=expected.rtype,
            value=expected.value,
            present=expected.present,
            defaults={
                "group": expected.group,
                "match": expected.match,
                "changes": expected.changes,
                "is_default": True,
            },
        )


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
    return [check_domain(d) for d in project.domains.select_related("project__target")]


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
                value=value,
                present=False,
                defaults={"group": DnsRecord.Group.OLD, "changes": True},
            )
            if new:
                created.append(record)
    return created
