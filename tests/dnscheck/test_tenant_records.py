"""Records read from the tenant (Graph test server, Graph's shapes), stored as the domain's,
checked against real NSD zones; refreshed by the button and before cutover."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from dnscheck.models import DnsRecord, TenantFetch
from dnscheck.services import check_domain, fetch_tenant_records
from dnscheck.tasks import check_project_dns
from tests.servers.graph_server import ALL_ROLES

from .fixtures import SECRET
from .zones import DOMAIN, MX_MICROSOFT, NEW, NEW_MX_MICROSOFT, serve_target_records

pytestmark = pytest.mark.django_db


def tenant_rows(domain):
    return set(
        domain.dns_records.filter(source="tenant").values_list("group", "rtype", "name", "value")
    )


def mx_result(check):
    return check.results.get(record__rtype="MX", record__present=True)


def test_records_come_from_the_tenant(tenant_dns, domain):
    custom = DnsRecord.objects.create(domain=domain, name="www", rtype="A", value="192.0.2.10")
    before = timezone.now()
    fetch = fetch_tenant_records(domain)
    assert (fetch.error, fetch.records) == ("", 4)
    # Graph's MX (exact, preference included), its SPF's include, autodiscover and the
    # verification TXT; no Skype record, no verification MX to ms….msv1.invalid.
    assert tenant_rows(domain) == {
        ("mx", "MX", "@", f"0 {MX_MICROSOFT}"),
        ("spf", "TXT", "@", "include:spf.protection.outlook.com"),
        ("autodiscover", "CNAME", "autodiscover", "autodiscover.outlook.com."),
        ("verification", "TXT", "@", "MS=ms12345678"),
    }
    mx = domain.dns_records.get(source="tenant", rtype="MX")
    assert mx.fetched_at >= before and mx.changes and mx.match == "exact"
    assert mx.origin.startswith("from the tenant, fetched at ")
    # The route's computed MX gave way; what the tenant does not list (DKIM, DMARC) stays.
    defaults = set(domain.dns_records.filter(source="default").values_list("group", flat=True))
    assert defaults == {"dkim", "dmarc"}
    assert DnsRecord.objects.filter(pk=custom.pk).exists()
    assert tenant_dns.counts["domains.serviceConfigurationRecords"] == 1
    assert tenant_dns.counts["domains.verificationDnsRecords"] == 1


def test_a_second_fetch_replaces_the_tenants_records_only(tenant_dns, domain):
    fetch_tenant_records(domain)
    custom = DnsRecord.objects.create(
        domain=domain, name="@", rtype="MX", value="5 backup-mx.contoso.test.", group="mx"
    )
    autodiscover = domain.dns_records.get(source="tenant", name="autodiscover")
    tenant_dns.domains[DOMAIN]["service"][0]["mailExchange"] = "contoso-test.o-v2.mx.microsoft"
    fetch_tenant_records(domain)
    mx = set(domain.dns_records.filter(rtype="MX").values_list("source", "value"))
    assert mx == {
        ("tenant", "0 contoso-test.o-v2.mx.microsoft."),
        ("consultant", "5 backup-mx.contoso.test."),
    }
    assert DnsRecord.objects.filter(pk=custom.pk).exists()
    # Unchanged records keep their row (and so the results of the latest check).
    assert domain.dns_records.get(source="tenant", name="autodiscover").pk == autodiscover.pk


def test_sip_records_only_when_the_project_opts_in(client, bob, tenant_dns, domain):
    client.force_login(bob)
    client.post(reverse("dns_sip", args=[domain.project_id]), {"domain": domain.pk, "sip": "1"})
    fetch_tenant_records(domain)
    sip = set(domain.dns_records.filter(group="sip", source="tenant").values_list("name", "value"))
    assert sip == {
        ("_sip._tls", "100 1 443 sipdir.online.lync.com."),
        ("lyncdiscover", "webdir.online.lync.com."),
    }


def test_a_zone_with_the_tenants_mx_microsoft_mx_passes(tenant_dns, domain, old_dns):
    fetch_tenant_records(domain)
    serve_target_records(old_dns, NEW_MX_MICROSOFT)
    check = check_domain(domain)
    assert check.ok, (check.error, check.findings)
    assert mx_result(check).values == [f"0 {MX_MICROSOFT}"]


def test_an_mx_other_than_the_tenants_fails_naming_it(tenant_dns, domain, old_dns):
    """The older form would pass a check without the tenant: the tenant says otherwise."""
    fetch_tenant_records(domain)
    serve_target_records(old_dns, NEW)
    check = check_domain(domain)
    mx = mx_result(check)
    assert mx.verdict == "wrong"
    assert mx.message == f"expected 0 {MX_MICROSOFT}"
    assert not check.ok
    blocking = check.blocking({"mx"})
    assert blocking == [f"MX @ on {domain.nameservers}: wrong value (expected 0 {MX_MICROSOFT})"]


def test_the_old_providers_mx_still_served_fails(tenant_dns, domain):
    fetch_tenant_records(domain)
    check = check_domain(domain)  # the zone still has the old provider's records
    mx = mx_result(check)
    assert (mx.verdict, mx.values) == ("wrong", ["10 mail.global.frontbridge.com."])
    assert mx.message == f"expected 0 {MX_MICROSOFT}"


def test_without_domain_read_all_the_message_names_the_permission(tenant_dns, domain):
    tenant_dns.register_app("dns-app", SECRET, roles=ALL_ROLES)  # no directory permission
    fetch = fetch_tenant_records(domain)
    assert fetch.error == (
        f"Access denied while trying to read the DNS records of {DOMAIN} "
        "(Authorization_RequestDenied). The app needs the Domain.Read.All application "
        "permission with admin consent."
    )
    assert fetch.fetched_at is None
    assert not domain.dns_records.filter(source="tenant").exists()


def test_a_domain_the_tenant_does_not_have(tenant_dns, domain):
    del tenant_dns.domains[DOMAIN]
    fetch = fetch_tenant_records(domain)
    assert fetch.error.startswith(f"{DOMAIN} is not a domain of this tenant: add it")


def test_the_button_fetches_and_checks(client, bob, tenant_dns, domain, old_dns):
    serve_target_records(old_dns, NEW_MX_MICROSOFT)
    client.force_login(bob)
    page = client.get(reverse("dns_propagation", args=[domain.project_id])).content.decode()
    assert "Fetch the records from the tenant" in page and "Not fetched yet" in page
    response = client.post(
        reverse("dns_tenant_records", args=[domain.project_id]),
        {"domain": domain.pk},
        HTTP_HX_REQUEST="true",
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith(f'<details class="card dns-records" id="records-{domain.pk}"')
    assert "4 record(s) from the tenant, fetched at" in body
    assert f"0 {MX_MICROSOFT}" in body and "from the tenant, fetched at" in body
    assert domain.dns_checks.get().ok  # checked at once: the replaced records' results went


def test_the_button_without_htmx_says_why_it_failed(client, bob, tenant_dns, domain):
    tenant_dns.register_app("dns-app", SECRET, roles=ALL_ROLES)
    client.force_login(bob)
    response = client.post(
        reverse("dns_tenant_records", args=[domain.project_id]), {"domain": domain.pk}, follow=True
    )
    page = response.content.decode()
    assert "The app needs the Domain.Read.All application permission" in page
    assert "Could not read the records from the tenant" in page


def test_the_button_is_for_members_and_posts_only(client, bob, charlie, domain):
    target = reverse("dns_tenant_records", args=[domain.project_id])
    client.force_login(charlie)
    assert client.post(target, {"domain": domain.pk}).status_code == 404
    client.force_login(bob)
    assert client.get(target).status_code == 405
    assert not TenantFetch.objects.exists()


def test_the_cutover_recheck_reads_the_tenant_at_most_hourly(tenant_dns, domain, old_dns):
    project = domain.project
    project.state = "cutover"
    project.save()
    serve_target_records(old_dns, NEW_MX_MICROSOFT)
    check_project_dns(project_id=project.pk)
    check_project_dns(project_id=project.pk)
    assert tenant_dns.counts["domains.serviceConfigurationRecords"] == 1
    assert domain.dns_checks.first().ok
    assert tenant_rows(domain)

    TenantFetch.objects.update(attempted_at=timezone.now() - timedelta(minutes=61))
    check_project_dns(project_id=project.pk)
    assert tenant_dns.counts["domains.serviceConfigurationRecords"] == 2


def test_a_failed_fetch_is_not_retried_every_minute(tenant_dns, domain):
    tenant_dns.register_app("dns-app", SECRET, roles=ALL_ROLES)
    project = domain.project
    project.state = "cutover"
    project.save()
    check_project_dns(project_id=project.pk)
    check_project_dns(project_id=project.pk)
    assert tenant_dns.counts["domains.serviceConfigurationRecords"] == 1
    assert "Domain.Read.All" in TenantFetch.objects.get(domain=domain).error
