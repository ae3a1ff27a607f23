"""Google Workspace to Microsoft 365: its own checklist, whose DNS steps are checked against a real
NSD server serving contoso.test, first as Google had it (smtp.google.com, Google's SPF include,
its site verification, TTL 3600), then as Microsoft 365 needs it. Each step stays open while
the zone still points at Google and ticks itself when it points at Microsoft; Google's site
verification goes last."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from dnscheck.records import route_records
from dnscheck.services import check_project, target_kind
from projects.cutover import auto_tick, dns_blocking, ensure_checklist
from projects.models import Tenant
from tests.dnscheck.fixtures import SECRET, point_at_graph
from tests.dnscheck.zones import DOMAIN, NEW, serve_target_records, zone
from tests.servers.graph_server import ALL_ROLES

pytestmark = pytest.mark.django_db

VERIFICATION = '@ 300 IN TXT "google-site-verification=rXOxyZounnZasA8Z7oaD3c14JdjS9aKSWvsR1E"'
GOOGLE = [
    "@ 3600 IN MX 1 smtp.google.com.",
    '@ 3600 IN TXT "v=spf1 include:_spf.google.com ~all"',
    VERIFICATION.replace(" 300 ", " 3600 "),
]
# Older Google Workspace domains: the five ASPMX hosts.
GOOGLE_ASPMX = [
    "@ 3600 IN MX 1 aspmx.l.google.com.",
    "@ 3600 IN MX 5 alt1.aspmx.l.google.com.",
    "@ 3600 IN MX 5 alt2.aspmx.l.google.com.",
    "@ 3600 IN MX 10 alt3.aspmx.l.google.com.",
    "@ 3600 IN MX 10 alt4.aspmx.l.google.com.",
    *GOOGLE[1:],
]
# Served beside the domain so Google's SPF include resolves on loopback.
GOOGLE_SPF = ["@ IN NS ns1.contoso.test.", '@ IN TXT "v=spf1 ip4:35.190.247.0/24 ~all"']
DNS_STEPS = [
    "lower-ttl",
    "target-domain-on",
    "google-mx-spf",
    "google-autodiscover",
    "google-verification-off",
]


@pytest.fixture
def google_dns(nsd_factory):
    return nsd_factory({DOMAIN: zone(GOOGLE), "_spf.google.com": GOOGLE_SPF})


@pytest.fixture
def google_project(project, google_dns):
    """Contoso leaves Google Workspace for Exchange Online; its domain is served by NSD."""
    project.source.kind, project.source.endpoint = Tenant.Kind.GOOGLE, ""
    project.source.save()
    project.target.kind, project.target.endpoint = Tenant.Kind.EXCHANGE_ONLINE, ""
    project.target.save()
    project.planned_cutover = timezone.now() + timedelta(days=1)
    project.save()
    project.domains.create(name=DOMAIN, nameservers=google_dns.address)
    ensure_checklist(project)
    return project


def dns_ticked(project) -> list[str]:
    check_project(project)
    return [s.key for s in auto_tick(project) if s.kind == "dns"]


def open_reasons(project, key: str) -> list[str]:
    from dnscheck.models import DnsCheck

    step = project.cutover_steps.get(key=key)
    domains = list(project.domains.all())
    checks = list(DnsCheck.objects.latest_per_domain(domains).with_results())
    return dns_blocking(step, checks, len(domains))


def serve(dns, records) -> None:
    dns.set_zone(DOMAIN, zone(records))
    dns.reload()


def test_the_route_is_google_to_microsoft_365_only_from_a_google_source():
    google = Tenant(kind=Tenant.Kind.GOOGLE)
    online = Tenant(kind=Tenant.Kind.EXCHANGE_ONLINE)
    office365 = Tenant(kind=Tenant.Kind.EWS, endpoint="https://outlook.office365.com/EWS/x")
    imap = Tenant(kind=Tenant.Kind.IMAP, endpoint="imap.old.test")
    assert target_kind(google, online) == "google-m365"
    assert target_kind(google, office365) == "google-m365"
    assert target_kind(imap, online) == "m365"
    assert "google" not in target_kind(online, google)
    # Microsoft 365's own records, and Google's three that must be gone.
    records = route_records("google-m365", DOMAIN)
    gone = [(r.rtype, r.group, r.value) for r in records if not r.present]
    assert ("TXT", "spf", "include:_spf.google.com") in gone
    assert ("TXT", "old", "google-site-verification=") in gone
    assert [r.rtype for r in records if r.present] == [
        r.rtype for r in route_records("m365", DOMAIN)
    ]


@pytest.mark.parametrize("google_zone", [GOOGLE, GOOGLE_ASPMX], ids=["smtp", "aspmx"])
def test_every_step_waits_while_the_zone_points_at_google_and_ticks_at_microsoft(
    google_project, google_dns, google_zone
):
    serve(google_dns, google_zone)
    assert dns_ticked(google_project) == []
    for key in DNS_STEPS:
        assert open_reasons(google_project, key), key
    server = google_dns.address
    mx_spf = "\n".join(open_reasons(google_project, "google-mx-spf"))
    assert f"MX @ on {server}: old value still served" in mx_spf
    assert f"TXT @ on {server}: old value still served" in mx_spf  # Google's include
    assert "is served with TTL 3600 s" in "\n".join(open_reasons(google_project, "lower-ttl"))

    # Cutover: Microsoft's records, Google's MX and SPF gone, its verification still there.
    serve_target_records(google_dns, [*NEW, VERIFICATION])
    assert dns_ticked(google_project) == DNS_STEPS[:-1]
    assert open_reasons(google_project, "google-verification-off") == [
        f"TXT @ on {server}: old value still served"
    ]

    # Last, Google's verification goes: the final step ticks.
    serve_target_records(google_dns, NEW)
    assert dns_ticked(google_project) == ["google-verification-off"]
    assert not google_project.cutover_steps.filter(kind="dns", done_at__isnull=True).exists()


@pytest.mark.parametrize(
    ("leftover", "step"),
    [
        ("@ 300 IN MX 10 smtp.google.com.", "google-mx-spf"),
        ("@ 300 IN MX 20 alt2.aspmx.l.google.com.", "google-mx-spf"),
        (
            '@ 300 IN TXT "v=spf1 include:spf.protection.outlook.com include:_spf.google.com -all"',
            "google-mx-spf",
        ),
        (VERIFICATION, "google-verification-off"),
    ],
)
def test_one_google_record_left_keeps_its_step_open(google_project, google_dns, leftover, step):
    spf = "v=spf1" in leftover  # a domain has one SPF record: it replaces Microsoft's
    records = [r for r in NEW if not (spf and "v=spf1" in r)]
    serve_target_records(google_dns, [*records, leftover])
    ticked = dns_ticked(google_project)
    assert step not in ticked
    assert sorted(ticked) == sorted(k for k in DNS_STEPS if k != step)
    # The Google record, and for an MX also Microsoft's (served beside an old value).
    reasons = open_reasons(google_project, step)
    said = f"{leftover.split()[3]} @ on {google_dns.address}: old value still served"
    assert reasons and all(reason.startswith(said) for reason in reasons)


def test_the_checklist_page_shows_the_google_route_with_its_reasons(client, bob, google_project):
    client.force_login(bob)
    body = client.get(reverse("cutover", args=[google_project.pk])).content.decode()
    assert "from Google Workspace to Microsoft 365" in body
    keys = list(google_project.cutover_steps.values_list("key", flat=True))
    # Google keeps its primary domain; its records have steps of their own.
    assert "source-domain-off" not in keys and "old-records-off" not in keys
    assert keys.index("target-domain-on") < keys.index("google-mx-spf")
    assert keys[-2:] == ["google-verification-off", "close"]
    assert keys.index("final-delta") < keys.index("google-verification-off")
    assert "Last: remove Google&#x27;s site verification record" in body
    assert "Google checks the record to keep the domain verified" in body
    for step in google_project.cutover_steps.all():
        assert step.why, step.key


def test_the_tenants_own_records_leave_googles_in_place(client, bob, google_project, graph_server):
    """The tenant's list (Graph) replaces Microsoft's computed records; Google's records that
    must be gone are not Microsoft's to list, so they stay, and the DNS page shows them."""
    graph_server.register_app("dns-app", SECRET, roles=ALL_ROLES | {"Domain.Read.All"})
    point_at_graph(google_project.target, graph_server)
    graph_server.add_domain(DOMAIN, mx="contoso-test.o-v1.mx.microsoft")
    domain = google_project.domains.get()
    client.force_login(bob)
    client.post(reverse("dns_tenant_records", args=[google_project.pk]), {"domain": domain.pk})
    assert domain.dns_records.filter(source="tenant", rtype="MX").exists()
    gone = domain.dns_records.filter(present=False)
    assert sorted(gone.values_list("rtype", "group", "source")) == [
        ("MX", "mx", "default"),
        ("TXT", "old", "default"),
        ("TXT", "spf", "default"),
    ]
    body = client.get(reverse("dns_propagation", args=[google_project.pk])).content.decode()
    for value in ("smtp.google.com.", "include:_spf.google.com", "google-site-verification="):
        assert value in body
