"""A checklist per route of the migration, as the consultant sees it on the page: to an IMAP
host (no Microsoft step at all), to Microsoft 365 (its records, SIP only when asked for), to
Exchange on premises; each step says why it matters."""

import re

import pytest
from django.urls import reverse

from dnscheck.services import ensure_default_records
from projects.cutover import ROUTES, TEMPLATE, template_for
from tests.dnscheck.zones import DOMAIN, IMAP_HOST

pytestmark = pytest.mark.django_db

MICROSOFT = re.compile(r"microsoft|outlook|office ?365|lync|skype|\bsip\b|autodiscover", re.I)


def route(project, source=None, target=None):
    """Give the project's tenants these (kind, endpoint) pairs."""
    for tenant, given in ((project.source, source), (project.target, target)):
        if given:
            tenant.kind, tenant.endpoint = given
            tenant.save()
    return project


def checklist_page(client, user, project) -> str:
    client.force_login(user)
    response = client.get(reverse("cutover", args=[project.pk]))
    assert response.status_code == 200
    return response.content.decode()


def step_titles(body) -> list[str]:
    return re.findall(r'<strong class="step-title">(?:✔ )?(.*?)</strong>', body)


def test_imap_to_imap_has_no_microsoft_step(client, bob, project):
    route(project, ("imap", "imap.old.test"), ("imap", IMAP_HOST))
    body = checklist_page(client, bob, project)
    assert not MICROSOFT.findall(body)
    titles = step_titles(body)
    assert "Point MX at the new host and list it in SPF" in titles
    assert (
        "Publish the records mail programs use to find the new server (_imaps._tcp and "
        "_submission._tcp SRV, autoconfig)" in titles
    )
    assert "Re-add the account in the mail program" in titles
    # Every step says why it matters, in one line.
    assert body.count('<p class="step-why">Why it matters: ') == len(titles)
    assert "Mail programs (Thunderbird, Apple Mail, phones) read these" in body


def test_a_maildir_target_is_looked_after_like_an_imap_host(client, bob, project):
    body = checklist_page(client, bob, project)  # the fixture's target is a maildir
    assert not MICROSOFT.findall(body)
    assert "Re-add the account in the mail program" in step_titles(body)


def test_microsoft_365_has_its_records_and_no_sip(client, bob, project):
    route(project, target=("exchange_online", ""))
    body = checklist_page(client, bob, project)
    titles = step_titles(body)
    for title in (
        "Add the domain to the target and publish its verification record",
        "Set MX, autodiscover, SPF, DKIM and DMARC records",
        "Move users onto the domain in the target",
        "Create a new Outlook profile and make it the default",
    ):
        assert title in titles
    assert not re.search(r"\bSIP\b|Lync|Skype|sign-in assistant", body)
    # From an IMAP host there is no Microsoft tenant to take the users off the domain in.
    assert "Move users off the domain in the source (back to its initial domain)" not in titles
    assert "Proves to the new system that the domain is yours" in body


@pytest.mark.parametrize(
    "source",
    [("exchange_online", ""), ("ews", "https://outlook.office365.com/EWS/Exchange.asmx")],
)
def test_from_another_tenant_the_users_leave_the_domain_first(client, bob, project, source):
    route(project, source, ("ews", "https://outlook.office365.com/EWS/Exchange.asmx"))
    titles = step_titles(checklist_page(client, bob, project))
    off = titles.index("Move users off the domain in the source (back to its initial domain)")
    assert off < titles.index("Remove the domain from the source")
    assert "Set MX, autodiscover, SPF, DKIM and DMARC records" in titles


def test_exchange_on_premises_has_mx_and_autodiscover(client, bob, project):
    route(project, ("ews", "https://mail.old.test/EWS/Exchange.asmx"))
    route(project, target=("ews", "https://mail.new.test/EWS/Exchange.asmx"))
    body = checklist_page(client, bob, project)
    titles = step_titles(body)
    assert "Point MX and autodiscover at the new Exchange server" in titles
    assert "Create a new Outlook profile and make it the default" in titles
    assert not re.search(r"Microsoft 365|DKIM|\bSIP\b|Lync|verification record", body)
    assert "This project migrates to Exchange on premises" in body


def test_sip_only_when_the_project_opts_in(client, bob, project):
    """The DNS page's SIP option (records for Lync/Skype, retired in 2021) puts the SIP step
    in the template: offered to add back, and there from the start for a checklist made
    after it."""
    route(project, target=("exchange_online", ""))
    domain = project.domains.create(name=DOMAIN)
    assert "sip-records" not in [t.key for t in template_for(project)]
    body = checklist_page(client, bob, project)
    assert "Add back a step of the template" not in body

    client.post(reverse("dns_sip", args=[project.pk]), {"domain": domain.pk, "sip": "1"})
    assert domain.dns_records.filter(group="sip").exists()
    body = checklist_page(client, bob, project)
    assert "Set the SIP SRV records" not in step_titles(body)
    assert '<option value="sip-records">Set the SIP SRV records' in body
    client.post(reverse("cutover_step_add", args=[project.pk]), {"key": "sip-records"})
    titles = step_titles(checklist_page(client, bob, project))
    sip = titles.index("Set the SIP SRV records (only where Lync/Skype is still used)")
    assert titles[sip - 1] == "Set MX, autodiscover, SPF, DKIM and DMARC records"

    ensure_default_records(domain, sip=False)
    assert "sip-records" not in [t.key for t in template_for(project)]


def test_every_route_has_a_why_for_every_step(project):
    keys = [t.key for t in TEMPLATE]
    assert len(keys) == len(set(keys))
    for template in TEMPLATE:
        assert template.why and "\n" not in template.why and len(template.why) <= 300
        assert template.routes <= set(ROUTES)
