"""The checker against real NSD servers: every verdict, the rules, bad input."""

import time
from datetime import UTC, datetime, timedelta

import pytest

from dnscheck.checker import CheckError, Server, check
from dnscheck.records import Expected, InvalidDomain, microsoft365
from dnscheck.rules import dmarc_problems

from .zones import DOMAIN, GONE, NEW, OLD, new_zones, serve_target_records, zone


def expected(sip=False):
    gone = [Expected(n, t, v, present=False, group="old") for n, t, v in GONE]
    return microsoft365(DOMAIN, sip=sip) + gone


def server(nsd, role="authoritative"):
    return Server("127.0.0.1", nsd.port, role)


def verdicts(report, server_label=None):
    """{(type, name, present): verdict} for one server."""
    label = server_label or report.servers[0].label
    return {
        (r.record.rtype, r.record.name, r.record.present, r.record.value): r.verdict
        for r in report.results
        if r.server.label == label
    }


def by_group(report, label=None):
    out = {}
    for (rtype, name, present, _), verdict in verdicts(report, label).items():
        out.setdefault((rtype, name, present), set()).add(verdict)
    return out


def test_new_provider_serves_everything(nsd_factory):
    new = nsd_factory(new_zones())
    report = check(DOMAIN, expected(), servers=[server(new)], resolvers=[server(new, "resolver")])
    assert {r.verdict for r in report.results} == {"ok"}
    assert report.findings == []
    assert report.ok
    mx = next(r for r in report.results if r.record.rtype == "MX" and r.record.present)
    assert mx.values == ["0 contoso-test.mail.protection.outlook.com."] and mx.ttl == 300


def test_old_provider_still_serving(nsd_factory):
    old = nsd_factory({DOMAIN: zone(OLD)})
    report = check(DOMAIN, expected(), servers=[server(old)], resolvers=[])
    found = by_group(report)
    assert found[("MX", "@", True)] == {"old"}
    assert found[("CNAME", "autodiscover", True)] == {"old"}
    assert found[("CNAME", "selector1._domainkey", True)] == {"nxdomain"}
    assert found[("TXT", "_dmarc", True)] == {"nxdomain"}
    # The apex has TXT records, none of them the verification or Microsoft's SPF.
    assert found[("TXT", "@", True)] == {"missing"}
    assert found[("MX", "@", False)] == {"old"}
    assert found[("CNAME", "ms00112233", False)] == {"old"}
    assert not report.ok


def test_wrong_value_and_missing(nsd_factory):
    records = [r for r in NEW if " MX " not in r and "autodiscover" not in r]
    dns = nsd_factory(
        new_zones(records + ["@ 300 IN MX 0 mx.elsewhere.test.", "autodiscover 300 IN A 192.0.2.7"])
    )
    report = check(DOMAIN, expected(), servers=[server(dns)], resolvers=[])
    found = by_group(report)
    assert found[("MX", "@", True)] == {"wrong"}
    # A name that exists with other types has no CNAME: missing, not NXDOMAIN.
    assert found[("CNAME", "autodiscover", True)] == {"missing"}
    assert found[("MX", "@", False)] == {"ok"}  # the old MX is gone


def test_cutover_reload_turns_old_into_ok(nsd_factory):
    dns = nsd_factory({DOMAIN: zone(OLD), "protection.outlook.com": zone([])})
    before = check(DOMAIN, expected(), servers=[server(dns)], resolvers=[])
    assert by_group(before)[("MX", "@", True)] == {"old"}

    serve_target_records(dns)
    after = check(DOMAIN, expected(), servers=[server(dns)], resolvers=[])
    assert {r.verdict for r in after.results} == {"ok"}
    assert after.ok


def test_silent_and_refusing_servers_do_not_block_the_others(nsd_factory, silent_dns_server):
    new = nsd_factory(new_zones())
    elsewhere = nsd_factory({"other.test": zone([])})  # serves another zone: REFUSED for ours
    silent = Server.parse(silent_dns_server)
    started = time.monotonic()
    report = check(
        DOMAIN,
        expected(sip=True),
        servers=[server(new), silent, server(elsewhere)],
        resolvers=[],
        timeout=1.0,
    )
    elapsed = time.monotonic() - started
    # Every question waits at most its own timeout, all at once, and SPF look-ups take the
    # first answer: one timeout in all, not one per question. Asked one after another the
    # silent server's questions would take a second each (6 s at least). 1.0 s is measured on
    # a 2-core machine at load 3.8; 5 s leaves it five times that and still fails the 6 s.
    assert len([r for r in report.results if r.server == silent]) >= 6
    assert elapsed < 5.0, elapsed
    assert set(verdicts(report, silent.label).values()) == {"timeout"}
    assert set(verdicts(report, server(elsewhere).label).values()) == {"refused"}
    good = by_group(report, server(new).label)
    assert good[("MX", "@", True)] == {"ok"}
    assert good[("SRV", "_sip._tls", True)] == {"nxdomain"}
    timeout = next(r for r in report.results if r.server == silent)
    assert timeout.message == "no answer within 1 s"
    refused = next(r for r in report.results if r.server == server(elsewhere))
    assert "does not serve this zone" in refused.message


def test_sip_srv_records(nsd_factory):
    sip = [
        # The seed's values (priority 1, weight 100) differ from Microsoft's: both work.
        "_sip._tls 60 IN SRV 1 100 443 sipdir.online.lync.com.",
        "_sipfederationtls._tcp 60 IN SRV 1 100 5061 sipfed.online.lync.com.",
    ]
    dns = nsd_factory(new_zones(NEW + sip))
    report = check(DOMAIN, expected(sip=True), servers=[server(dns)], resolvers=[])
    assert {r.verdict for r in report.results} == {"ok"}


def test_two_spf_records_fail(nsd_factory):
    dns = nsd_factory(new_zones(NEW + ['@ 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"']))
    report = check(DOMAIN, expected(), servers=[server(dns)], resolvers=[])
    spf = [f for f in report.findings if f.group == "spf"]
    assert len(spf) == 1 and "2 SPF records" in spf[0].message
    assert not report.ok


def test_spf_lookup_limit_counts_nested_includes(nsd_factory):
    # 3 at the apex + 5 in l1 (its include counted there) + 3 in l2 (redirect too) = 11.
    spf_zone = [
        "@ IN NS ns1.contoso.test.",
        'l1 IN TXT "v=spf1 include:l2.spf.test a mx ptr exists:%{i}.x.spf.test -all"',
        'l2 IN TXT "v=spf1 a mx redirect=l3.spf.test"',
        'l3 IN TXT "v=spf1 ip4:192.0.2.1 -all"',
    ]
    records = [r for r in NEW if "v=spf1" not in r]
    records.append('@ 300 IN TXT "v=spf1 include:l1.spf.test mx a -all"')
    dns = nsd_factory({**new_zones(records), "spf.test": spf_zone})
    report = check(DOMAIN, expected(), servers=[server(dns)], resolvers=[server(dns, "resolver")])
    messages = [f.message for f in report.findings if f.group == "spf"]
    assert messages == [
        "SPF of contoso.test needs 11 DNS lookups; the limit is 10 (RFC 7208 section 4.6.4)"
    ]


def test_spf_include_without_spf_record(nsd_factory):
    records = [r for r in NEW if "v=spf1" not in r]
    records.append('@ 300 IN TXT "v=spf1 include:nothing.contoso.test -all"')
    dns = nsd_factory(new_zones(records))
    report = check(DOMAIN, expected(), servers=[server(dns)], resolvers=[])
    messages = [f.message for f in report.findings if f.group == "spf"]
    assert messages == [
        "SPF of contoso.test: nothing.contoso.test has no SPF record(s); the include fails"
    ]


def test_dmarc_syntax_is_checked(nsd_factory):
    records = [r for r in NEW if "_dmarc" not in r]
    records.append('_dmarc 300 IN TXT "v=DMARC1; p=maybe; pct=150; rua=dmarc@contoso.test"')
    dns = nsd_factory(new_zones(records))
    report = check(DOMAIN, expected(), servers=[server(dns)], resolvers=[])
    messages = sorted(f.message for f in report.findings if f.group == "dmarc")
    assert messages == [
        "DMARC of contoso.test: p=maybe is not none, quarantine or reject",
        "DMARC of contoso.test: pct=150 must be a number from 0 to 100",
        "DMARC of contoso.test: rua address 'dmarc@contoso.test' must be a mailto: URI",
    ]
    assert not report.ok


def test_dmarc_rules():
    assert dmarc_problems("v=DMARC1; p=reject; sp=none; adkim=s; rua=mailto:a@b.example") == []
    assert dmarc_problems("p=none; v=DMARC1") == ["it must start with v=DMARC1"]
    assert dmarc_problems("v=DMARC1; rua=mailto:a@b.example") == [
        "the policy p= is missing (p=none, quarantine or reject)"
    ]
    assert dmarc_problems("v=DMARC1; p=none; p=reject; aspf=x") == [
        "tag p= appears twice",
        "aspf=x must be r or s",
    ]


def test_high_ttl_before_cutover_warns_with_time_left(nsd_factory):
    old = nsd_factory({DOMAIN: zone(OLD)})
    cutover = datetime.now(UTC) + timedelta(days=2, hours=3, minutes=1)
    report = check(DOMAIN, expected(), servers=[server(old)], resolvers=[], cutover_at=cutover)
    ttl = sorted(f.message for f in report.findings if f.group == "ttl")
    assert ttl == [
        "CNAME autodiscover.contoso.test is served with TTL 3600 s: lower it to 300 s or less "
        "at least 1 h before cutover (cutover in 2 days, 3 h)",
        "MX contoso.test is served with TTL 3600 s: lower it to 300 s or less at least 1 h "
        "before cutover (cutover in 2 days, 3 h)",
        "TXT contoso.test is served with TTL 3600 s: lower it to 300 s or less at least 1 h "
        "before cutover (cutover in 2 days, 3 h)",
    ]
    assert {f.level for f in report.findings if f.group == "ttl"} == {"warning"}


def test_low_ttl_gives_no_warning(nsd_factory):
    old = nsd_factory({DOMAIN: zone([r.replace(" 3600 ", " 300 ") for r in OLD])})
    report = check(DOMAIN, expected(), servers=[server(old)], resolvers=[])
    assert [f for f in report.findings if f.group == "ttl"] == []


def test_nameservers_found_from_ns_records(nsd_factory):
    dns = nsd_factory(new_zones())
    report = check(DOMAIN, expected(), resolvers=[server(dns, "resolver")], ns_port=dns.port)
    assert [s.label for s in report.servers] == [
        f"ns1.contoso.test (127.0.0.1:{dns.port})",
        f"127.0.0.1:{dns.port}",
    ]
    assert report.ok


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("www.contoso.test", "www.contoso.test has no NS records: it is not a DNS zone"),
        ("nothere.contoso.test", "nothere.contoso.test does not exist in DNS (NXDOMAIN)"),
    ],
)
def test_name_that_is_not_a_zone(nsd_factory, name, message):
    dns = nsd_factory(new_zones())
    with pytest.raises(CheckError) as excinfo:
        check(name, [], resolvers=[server(dns, "resolver")], ns_port=dns.port)
    assert str(excinfo.value).startswith(message)


def test_no_resolver_answers(silent_dns_server):
    with pytest.raises(CheckError) as excinfo:
        check(DOMAIN, [], resolvers=[Server.parse(silent_dns_server, "resolver")], timeout=0.3)
    assert str(excinfo.value) == (
        f"could not look up the nameservers of contoso.test: {silent_dns_server}: "
        "no answer within 0.3 s"
    )


@pytest.mark.parametrize(
    "name", ["", "localhost", "exa mple.org", "-bad.example.org", "a..b.org", "ex!ample.org"]
)
def test_invalid_domain_names(name):
    with pytest.raises(InvalidDomain) as excinfo:
        check(name, [], servers=[Server("127.0.0.1", 9)])
    assert repr(name) in str(excinfo.value)


@pytest.mark.parametrize("text", ["", "host:port", "host:0", "host:70000", "[::1"])
def test_bad_server_addresses(text):
    with pytest.raises(ValueError, match="is not a server"):
        Server.parse(text)
