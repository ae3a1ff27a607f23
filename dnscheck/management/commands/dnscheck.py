"""``manage.py dnscheck DOMAIN``: the propagation grid on the command line.

Exit status: 0 when every record is ok on every server and the SPF and DMARC rules pass,
1 while anything is not, 2 when the check cannot run (bad name, no NS, no answer).
"""

import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from dnscheck.checker import CheckError, Report, Verdict, check
from dnscheck.records import TARGETS, Expected, InvalidDomain
from dnscheck.services import servers_from_setting


class Command(BaseCommand):
    help = "Check a domain's records on every authoritative nameserver and resolver."
    # Needs neither the database nor the URLconf.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("domain")
        parser.add_argument("--target", choices=sorted(TARGETS), default="m365")
        parser.add_argument(
            "--server",
            action="append",
            default=[],
            metavar="HOST:PORT",
            help="Ask these nameservers instead of the zone's NS records (repeatable).",
        )
        parser.add_argument(
            "--resolver",
            action="append",
            metavar="HOST:PORT",
            help="Resolvers to ask as well (default: the DNSCHECK_RESOLVERS setting).",
        )
        parser.add_argument("--sip", action="store_true", help="Expect the SIP SRV records too.")
        parser.add_argument(
            "--gone",
            action="append",
            default=[],
            metavar="TYPE:NAME:VALUE",
            help="An old record that must no longer be served, e.g. MX:@:mx.old.example.",
        )
        parser.add_argument("--timeout", type=float, default=settings.DNSCHECK_TIMEOUT)
        parser.add_argument("--json", action="store_true", help="Print JSON instead of a grid.")

    def handle(self, *args, **options):
        try:
            report = check(
                options["domain"],
                self.expected(options),
                servers=servers_from_setting(options["server"], "authoritative"),
                resolvers=servers_from_setting(
                    options["resolver"] or settings.DNSCHECK_RESOLVERS, "resolver"
                ),
                timeout=options["timeout"],
            )
        except (InvalidDomain, CheckError, ValueError) as exc:
            raise CommandError(str(exc), returncode=2) from None
        self.stdout.write(as_json(report) if options["json"] else as_grid(report))
        if not report.ok:
            raise CommandError("not everything is in place yet", returncode=1)

    def expected(self, options) -> list[Expected]:
        records = TARGETS[options["target"]](
            options["domain"].strip().rstrip(".").lower(), sip=options["sip"]
        )
        for text in options["gone"]:
            rtype, _, rest = text.partition(":")
            name, _, value = rest.partition(":")
            if not (rtype and name and value):
                raise CommandError(f"--gone {text!r}: expected TYPE:NAME:VALUE", returncode=2)
            records.append(Expected(name, rtype.upper(), value, present=False, group="old"))
        return records


def as_grid(report: Report) -> str:
    labels = [s.label for s in report.servers]
    rows: dict[str, dict] = {}
    for r in report.results:
        name = ("gone " if not r.record.present else "") + r.record.describe(report.domain)
        rows.setdefault(name, {})[r.server.label] = Verdict.LABELS[r.verdict]
    width = max([len(n) for n in rows] + [6])
    widths = {label: max(len(label), 22) for label in labels}

    def line(first: str, cells: dict) -> str:
        return "  ".join([first.ljust(width)] + [cells.get(x, "").ljust(widths[x]) for x in labels])

    lines = [line("record", {x: x for x in labels})]
    lines += [line(name, cells) for name, cells in rows.items()]
    lines += [f"{f.level}: {f.message}" for f in report.findings]
    lines.append("OK: every record is in place" if report.ok else "NOT OK")
    return "\n".join(x.rstrip() for x in lines)


def as_json(report: Report) -> str:
    return json.dumps(
        {
            "domain": report.domain,
            "ok": report.ok,
            "checked_at": report.checked_at.isoformat(),
            "servers": [s.label for s in report.servers],
            "results": [
                {
                    "name": r.record.fqdn(report.domain),
                    "type": r.record.rtype,
                    "expected": r.record.value,
                    "present": r.record.present,
                    "server": r.server.label,
                    "role": r.server.role,
                    "verdict": r.verdict,
                    "values": r.values,
                    "ttl": r.ttl,
                    "message": r.message,
                }
                for r in report.results
            ],
            "findings": [f.as_dict() for f in report.findings],
        },
        indent=2,
    )
