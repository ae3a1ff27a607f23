"""The rules beyond "is the record there": one SPF record within its lookup limit, a DMARC
record that parses, and TTLs low enough before the records change.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

SPF_LOOKUP_LIMIT = 10  # RFC 7208 section 4.6.4
LOW_TTL = 300
# RFC 7208 section 4.6.4: these terms cost a DNS lookup each; include and redirect recurse.
SPF_LOOKUP_TERM = re.compile(r"^[+\-~?]?(include:|a$|a:|a/|mx$|mx:|mx/|ptr$|ptr:|exists:)", re.I)
DMARC_POLICIES = {"none", "quarantine", "reject"}


@dataclass(frozen=True)
class Finding:
    group: str  # spf, dmarc, ttl: the checklist step it belongs to
    level: str  # "error" fails the check; "warning" does not
    message: str

    def as_dict(self) -> dict:
        return {"group": self.group, "level": self.level, "message": self.message}


def is_spf(text: str) -> bool:
    return text.lower() == "v=spf1" or text.lower().startswith("v=spf1 ")


def spf_findings(domain: str, apex: dict, txt: Callable) -> list[Finding]:
    """``apex``: {server label: Answer for the domain's TXT}; ``txt(name)`` looks a name up."""
    findings, record = [], None
    for label, answer in apex.items():
        if answer.status not in ("answer", "nodata", "nxdomain"):
            continue
        spf = [v for v in answer.values if is_spf(v)]
        if len(spf) != 1:
            what = "no SPF record" if not spf else f"{len(spf)} SPF records"
            findings.append(
                Finding(
                    "spf",
                    "error",
                    f"{label} serves {what} for {domain}: "
                    "exactly one is allowed (RFC 7208 section 3.2)",
                )
            )
        elif record is None:
            record = spf[0]
    if record is None:
        return findings
    try:
        lookups = spf_lookups(record, txt)
    except SpfError as exc:
        return findings + [Finding("spf", "error", f"SPF of {domain}: {exc}")]
    if lookups > SPF_LOOKUP_LIMIT:
        findings.append(
            Finding(
                "spf",
                "error",
                f"SPF of {domain} needs {lookups} DNS lookups; "
                f"the limit is {SPF_LOOKUP_LIMIT} (RFC 7208 section 4.6.4)",
            )
        )
    return findings


class SpfError(Exception):
    pass


def spf_lookups(record: str, txt: Callable, seen: frozenset = frozenset()) -> int:
    count = 0
    for term in record.split()[1:]:
        target = None
        if SPF_LOOKUP_TERM.match(term):
            count += 1
            if term.lstrip("+-~?").lower().startswith("include:"):
                target = term.split(":", 1)[1]
        elif term.lower().startswith("redirect="):
            count += 1
            target = term.split("=", 1)[1]
        if target:
            count += _nested_lookups(target.lower().rstrip("."), txt, seen)
    return count


def _nested_lookups(name: str, txt: Callable, seen: frozenset) -> int:
    if name in seen:
        raise SpfError(f"{name} includes itself (a loop)")
    answer = txt(name)
    if answer.status not in ("answer", "nodata", "nxdomain"):
        raise SpfError(f"could not look up {name}: {answer.message}")
    spf = [v for v in answer.values if is_spf(v)]
    if len(spf) != 1:
        raise SpfError(f"{name} has {len(spf) or 'no'} SPF record(s); the include fails")
    return spf_lookups(spf[0], txt, seen | {name})


def dmarc_findings(domain: str, answers: dict) -> list[Finding]:
    """RFC 7489 section 6.3 syntax of the DMARC record each server serves."""
    messages = set()
    for label, answer in answers.items():
        if answer.status not in ("answer", "nodata", "nxdomain"):
            continue
        records = [v for v in answer.values if v.replace(" ", "").lower().startswith("v=dmarc1")]
        if len(records) != 1:
            what = "no DMARC record" if not records else f"{len(records)} DMARC records"
            messages.add(f"{label} serves {what} at _dmarc.{domain}: exactly one is needed")
            continue
        messages.update(f"DMARC of {domain}: {p}" for p in dmarc_problems(records[0]))
    return [Finding("dmarc", "error", m) for m in sorted(messages)]


def dmarc_problems(record: str) -> list[str]:
    tags, problems = [], []
    for part in record.split(";"):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        if not sep:
            problems.append(f"{part.strip()!r} is not a tag=value pair")
            continue
        tags.append((name.strip().lower(), value.strip()))
    names = [n for n, _ in tags]
    if names[:1] != ["v"] or tags[0][1] != "DMARC1":
        problems.append("it must start with v=DMARC1")
    problems += [
        f"tag {n}= appears twice" for n in sorted({n for n in names if names.count(n) > 1})
    ]
    values = dict(tags)
    if "p" not in values:
        problems.append("the policy p= is missing (p=none, quarantine or reject)")
    for name in ("p", "sp"):
        if name in values and values[name].lower() not in DMARC_POLICIES:
            problems.append(f"{name}={values[name]} is not none, quarantine or reject")
    for name in ("adkim", "aspf"):
        if name in values and values[name].lower() not in ("r", "s"):
            problems.append(f"{name}={values[name]} must be r or s")
    if "pct" in values and not (values["pct"].isdigit() and int(values["pct"]) <= 100):
        problems.append(f"pct={values['pct']} must be a number from 0 to 100")
    if "ri" in values and not values["ri"].isdigit():
        problems.append(f"ri={values['ri']} must be a number of seconds")
    for name in ("rua", "ruf"):
        for uri in filter(None, (u.strip() for u in values.get(name, "").split(","))):
            if not uri.lower().startswith("mailto:") or "@" not in uri:
                problems.append(f"{name} address {uri!r} must be a mailto: URI")
    return problems


def ttl_findings(domain: str, results: list, cutover_at: datetime | None) -> list[Finding]:
    """Records that will change but are still served with a high TTL by an authoritative server:
    resolvers may keep the old value that long after the change."""
    worst: dict[str, int] = {}
    for r in results:
        high = r.ttl is not None and r.ttl > LOW_TTL
        if high and r.record.changes and r.server.role == "authoritative" and r.verdict != "ok":
            key = r.record.describe(domain)
            worst[key] = max(worst.get(key, 0), r.ttl)
    return [
        Finding(
            "ttl",
            "warning",
            f"{what} is served with TTL {ttl} s: lower it to {LOW_TTL} s "
            f"or less at least {duration(ttl)} before cutover ({time_left(cutover_at)})",
        )
        for what, ttl in sorted(worst.items())
    ]


def time_left(cutover_at: datetime | None, now: datetime | None = None) -> str:
    if cutover_at is None:
        return "no cutover date planned yet"
    seconds = (cutover_at - (now or datetime.now(UTC))).total_seconds()
    if seconds <= 0:
        return "the planned cutover has passed"
    return f"cutover in {duration(seconds)}"


def duration(seconds: float) -> str:
    seconds = int(seconds)
    parts = []
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount} {unit}{'s' if unit == 'day' and amount > 1 else ''}")
    return ", ".join(parts[:2]) or f"{seconds} s"
