"""``manage.py dnscheck``: the grid, JSON and exit codes, in-process and as a real process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from .zones import DOMAIN, OLD, new_zones, zone

ROOT = Path(__file__).resolve().parents[2]


def run(*args):
    from io import StringIO

    out = StringIO()
    try:
        call_command("dnscheck", *args, stdout=out)
    except CommandError as exc:
        return exc.returncode, out.getvalue(), str(exc)
    return 0, out.getvalue(), ""


def test_all_in_place_exits_zero(nsd_factory):
    dns = nsd_factory(new_zones())
    code, out, _ = run(DOMAIN, "--server", dns.address, "--resolver", dns.address)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["record", dns.address, dns.address]
    assert f"MX {DOMAIN}" in out and "old value" not in out
    assert lines[-1] == "OK: every record is in place"


def test_old_records_exit_one_with_verdicts(nsd_factory):
    dns = nsd_factory({DOMAIN: zone(OLD)})
    code, out, error = run(
        DOMAIN,
        "--server",
        dns.address,
        "--resolver",
        dns.address,
        "--gone",
        "MX:@:mail.global.frontbridge.com.",
    )
    assert (code, error) == (1, "not everything is in place yet")
    rows = {line.split("  ")[0].strip(): line for line in out.splitlines()}
    assert "old value still served" in rows[f"MX {DOMAIN}"]
    assert "old value still served" in rows[f"gone MX {DOMAIN}"]
    assert "NXDOMAIN" in rows[f"TXT _dmarc.{DOMAIN}"]
    assert out.splitlines()[-1] == "NOT OK"
    assert f"warning: MX {DOMAIN} is served with TTL 3600 s" in out


def test_json_output(nsd_factory, silent_dns_server):
    dns = nsd_factory(new_zones())
    code, out, _ = run(
        DOMAIN,
        "--server",
        dns.address,
        "--server",
        silent_dns_server,
        "--resolver",
        dns.address,
        "--timeout",
        "0.5",
        "--json",
    )
    data = json.loads(out)
    assert code == 1 and data["ok"] is False
    assert data["servers"] == [dns.address, silent_dns_server, dns.address]
    verdicts = {(r["server"], r["role"], r["verdict"]) for r in data["results"]}
    assert verdicts == {
        (dns.address, "authoritative", "ok"),
        (dns.address, "resolver", "ok"),
        (silent_dns_server, "authoritative", "timeout"),
    }
    mx = next(r for r in data["results"] if r["type"] == "MX" and r["server"] == dns.address)
    assert mx["values"] == ["0 contoso-test.mail.protection.outlook.com."] and mx["ttl"] == 300


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["not a domain"], "'not a domain' is not a domain name"),
        ([DOMAIN, "--server", "ns1:notaport"], "'ns1:notaport' is not a server"),
        ([DOMAIN, "--gone", "MX-only"], "--gone 'MX-only': expected TYPE:NAME:VALUE"),
    ],
)
def test_bad_input_exits_two(args, message):
    code, _, error = run(*args, "--resolver", "127.0.0.1:9")
    assert code == 2 and error.startswith(message)


def test_as_a_process(nsd_factory):
    """The real command line: exit status and a message on stderr, never a traceback."""
    dns = nsd_factory(new_zones())
    env = {**os.environ, "DNSCHECK_RESOLVERS": dns.address}

    def manage(*args):
        return subprocess.run(
            [sys.executable, "manage.py", "dnscheck", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    ok = manage(DOMAIN, "--server", dns.address)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[-1] == "OK: every record is in place"

    not_a_zone = manage(f"www.{DOMAIN}")
    assert not_a_zone.returncode == 2
    assert "www.contoso.test has no NS records" in not_a_zone.stderr
    assert "Traceback" not in not_a_zone.stderr

    dns.set_zone(DOMAIN, zone(OLD))
    dns.reload()
    lagging = manage(DOMAIN, "--server", dns.address)
    assert lagging.returncode == 1
    assert "not everything is in place yet" in lagging.stderr


def test_servers_comma_separated(nsd_factory, silent_dns_server):
    dns = nsd_factory(new_zones())
    code, out, _ = run(
        DOMAIN,
        "--server",
        f"{dns.address},{silent_dns_server}",
        "--resolver",
        dns.address,
        "--timeout",
        "0.3",
    )
    assert code == 1
    assert out.splitlines()[0].split() == ["record", dns.address, silent_dns_server, dns.address]


@pytest.mark.django_db
def test_project_checks_what_the_project_expects(tenant_dns, domain, old_dns):
    """The tenant's records (fetched), the route's DKIM and DMARC, the consultant's own."""
    from dnscheck.models import DnsRecord
    from dnscheck.services import fetch_tenant_records

    from .zones import MX_MICROSOFT, NEW_MX_MICROSOFT, serve_target_records

    fetch_tenant_records(domain)
    DnsRecord.objects.create(domain=domain, name="www", rtype="A", value="192.0.2.10")
    serve_target_records(old_dns, NEW_MX_MICROSOFT)
    code, out, _ = run(DOMAIN, "--project", str(domain.project_id))
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].split() == ["record", old_dns.address]  # the domain's own nameservers
    rows = {line.split("  ")[0].strip() for line in lines[1:]}
    assert {f"MX {DOMAIN}", f"A www.{DOMAIN}", f"TXT _dmarc.{DOMAIN}"} <= rows
    # Two TXT records at the apex: one line each, told apart by their value.
    assert {
        f"TXT {DOMAIN} MS=ms12345678",
        f"TXT {DOMAIN} include:spf.protection.outlook.com",
    } <= rows
    assert lines[-1] == "OK: every record is in place"

    serve_target_records(old_dns)  # the older MX form: not the tenant's
    code, out, error = run(DOMAIN, "--project", str(domain.project_id))
    assert (code, error) == (1, "not everything is in place yet")
    assert f"MX {DOMAIN}: expected 0 {MX_MICROSOFT}" in out.splitlines()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("domain_name", "project_id", "message"),
    [
        (DOMAIN, 999999, "there is no project 999999"),
        ("fabrikam.test", None, "has no domain fabrikam.test (its domains: contoso.test)"),
    ],
)
def test_project_bad_input_exits_two(domain, domain_name, project_id, message):
    code, _, error = run(domain_name, "--project", str(project_id or domain.project_id))
    assert code == 2 and message in error
