"""The propagation page: records × servers, live during cutover, and the records it checks."""

import pytest
from django.urls import reverse

from dnscheck.models import DnsCheck, DnsRecord
from dnscheck.services import check_domain, check_project

from .zones import DOMAIN, NEW, new_zones, serve_target_records, zone

pytestmark = pytest.mark.django_db


def url(project, name="dns_propagation"):
    return reverse(name, args=[project.pk])


def test_page_lists_the_target_defaults(client, bob, domain):
    client.force_login(bob)
    response = client.get(url(domain.project))
    assert response.status_code == 200
    groups = set(domain.dns_records.values_list("group", flat=True))
    assert groups == {"mx", "verification", "autodiscover", "spf", "dkim", "dmarc"}
    assert b"contoso-test.mail.protection.outlook.com." in response.content
    assert b"Not checked yet." in response.content


def test_check_now_shows_every_verdict_per_server(client, bob, domain, old_dns, nsd_factory):
    new = nsd_factory(new_zones())
    domain.nameservers = f"{old_dns.address},{new.address}"
    domain.save()
    DnsRecord.objects.create(
        domain=domain,
        name="@",
        rtype="MX",
        value="mail.global.frontbridge.com.",
        present=False,
        group="old",
    )
    client.force_login(bob)
    response = client.post(url(domain.project, "dns_check_now"), follow=True)
    assert response.status_code == 200
    check = DnsCheck.objects.get(domain=domain)
    assert check.servers == [old_dns.address, new.address]
    grid = {
        (r.rtype, r.name, r.present): [c.verdict for c in cells] for r, cells, _ in check.grid()
    }
    assert grid[("MX", "@", True)] == ["old", "ok"]
    assert grid[("MX", "@", False)] == ["old", "ok"]
    assert grid[("TXT", "_dmarc", True)] == ["nxdomain", "ok"]
    page = response.content.decode()
    assert "old value still served" in page and "NXDOMAIN" in page
    assert "mail.global.frontbridge.com." in page
    assert "is served with TTL 3600 s" in page  # the old server's MX, before cutover


def test_results_store_values_ttl_and_time(domain):
    check = check_domain(domain)
    mx = check.results.get(record__rtype="MX", record__present=True)
    # Nobody recorded the old MX as old: just a wrong value, served with its preference.
    assert (mx.verdict, mx.values, mx.ttl) == ("wrong", ["10 mail.global.frontbridge.com."], 3600)
    assert mx.checked_at == check.checked_at and mx.server == domain.nameservers


def test_invalid_domain_is_a_clear_message(client, bob, m365_project):
    domain = m365_project.domains.create(name="contoso")  # no dot: not a mail domain
    client.force_login(bob)
    response = client.post(url(m365_project, "dns_check_now"), follow=True)
    page = response.content.decode()
    assert "&#x27;contoso&#x27; is not a domain name" in page
    assert "Traceback" not in page
    assert DnsCheck.objects.get(domain=domain).error.startswith("'contoso' is not a domain name")


def test_zone_without_ns_is_a_clear_message(settings, m365_project, nsd_factory):
    dns = nsd_factory(new_zones())
    settings.DNSCHECK_RESOLVERS = [dns.address]
    domain = m365_project.domains.create(name=f"www.{DOMAIN}")
    check = check_domain(domain)
    assert check.error.startswith("www.contoso.test has no NS records: it is not a DNS zone")


def test_silent_server_is_a_timeout_verdict(domain, silent_dns_server):
    domain.nameservers = f"{domain.nameservers},{silent_dns_server}"
    domain.save()
    check = check_domain(domain)
    verdicts = set(check.results.filter(server=silent_dns_server).values_list("verdict", flat=True))
    assert verdicts == {"timeout"}


def test_partial_polls_during_cutover_and_stops_after(client, bob, domain):
    project = domain.project
    check_domain(domain)
    client.force_login(bob)
    project.state = "cutover"
    project.save()
    live = client.get(url(project), HTTP_HX_REQUEST="true")
    assert live.status_code == 200
    body = live.content.decode()
    assert body.lstrip().startswith('<section id="dns-grid"') and "<html" not in body
    assert 'hx-trigger="every 15s"' in body

    project.state = "closed"
    project.save()
    stopped = client.get(url(project), HTTP_HX_REQUEST="true")
    assert stopped.status_code == 286
    assert 'id="dns-grid"' in stopped.content.decode()
    assert "hx-trigger" not in stopped.content.decode()


def test_partial_query_count_does_not_grow_with_domains(
    client, bob, m365_project, old_dns, django_assert_max_num_queries
):
    m365_project.state = "cutover"
    m365_project.save()
    client.force_login(bob)
    for n in range(3):
        domain = m365_project.domains.create(name=f"d{n}.{DOMAIN}", nameservers=old_dns.address)
        client.get(url(m365_project))  # creates the default records
        check_domain(domain)
        check_domain(domain)  # an older check must not be read
        with django_assert_max_num_queries(7):
            response = client.get(url(m365_project), HTTP_HX_REQUEST="true")
        assert response.content.decode().count('class="card dns-domain"') == n + 1


def test_add_and_remove_records(client, bob, domain):
    client.force_login(bob)
    response = client.post(
        url(domain.project, "dns_record_add"),
        {
            "domain": domain.pk,
            "name": "ms00112233",
            "rtype": "CNAME",
            "value": "PS.microsoftonline.com",
            "match": "exact",
            "changes": "on",
        },
    )
    assert response.status_code == 302
    record = domain.dns_records.get(name="ms00112233")
    # Unticked "must be present": an old record, normalized as DNS answers it.
    assert (record.present, record.group, record.value) == (False, "old", "ps.microsoftonline.com.")
    assert record.changes

    bad = client.post(
        url(domain.project, "dns_record_add"),
        {
            "domain": domain.pk,
            "name": "_sip._tls",
            "rtype": "SRV",
            "value": "sipdir",
            "match": "exact",
            "present": "on",
        },
    )
    assert bad.status_code == 200
    assert "An SRV value is a port and a target (993 imap.example.org)" in bad.content.decode()

    client.post(url(domain.project, "dns_record_remove"), {"record": record.pk})
    assert not domain.dns_records.filter(pk=record.pk).exists()


def test_records_of_other_projects_cannot_be_removed(client, bob, domain, alice):
    from tests.conftest import make_project

    other = make_project(members=[alice], client_name="Fabrikam")
    theirs = DnsRecord.objects.create(
        domain=other.domains.create(name="fabrikam.test"), rtype="MX", value="mx.fabrikam.test."
    )
    client.force_login(bob)
    response = client.post(url(domain.project, "dns_record_remove"), {"record": theirs.pk})
    assert response.status_code == 404
    assert DnsRecord.objects.filter(pk=theirs.pk).exists()


def test_sip_records_on_and_off(client, bob, domain):
    client.force_login(bob)
    client.get(url(domain.project))
    client.post(url(domain.project, "dns_sip"), {"domain": domain.pk, "sip": "1"})
    assert set(domain.dns_records.filter(group="sip").values_list("name", flat=True)) == {
        "_sip._tls",
        "_sipfederationtls._tcp",
    }
    client.post(url(domain.project, "dns_sip"), {"domain": domain.pk, "sip": "0"})
    assert not domain.dns_records.filter(group="sip").exists()


def test_check_project_after_cutover_reload(domain, old_dns):
    [before] = check_project(domain.project)
    assert not before.ok
    serve_target_records(old_dns)
    [after] = check_project(domain.project)
    assert after.ok, after.findings
    assert set(after.results.values_list("verdict", flat=True)) == {"ok"}


def test_old_checks_are_pruned(domain):
    for _ in range(DnsCheck.KEEP + 3):
        DnsCheck.objects.create(domain=domain, error="x")
    check_domain(domain)
    assert domain.dns_checks.count() == DnsCheck.KEEP


def test_snapshot_records_the_old_providers_values(client, bob, domain, old_dns):
    client.force_login(bob)
    response = client.post(url(domain.project, "dns_snapshot"), {"domain": domain.pk}, follow=True)
    assert "recorded as old records" in response.content.decode()
    gone = set(domain.dns_records.filter(present=False).values_list("rtype", "name", "value"))
    assert gone == {
        ("MX", "@", "mail.global.frontbridge.com."),
        ("CNAME", "autodiscover", "autodiscover.outlook.com.old."),
        ("TXT", "@", "v=spf1 ip4:192.0.2.1 -all"),
    }
    check = check_domain(domain)
    grid = {
        (r.rtype, r.name, r.present): [c.verdict for c in cells] for r, cells, _ in check.grid()
    }
    assert grid[("MX", "@", True)] == ["old"]
    assert grid[("TXT", "@", False)] == ["old"]

    # Again after cutover: nothing new is the old provider's.
    old_dns.set_zone(DOMAIN, zone(NEW))
    old_dns.reload()
    response = client.post(url(domain.project, "dns_snapshot"), {"domain": domain.pk}, follow=True)
    assert "recorded as old records: nothing new." in response.content.decode()


def test_snapshot_of_a_silent_zone_is_a_clear_message(client, bob, m365_project, silent_dns_server):
    domain = m365_project.domains.create(name="fabrikam.test")  # found through the resolvers
    client.force_login(bob)
    response = client.post(url(m365_project, "dns_snapshot"), {"domain": domain.pk}, follow=True)
    assert "fabrikam.test: no resolver is configured to find the nameservers" in (
        response.content.decode()
    )


def test_nameservers_override(client, bob, domain):
    client.force_login(bob)
    target = url(domain.project, "dns_nameservers")
    client.post(target, {"domain": domain.pk, "nameservers": " 192.0.2.53, [2001:db8::53]:5353 "})
    domain.refresh_from_db()
    assert domain.nameservers == "192.0.2.53:53,[2001:db8::53]:5353"

    response = client.post(target, {"domain": domain.pk, "nameservers": "ns1:x"}, follow=True)
    assert "&#x27;ns1:x&#x27; is not a server" in response.content.decode()
    domain.refresh_from_db()
    assert domain.nameservers == "192.0.2.53:53,[2001:db8::53]:5353"


def test_a_removed_default_stays_removed(client, bob, domain):
    client.force_login(bob)
    client.get(url(domain.project))
    mx = domain.dns_records.get(rtype="MX", source="default")
    client.post(url(domain.project, "dns_record_remove"), {"record": mx.pk})
    client.get(url(domain.project))
    check_domain(domain)
    assert not domain.dns_records.filter(rtype="MX").exists()
    assert domain.dns_records.filter(group="dmarc").exists()


def test_one_domain_is_chosen_already(client, bob, domain):
    client.force_login(bob)
    page = client.get(url(domain.project)).content.decode()
    assert "---------" not in page
    assert f'<option value="{domain.pk}" selected>{domain.name}</option>' in page
    domain.project.domains.create(name="fabrikam.test")
    assert "---------" in client.get(url(domain.project)).content.decode()


def test_an_mx_keeps_its_preference_and_is_checked_with_it(client, bob, domain, old_dns):
    client.force_login(bob)
    form = {"domain": domain.pk, "name": "@", "rtype": "MX", "match": "exact", "present": "on"}
    client.post(
        url(domain.project, "dns_record_add"), {**form, "value": "20 Mail.Global.Frontbridge.com"}
    )
    record = domain.dns_records.get(source="consultant", rtype="MX")
    assert record.value == "20 mail.global.frontbridge.com."
    result = check_domain(domain).results.get(record=record)
    assert (result.verdict, result.message) == (
        "wrong",
        "10 mail.global.frontbridge.com. has another preference: "
        "expected 20 mail.global.frontbridge.com.",
    )
    bad = client.post(url(domain.project, "dns_record_add"), {**form, "value": "x mx.example.org"})
    assert "An MX value is a host, or a preference and a host" in bad.content.decode()


def test_no_announcement_for_a_step_nothing_was_checked_for(client, bob, project, old_dns):
    """A maildir target expects no records: the TTL step ticks with nothing to go on, and the
    page does not announce it as if the check had found something in place."""
    from projects.cutover import ensure_checklist

    project.domains.create(name=DOMAIN, nameservers=old_dns.address)
    ensure_checklist(project)
    client.force_login(bob)
    response = client.post(url(project, "dns_check_now"), follow=True)
    page = response.content.decode()
    assert "Checked 1 domain(s)." in page
    assert "ticked themselves" not in page


def test_the_announcement_names_the_steps_whose_records_are_in_place(client, bob, domain, old_dns):
    from projects.cutover import ensure_checklist

    ensure_checklist(domain.project)
    serve_target_records(old_dns)
    client.force_login(bob)
    page = client.post(url(domain.project, "dns_check_now"), follow=True).content.decode()
    assert "checklist step(s) ticked themselves: " in page
    assert "Set MX, autodiscover, SPF, DKIM and DMARC records" in page


def test_an_imap_to_imap_project_checks_its_new_hosts_records(client, bob, project, nsd_factory):
    from .zones import IMAP, IMAP_HOST

    project.target.kind, project.target.endpoint = "imap", IMAP_HOST
    project.target.save()
    dns = nsd_factory({DOMAIN: zone(IMAP)})
    domain = project.domains.create(name=DOMAIN, nameservers=dns.address)
    client.force_login(bob)
    page = client.get(url(project)).content.decode()
    assert "Fetch the records from the tenant" not in page  # no tenant lists them
    assert "Expect SIP records" not in page  # Microsoft's retired chat, not this route's
    assert "find the new server when a user adds the account again" in page
    records = domain.dns_records.all()
    assert {r.group for r in records} == {"mx", "spf", "clients"}
    assert not [r for r in records if "microsoft" in r.value or "outlook" in r.value]
    check = check_domain(domain)
    assert check.ok, (check.error, check.findings)
    srv = {r.record.name: r.values for r in check.results.filter(record__rtype="SRV")}
    assert srv == {
        "_imaps._tcp": [f"0 1 993 {IMAP_HOST}."],
        "_submission._tcp": [f"0 1 587 {IMAP_HOST}."],
    }
