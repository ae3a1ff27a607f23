"""DNS steps tick themselves once every server serves the new records (real NSD, reloaded)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from dnscheck.models import DnsRecord
from dnscheck.services import check_project
from projects.cutover import auto_tick, ensure_checklist
from tests.dnscheck.zones import (
    DOMAIN,
    GONE,
    IMAP,
    IMAP_HOST,
    MX_MICROSOFT,
    NEW,
    NEW_MX_MICROSOFT,
    serve_target_records,
    zone,
)

pytestmark = pytest.mark.django_db

DNS_STEPS = ["lower-ttl", "old-records-off", "target-domain-on", "target-records"]


@pytest.fixture
def checklist(domain):
    project = domain.project
    project.planned_cutover = timezone.now() + timedelta(days=1)
    project.save()
    ensure_checklist(project)
    for name, rtype, value in GONE:
        DnsRecord.objects.create(
            domain=domain, name=name, rtype=rtype, value=value, present=False, group="old"
        )
    return project


def dns_ticked(project):
    check_project(project)
    return [s.key for s in auto_tick(project) if s.kind == "dns"]


def test_nothing_ticks_while_the_old_provider_serves(checklist):
    assert dns_ticked(checklist) == []
    step = checklist.cutover_steps.get(key="target-records")
    assert not step.is_done


def test_steps_tick_as_the_records_change(client, bob, checklist, old_dns):
    # First the TTLs come down (a day ahead): only the TTL step ticks.
    old_dns.set_zone(
        DOMAIN, zone([r.replace(" 3600 ", " 300 ") for r in old_dns.zones[DOMAIN][3:]])
    )
    old_dns.reload()
    assert dns_ticked(checklist) == ["lower-ttl"]

    # Cutover: the zone now carries the target's records.
    serve_target_records(old_dns)
    assert dns_ticked(checklist) == ["old-records-off", "target-domain-on", "target-records"]
    done = checklist.cutover_steps.filter(key__in=DNS_STEPS, done_at__isnull=False)
    assert done.count() == 4 and not done.filter(done_by__isnull=False).exists()
    # No SIP records were chosen: the retired Lync/Skype step is not on the list.
    assert not checklist.cutover_steps.filter(key="sip-records").exists()

    client.force_login(bob)
    body = client.get(reverse("cutover", args=[checklist.pk])).content.decode()
    assert "✔ Set MX, autodiscover, SPF, DKIM and DMARC records" in body


def test_the_page_says_what_a_dns_step_waits_for(client, bob, checklist):
    check_project(checklist)
    client.force_login(bob)
    body = client.get(reverse("cutover", args=[checklist.pk])).content.decode()
    assert f"MX @ on {checklist.domains.get().nameservers}: old value still served" in body
    assert "is served with TTL 3600 s" in body


def test_a_broken_spf_keeps_the_records_step_open(checklist, old_dns):
    records = [r for r in NEW if "v=spf1" not in r]
    records += [
        '@ 300 IN TXT "v=spf1 include:spf.protection.outlook.com -all"',
        '@ 300 IN TXT "v=spf1 -all"',
    ]
    serve_target_records(old_dns, records)
    assert "target-records" not in dns_ticked(checklist)


@pytest.fixture
def imap_checklist(project, old_dns):
    """Contoso moves to another IMAP host: its checklist and domain, the old zone served."""
    project.target.kind, project.target.endpoint = "imap", IMAP_HOST
    project.target.save()
    project.domains.create(name=DOMAIN, nameservers=old_dns.address)
    ensure_checklist(project)
    return project


def test_a_dns_step_with_nothing_to_check_does_not_tick(client, bob, imap_checklist):
    """No records were recorded as the old provider's: the check has nothing to ask about for
    that step, so it waits for a person instead of ticking itself after any check."""
    assert "old-records-off" not in dns_ticked(imap_checklist)
    client.force_login(bob)
    body = client.get(reverse("cutover", args=[imap_checklist.pk])).content.decode()
    assert "the DNS check has no records of this step to ask about" in body


def test_no_dns_step_ticks_when_the_route_expects_no_records(client, bob, project, old_dns):
    """A maildir target expects nothing in DNS: no step may tick itself for lack of a
    problem (the TTL step used to, and the DNS page announced it)."""
    project.domains.create(name=DOMAIN, nameservers=old_dns.address)
    ensure_checklist(project)
    assert dns_ticked(project) == []
    client.force_login(bob)
    page = client.post(reverse("dns_check_now", args=[project.pk]), follow=True)
    assert "ticked themselves" not in page.content.decode()
    assert not project.cutover_steps.filter(kind="dns", done_at__isnull=False).exists()


def test_nothing_ticks_after_a_check_that_could_not_run(client, bob, imap_checklist):
    imap_checklist.domains.update(name="not a domain")
    assert dns_ticked(imap_checklist) == []
    client.force_login(bob)
    page = client.post(reverse("dns_check_now", args=[imap_checklist.pk]), follow=True)
    assert "ticked themselves" not in page.content.decode()


def test_an_imap_hosts_steps_tick_from_its_records(client, bob, imap_checklist, old_dns):
    """The IMAP route's DNS steps name the record groups the checker stores (mx, spf,
    clients): the old zone ticks none, the new host's zone (RFC 6186 SRV, autoconfig) ticks
    them, and the DNS page announces exactly those."""
    assert dns_ticked(imap_checklist) == []
    old_dns.set_zone(DOMAIN, zone(IMAP))
    old_dns.reload()
    client.force_login(bob)
    page = client.post(reverse("dns_check_now", args=[imap_checklist.pk]), follow=True)
    ticked = imap_checklist.cutover_steps.filter(done_at__isnull=False)
    assert set(ticked.values_list("key", flat=True)) == {
        "lower-ttl",
        "host-records",
        "client-records",
    }
    text = page.content.decode()
    assert "3 checklist step(s) ticked themselves: " in text
    for step in ticked:
        assert escape(step.title) in text


def test_a_microsoft_365_checklist_waits_for_the_tenants_own_records(
    client, bob, tenant_dns, domain, old_dns
):
    """The records come from the tenant (Graph test server): the older MX form, fine without
    the tenant, keeps the records step open and the page names the tenant's MX; the tenant's
    own mx.microsoft MX ticks it."""
    project = domain.project
    ensure_checklist(project)
    client.force_login(bob)
    client.post(reverse("dns_tenant_records", args=[project.pk]), {"domain": domain.pk})
    assert domain.dns_records.filter(source="tenant", rtype="MX", value=f"0 {MX_MICROSOFT}")
    serve_target_records(old_dns, NEW)
    ticked = dns_ticked(project)
    assert "target-domain-on" in ticked and "target-records" not in ticked
    body = client.get(reverse("cutover", args=[project.pk])).content.decode()
    assert f"MX @ on {domain.nameservers}: wrong value (expected 0 {MX_MICROSOFT})" in body

    serve_target_records(old_dns, NEW_MX_MICROSOFT)
    assert "target-records" in dns_ticked(project)


def test_the_dns_page_announces_every_step_that_ticked_the_old_records_step_too(
    client, bob, checklist, old_dns
):
    """The DNS page's "Check now" names each DNS step that ticked, including the one that
    waits for the old provider's records to be gone (checked for absence)."""
    serve_target_records(old_dns)
    client.force_login(bob)
    page = client.post(reverse("dns_check_now", args=[checklist.pk]), follow=True)
    text = page.content.decode()
    ticked = checklist.cutover_steps.filter(kind="dns", done_at__isnull=False)
    assert set(ticked.values_list("key", flat=True)) == set(DNS_STEPS)
    assert f"{ticked.count()} checklist step(s) ticked themselves: " in text
    for step in ticked:
        assert escape(step.title) in text
