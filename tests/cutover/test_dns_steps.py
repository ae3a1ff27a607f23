"""DNS steps tick themselves once every server serves the new records (real NSD, reloaded)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from dnscheck.models import DnsRecord
from dnscheck.services import check_project
from projects.cutover import auto_tick, ensure_checklist
from tests.dnscheck.zones import DOMAIN, GONE, NEW, serve_target_records, zone

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
    # No SIP records were chosen: that step waits for a person.
    assert not checklist.cutover_steps.get(key="sip-records").is_done

    client.force_login(bob)
    body = client.get(reverse("cutover", args=[checklist.pk])).content.decode()
    assert "✔ Set MX, autodiscover, SPF, DKIM and DMARC records" in body
    assert "no records to check for this step" in body


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
