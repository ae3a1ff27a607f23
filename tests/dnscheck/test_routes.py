"""The records each route expects, checked against real NSD zones: Microsoft 365's two MX forms,
an IMAP host's client-configuration records (RFC 6186, autoconfig), Exchange on premises; MX
preference and SRV numbers as given."""

import pytest

from dnscheck.checker import Server, check
from dnscheck.records import WHY, Expected, microsoft365, route_records
from dnscheck.services import target_kind
from projects.models import Tenant

from .zones import DOMAIN, IMAP, IMAP_HOST, MX_MICROSOFT, NEW, NEW_MX_MICROSOFT, OLD, zone


def server(nsd):
    return Server("127.0.0.1", nsd.port)


def results(report, rtype, name="@"):
    return [r for r in report.results if (r.record.rtype, r.record.name) == (rtype, name)]


def test_a_microsoft_365_zone_with_an_mx_microsoft_mx_passes(nsd_factory):
    dns = nsd_factory({DOMAIN: zone(NEW_MX_MICROSOFT)})
    report = check(DOMAIN, microsoft365(DOMAIN), servers=[server(dns)])
    [mx] = results(report, "MX")
    assert (mx.verdict, mx.values) == ("ok", [f"0 {MX_MICROSOFT}"])
    # Either form passes, and the message says which one the tenant has to confirm.
    assert mx.message.startswith(f"0 {MX_MICROSOFT} has the form contoso-test.*.mx.microsoft.")
    assert "the tenant must confirm" in mx.message
    assert {r.verdict for r in report.results} == {"ok"}


def test_the_older_form_passes_too_and_names_itself(nsd_factory):
    dns = nsd_factory({DOMAIN: zone(NEW)})
    report = check(DOMAIN, microsoft365(DOMAIN), servers=[server(dns)])
    [mx] = results(report, "MX")
    assert mx.verdict == "ok"
    assert "has the form contoso-test.mail.protection.outlook.com." in mx.message


def test_the_old_providers_mx_fails_naming_both_forms(nsd_factory):
    dns = nsd_factory({DOMAIN: zone(OLD)})
    report = check(DOMAIN, microsoft365(DOMAIN), servers=[server(dns)])
    [mx] = results(report, "MX")
    assert mx.verdict == "wrong"
    assert mx.message == (
        "expected contoso-test.mail.protection.outlook.com. or contoso-test.*.mx.microsoft."
    )
    assert not report.ok


def test_a_star_is_one_label_only():
    mx = microsoft365(DOMAIN)[0]
    assert mx.matches("0 contoso-test.o-v1.mx.microsoft.")
    assert not mx.matches("0 contoso-test.mx.microsoft.")
    assert not mx.matches("0 contoso-test.a.b.mx.microsoft.")
    assert not mx.matches("0 fabrikam-test.o-v1.mx.microsoft.")


def test_microsoft_365_expects_no_sip_unless_asked():
    assert "sip" not in {r.group for r in route_records("m365", DOMAIN)}
    assert "sip" in {r.group for r in route_records("m365", DOMAIN, sip=True)}


def test_an_imap_route_expects_no_microsoft_record():
    records = route_records("imap", DOMAIN, IMAP_HOST)
    assert {r.group for r in records} == {"mx", "spf", "clients"}
    assert not [r for r in records if "microsoft" in r.value or "outlook" in r.value]
    assert {(r.rtype, r.name, r.value) for r in records} == {
        ("MX", "@", f"{IMAP_HOST}."),
        ("TXT", "@", "v=spf1"),
        ("SRV", "_imaps._tcp", f"993 {IMAP_HOST}."),
        ("SRV", "_submission._tcp", f"587 {IMAP_HOST}."),
        ("A", "autoconfig", ""),
    }
    assert all(WHY[r.group] for r in records)


def test_an_imap_hosts_zone_with_rfc_6186_records_passes(nsd_factory):
    dns = nsd_factory({DOMAIN: zone(IMAP)})
    report = check(DOMAIN, route_records("imap", DOMAIN, IMAP_HOST), servers=[server(dns)])
    assert {(r.record.rtype, r.record.name, r.verdict) for r in report.results} == {
        ("MX", "@", "ok"),
        ("TXT", "@", "ok"),
        ("SRV", "_imaps._tcp", "ok"),
        ("SRV", "_submission._tcp", "ok"),
        ("A", "autoconfig", "ok"),  # a CNAME to the host counts
    }
    assert report.ok, report.findings
    [autoconfig] = results(report, "A", "autoconfig")
    assert autoconfig.values == [f"CNAME {IMAP_HOST}."]


def test_an_srv_record_on_the_wrong_port_fails(nsd_factory):
    records = [r.replace(" 993 ", " 143 ") for r in IMAP if "autoconfig" not in r]
    dns = nsd_factory({DOMAIN: zone(records)})
    report = check(DOMAIN, route_records("imap", DOMAIN, IMAP_HOST), servers=[server(dns)])
    [imaps] = results(report, "SRV", "_imaps._tcp")
    assert imaps.verdict == "wrong"
    assert imaps.message == f"0 1 143 {IMAP_HOST}. has another priority, weight and port: " + (
        f"expected 993 {IMAP_HOST}."
    )
    [autoconfig] = results(report, "A", "autoconfig")
    assert (autoconfig.verdict, autoconfig.message) == (
        "nxdomain",
        "autoconfig.contoso.test does not exist; "
        "expected any value (an address, or a CNAME to a host)",
    )
    assert not report.ok


def test_mx_preference_is_checked_when_given(nsd_factory):
    dns = nsd_factory({DOMAIN: zone(["@ 300 IN MX 20 mx.acme.test."])})
    given = Expected("@", "MX", "10 mx.acme.test.", group="mx")
    any_preference = Expected("@", "MX", "mx.acme.test.", group="mx")
    report = check(DOMAIN, [given, any_preference], servers=[server(dns)])
    verdicts = {r.record.value: (r.verdict, r.message) for r in report.results}
    assert verdicts == {
        "10 mx.acme.test.": (
            "wrong",
            "20 mx.acme.test. has another preference: expected 10 mx.acme.test.",
        ),
        "mx.acme.test.": ("ok", ""),
    }


def test_exchange_on_premises_expects_mx_and_autodiscover(nsd_factory):
    records = route_records("exchange", DOMAIN, "mail.contoso.test")
    assert {(r.rtype, r.name, r.value, r.match) for r in records} == {
        ("MX", "@", "mail.contoso.test.", "exact"),
        ("A", "autodiscover", "", "any"),
    }
    dns = nsd_factory(
        {DOMAIN: zone(["@ 300 IN MX 10 mail.contoso.test.", "autodiscover IN A 192.0.2.25"])}
    )
    report = check(DOMAIN, records, servers=[server(dns)])
    assert {r.verdict for r in report.results} == {"ok"}


@pytest.mark.parametrize(
    ("source", "target", "route"),
    [
        (("imap", "imap.old.test"), ("exchange_online", ""), "m365"),
        (("ews", "https://mail.contoso.test/EWS/Exchange.asmx"), ("exchange_online", ""), "m365"),
        (("exchange_online", ""), ("exchange_online", ""), "m365"),  # tenant to tenant
        (("imap", "imap.old.test"), ("ews", "https://outlook.office365.com/EWS/x"), "m365"),
        (("imap", "imap.old.test"), ("imap", IMAP_HOST), "imap"),
        (("imap", "imap.old.test"), ("ews", "https://mail.contoso.test/EWS/x"), "exchange"),
        (
            ("ews", "https://old.contoso.test/EWS/x"),
            ("ews", "https://mail.contoso.test/x"),
            "exchange",
        ),
        (("imap", IMAP_HOST), ("imap", IMAP_HOST.upper()), "none"),  # the mail stays put
        (("imap", "imap.old.test"), ("maildir", "/srv/mail"), "none"),
    ],
)
def test_the_route_comes_from_the_source_and_target_kinds(source, target, route):
    source, target = (Tenant(kind=kind, endpoint=endpoint) for kind, endpoint in (source, target))
    assert target_kind(source, target) == route
