"""``manage.py dnscheck DOMAIN``: the propagation grid on the command line.

With ``--project ID`` it checks what that project expects of the domain (its route's records,
the tenant's once fetched, the consultant's own), as the DNS page does; without, the records of
a route (``--target``).

Exit status: 0 when every required record is ok on every server and the SPF and DMARC rules
pass, 1 while anything is not, 2 when the check cannot run (bad name, no NS, no answer, no such
project or domain).
"""

import json
from collections import Counter

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from dnscheck.checker import CheckError, Report, Verdict, check
from dnscheck.records import ROUTES, Expected, InvalidDomain, normalize_domain, route_records
from dnscheck.services import ensure_default_records, servers_from_setting, split_dns_servers


class Command(BaseCommand):
    help = "Check a domain's records on every authoritative nameserver and resolver."
    # Needs neither the database nor the URLconf.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("domain")
        parser.add_argument(
            "--project",
            type=int,
            metavar="ID",
            help="Check what this project expects of the domain (the tenant's records included).",
        )
        parser.add_argument("--target", choices=ROUTES, default="m365")
        parser.add_argument(
            "--host", default="", help="The new mail server, for --target imap and exchange."
        )
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
            records, servers, cutover_at = self.project_records(options)
            report = check(
                options["domain"],
                records + self.gone(options),
                servers=servers_from_setting(options["server"], "authoritative") or servers,
                resolvers=servers_from_setting(
                    options["resolver"] or settings.DNSCHECK_RESOLVERS, "resolver"
                ),
                timeout=options["timeout"],
                cutover_at=cutover_at,
            )
        except (InvalidDomain, CheckError, ValueError) as exc:
            raise CommandError(str(exc), returncode=2) from None
        self.stdout.write(as_json(report) if options["json"] else as_grid(report))
        if not report.ok:
            raise CommandError("not everything is in place yet", returncode=1)

    def project_records(self, options) -> tuple[list[Expected], list, object]:
        """(records, the domain's own nameservers, planned cutover) for --project; the
        route's records otherwise."""
        name = normalize_domain(options["domain"])
        if options["project"] is None:
            records = route_records(options["target"], name, options["host"], options["sip"])
            return records, [], None
        from projects.models import Project

        project = (
            Project.objects.filter(pk=options["project"]).select_related("source", "target").first()
        )
        if project is None:
            raise CommandError(f"there is no project {options['project']}", returncode=2)
        domain = next(
            (d for d in project.domains.all() if d.name.lower().rstrip(".") == name), None
        )
        if domain is None:
            names = ", ".join(d.name for d in project.domains.all()) or "none"
            raise CommandError(
                f"project {project.pk} ({project}) has no domain {name} (its domains: {names})",
                returncode=2,
            )
        ensure_default_records(domain)
        records = [r.expected() for r in domain.dns_records.all()]
        return records, split_dns_servers(domain.nameservers), project.planned_cutover

    def gone(self, options) -> list[Expected]:
        records = []
        for text in options["gone"]:
            rtype, _, rest = text.partition(":")
            name, _, value = rest.partition(":")
            if not (rtype and name and value):
                raise CommandError(f"--gone {text!r}: expected TYPE:NAME:VALUE", returncode=2)
            records.append(Expected(name, rtype.upper(), value, present=False, group="old"))
        return records


def row_names(records: list[Expected], domain: str) -> dict[Expected, str]:
    """One line per record: records sharing a name and type (the verification TXT and the SPF)
    are told apart by their value."""
    base = {
        r: ("gone " if not r.present else "")
        + r.describe(domain)
        + (" (optional)" if r.optional else "")
        for r in records
    }
    counts = Counter(base.values())
    return {r: name if counts[name] == 1 else f"{name} {r.shown()}" for r, name in base.items()}


def as_grid(report: Report) -> str:
    labels = [s.label for s in report.servers]
    names = row_names(list(dict.fromkeys(r.record for r in report.results)), report.domain)
    rows: dict[str, dict] = {}
    notes: dict[str, str] = {}
    for r in report.results:
        name = names[r.record]
        rows.setdefault(name, {})[r.server.label] = Verdict.LABELS[r.verdict]
        if r.message and r.verdict not in (Verdict.TIMEOUT, Verdict.REFUSED, Verdict.ERROR):
            notes.setdefault(name, r.message)
    width = max([len(n) for n in rows] + [6])
    widths = {label: max(len(label), 22) for label in labels}

    def line(first: str, cells: dict) -> str:
        return "  ".join([first.ljust(width)] + [cells.get(x, "").ljust(widths[x]) for x in labels])

    lines = [line("record", {x: x for x in labels})]
    lines += [line(name, cells) for name, cells in rows.items()]
    lines += [f"{name}: {note}" for name, note in notes.items()]
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
                    "match": r.record.match,
                    "present": r.record.present,
                    "optional": r.record.optional,
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
