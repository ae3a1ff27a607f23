"""What DNS should say: expected records, how found values compare, and the records each route
of a migration needs (Microsoft 365, Google Workspace to Microsoft 365, an IMAP host, Exchange on
premises), or the tenant lists.

Plain Python (no Django): the management command, the stored checks and the tests share it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.rdatatype

RECORD_TYPES = ("MX", "TXT", "CNAME", "SRV", "A", "AAAA", "NS")
# exact, prefix and contains compare text. "one_of" lists the forms a value may take, " | "
# between them, "*" standing for one label someone else chooses (Microsoft's MX hosts); "any"
# only asks that the name has a value of the type (for A, a CNAME to a host counts).
MATCHES = ("exact", "prefix", "contains", "one_of", "any")
FORMS = " | "
ROUTES = ("m365", "google-m365", "imap", "exchange", "none")

# One line per group, for people who do not know DNS: why the records matter on cutover day.
WHY = {
    "mx": "Tells other mail servers where to deliver mail for the domain: until it names the "
    "new system, new mail keeps arriving in the old one.",
    "verification": "Proves to the new system that the domain is yours; it accepts no mail for "
    "the domain before that.",
    "autodiscover": "Lets Outlook and phones find the new mailbox by themselves from the "
    "user's address.",
    "spf": "Tells receiving servers which systems may send as the domain: without the new "
    "system in it, mail users send lands in spam or is refused.",
    "dkim": "Signs outgoing mail so that receivers can tell it really comes from the domain.",
    "dmarc": "Tells receivers what to do with mail that fails SPF and DKIM, and where to report "
    "it.",
    "clients": "Mail programs (Thunderbird, Apple Mail, phones) read these to find the new "
    "server when a user adds the account again, instead of asking for server names.",
    "sip": "Only for Skype for Business / Lync, which Microsoft retired in 2021: lets those "
    "chat programs find their server.",
    "services": "Other services of the tenant (device enrolment, for instance): not needed for "
    "mail, but the tenant lists them.",
    "old": "The old provider's records: while they are still served, some mail and some "
    "programs keep going to the old system.",
    "ttl": "How long other servers keep old answers: lowered a day ahead, the switch takes "
    "minutes instead of a day.",
    "custom": "Records added for this migration by hand.",
}


class InvalidDomain(ValueError):
    """Not a valid DNS name: the message says why, for people to read."""


def normalize_domain(name: str) -> str:
    """``Example.ORG.`` -> ``example.org``; InvalidDomain for anything that is not a host name."""
    text = name.strip().rstrip(".").lower()
    if not text or " " in text or "." not in text:
        raise InvalidDomain(f"{name!r} is not a domain name (expected something like example.org)")
    try:
        parsed = dns.name.from_text(text)
    except dns.exception.DNSException as exc:
        raise InvalidDomain(f"{name!r} is not a valid domain name: {exc}") from None
    for label in parsed.labels[:-1]:
        part = label.decode("ascii", "replace")
        if (
            part.startswith("-")
            or part.endswith("-")
            or not all(c.isalnum() or c in "-_" for c in part)
        ):
            raise InvalidDomain(f"{name!r} is not a valid domain name: bad label {part!r}")
    return text


def _absolute(host: str) -> str:
    host = host.strip().lower()
    return host if host.endswith(".") else host + "."


def normalize_value(rtype: str, value: str) -> str:
    """The comparable form of a value as a person writes it (``10 mx.example.org`` for MX).
    An MX preference and an SRV priority, weight and port are kept when given: they are then
    checked too; a value without them (``mx.example.org``) takes whatever numbers DNS has."""
    value = value.strip()
    if rtype in ("MX", "SRV"):
        *numbers, host = value.split() or [""]
        return " ".join([*numbers, _absolute(host)]) if host else ""
    if rtype in ("CNAME", "NS", "PTR"):
        return _absolute(value.split()[-1]) if value else ""
    if rtype == "TXT":
        return value
    return value.lower()


def normalize_expected(rtype: str, value: str, match: str) -> str:
    """The stored form of an expected value: each of several forms normalized, none for "any"."""
    if match == "any":
        return ""
    if match == "one_of":
        return FORMS.join(normalize_value(rtype, form) for form in value.split("|") if form.strip())
    return normalize_value(rtype, value)


def value_problem(rtype: str, value: str) -> str:
    """Why a person's value cannot be an expected record of this type ("" when it can)."""
    fields = value.split()
    if rtype == "MX" and not (len(fields) == 1 or (len(fields) == 2 and fields[0].isdigit())):
        return "An MX value is a host, or a preference and a host (10 mx.example.org)."
    if rtype == "SRV" and not (len(fields) in (2, 4) and all(f.isdigit() for f in fields[:-1])):
        return (
            "An SRV value is a port and a target (993 imap.example.org), or priority, weight, "
            "port and target (0 1 993 imap.example.org)."
        )
    return ""


def rdata_value(rtype: str, rdata) -> str:
    """The comparable form of a value found in DNS."""
    if rtype == "TXT":
        return b"".join(rdata.strings).decode("utf-8", "replace")
    if rtype == "MX":
        return f"{rdata.preference} {_absolute(rdata.exchange.to_text())}"
    if rtype == "SRV":
        target = _absolute(rdata.target.to_text())
        return f"{rdata.priority} {rdata.weight} {rdata.port} {target}"
    if rtype in ("CNAME", "NS", "PTR"):
        return _absolute(rdata.target.to_text())
    return rdata.to_text().lower()


def old_value(rtype: str, found: str) -> str:
    """What of a value served before cutover must be gone after it: an old MX host goes,
    whatever preference it is given."""
    return found.split()[-1] if rtype == "MX" else found


def _host_matches(pattern: str, host: str) -> bool:
    """``*`` in a pattern stands for exactly one label."""
    want, found = pattern.split("."), host.split(".")
    return len(want) == len(found) and all(w in ("*", f) for w, f in zip(want, found, strict=True))


def _fields_match(want: str, found: str) -> bool:
    """MX and SRV: the fields the expected value gives, counted from the host backwards."""
    want_fields, found_fields = want.split(), found.split()
    if not want_fields or len(want_fields) > len(found_fields):
        return False
    tail = found_fields[len(found_fields) - len(want_fields) :]
    return want_fields[:-1] == tail[:-1] and _host_matches(want_fields[-1], tail[-1])


@dataclass(frozen=True)
class Expected:
    """One record a domain must publish (``present``) or must no longer publish (the old one)."""

    name: str  # relative to the domain; "@" is the domain itself
    rtype: str
    value: str
    match: str = "exact"
    present: bool = True
    group: str = "custom"
    # Will change at cutover: its TTL should be low beforehand.
    changes: bool = False
    # Shown and checked, but its absence fails nothing (the tenant marks some records so).
    optional: bool = False
    key: object = None  # the stored record's id, for the caller

    def fqdn(self, domain: str) -> str:
        return domain if self.name in ("@", "") else f"{self.name}.{domain}"

    def forms(self) -> list[str]:
        if self.match == "one_of":
            return [normalize_value(self.rtype, f) for f in self.value.split("|") if f.strip()]
        return [normalize_value(self.rtype, self.value)]

    def matches(self, found: str) -> bool:
        if self.match == "any":
            return True
        if self.rtype != "TXT":
            found = found.lower()
        return any(self._matches(want, found) for want in self.forms())

    def _matches(self, want: str, found: str) -> bool:
        if self.match == "prefix":
            return found.startswith(want)
        if self.match == "contains":
            return want in found
        if self.rtype in ("MX", "SRV"):
            return _fields_match(want, found)
        if self.match == "one_of":
            return _host_matches(want, found)
        return found == want

    def shown(self) -> str:
        """The expected value as people read it."""
        if self.match == "any":
            return "any value" + (
                " (an address, or a CNAME to a host)" if self.rtype == "A" else ""
            )
        return " or ".join(self.forms())

    def explain(self, verdict: str, values: list[str]) -> str:
        """What a person needs besides the verdict: the value expected when another is served,
        and which form was found when a record may take several (only the tenant knows which
        one it gave the domain)."""
        if not self.present:
            return ""
        if verdict == "ok" and self.match == "one_of":
            found = next(v for v in values if self.matches(v))
            form = next(f for f in self.forms() if self._matches(f, found.lower()))
            return (
                f"{found} has the form {form}, one of {len(self.forms())} the provider uses: "
                "the tenant must confirm it is this domain's value (its admin centre lists the "
                "domain's records; or fetch them from the tenant)"
            )
        if verdict in ("wrong", "missing", "nxdomain", "old"):
            return self._near_miss(values) or f"expected {self.shown()}"
        return ""

    def _near_miss(self, values: list[str]) -> str:
        """The right host with other numbers (an MX preference, an SRV port): say which."""
        if self.rtype not in ("MX", "SRV") or self.match != "exact":
            return ""
        want = self.forms()[0].split()
        for value in values:
            found = value.lower().split()
            if len(want) > 1 and found and _host_matches(want[-1], found[-1]):
                what = "preference" if self.rtype == "MX" else "priority, weight and port"
                return f"{value} has another {what}: expected {self.forms()[0]}"
        return ""

    def describe(self, domain: str) -> str:
        return f"{self.rtype} {self.fqdn(domain)}"


def microsoft365(domain: str, sip: bool = False) -> list[Expected]:
    """Microsoft 365's records for a domain, without the tenant: the forms its admin centre
    gives (the tenant's own list replaces them once fetched)."""
    dashes = domain.replace(".", "-")
    records = [
        # Since July 2026 new domains get an MX under mx.microsoft (message center MC1048624,
        # DNSSEC-signed: <dashes>.<zone Microsoft picks>.mx.microsoft); older domains keep
        # <dashes>.mail.protection.outlook.com. Only the tenant knows which one this domain has.
        Expected(
            "@",
            "MX",
            FORMS.join([f"{dashes}.mail.protection.outlook.com.", f"{dashes}.*.mx.microsoft."]),
            match="one_of",
            group="mx",
            changes=True,
        ),
        # The tenant-specific value (MS=ms12345678) comes from the admin centre; any MS= proves
        # someone added it, a consultant can pin the exact value.
        Expected("@", "TXT", "MS=ms", match="prefix", group="verification"),
        Expected(
            "autodiscover", "CNAME", "autodiscover.outlook.com.", group="autodiscover", changes=True
        ),
        Expected(
            "@",
            "TXT",
            "include:spf.protection.outlook.com",
            match="contains",
            group="spf",
            changes=True,
        ),
        # Targets end in the tenant's initial domain (…onmicrosoft.com), unknown until set up.
        Expected(
            "selector1._domainkey",
            "CNAME",
            f"selector1-{dashes}._domainkey.",
            match="prefix",
            group="dkim",
        ),
        Expected(
            "selector2._domainkey",
            "CNAME",
            f"selector2-{dashes}._domainkey.",
            match="prefix",
            group="dkim",
        ),
        Expected("_dmarc", "TXT", "v=DMARC1", match="prefix", group="dmarc"),
    ]
    if sip:
        # Port and target only: the seed's DNS host had priority 1, weight 100 where
        # Microsoft's instructions say 100 and 1, and both work.
        records += [
            Expected("_sip._tls", "SRV", "443 sipdir.online.lync.com.", group="sip"),
            Expected("_sipfederationtls._tcp", "SRV", "5061 sipfed.online.lync.com.", group="sip"),
        ]
    return records


# Google Workspace's MX hosts (https://support.google.com/a/answer/174125): the single
# smtp.google.com of domains set up since April 2023, or the five ASPMX hosts before it.
GOOGLE_MX = (
    "smtp.google.com.",
    "aspmx.l.google.com.",
    "alt1.aspmx.l.google.com.",
    "alt2.aspmx.l.google.com.",
    "alt3.aspmx.l.google.com.",
    "alt4.aspmx.l.google.com.",
)
# Gmail's senders in SPF (https://support.google.com/a/answer/10684623) and Google's domain
# verification TXT record (https://support.google.com/a/answer/183895).
GOOGLE_SPF = "include:_spf.google.com"
GOOGLE_VERIFICATION = "google-site-verification="


def leaving_google() -> list[Expected]:
    """What must be gone when a domain moves from Google Workspace to Microsoft 365: Google's
    MX hosts and its SPF include (with the new ones, in the same groups, so the step that sets
    MX and SPF waits for both), and Google's site verification, one of the old provider's
    records (group "old"), which the checklist removes last, once nothing more is read from
    Google."""
    return [
        Expected("@", "MX", FORMS.join(GOOGLE_MX), match="one_of", present=False, group="mx"),
        Expected("@", "TXT", GOOGLE_SPF, match="contains", present=False, group="spf"),
        Expected("@", "TXT", GOOGLE_VERIFICATION, match="prefix", present=False, group="old"),
    ]


def _mx_to(host: str) -> Expected:
    """The MX naming the new host; any MX when the host is not known (autodiscovered EWS)."""
    if host:
        return Expected("@", "MX", _absolute(host), group="mx", changes=True)
    return Expected("@", "MX", "", match="any", group="mx", changes=True)


def imap_host(host: str) -> list[Expected]:
    """An IMAP host as the target: mail to it, an SPF record (what it lists is the provider's
    to say), and the records mail programs use to find it when a user adds the account again:
    RFC 6186 SRV records (section 3.2 IMAP over TLS, section 3.1 submission) and Thunderbird's
    autoconfig host (https://wiki.mozilla.org/Thunderbird:Autoconfiguration)."""
    target = _absolute(host) if host else ""
    records = [
        _mx_to(host),
        Expected("@", "TXT", "v=spf1", match="prefix", group="spf", changes=True),
        Expected("autoconfig", "A", "", match="any", group="clients"),
    ]
    if target:
        records += [
            Expected("_imaps._tcp", "SRV", f"993 {target}", group="clients"),
            Expected("_submission._tcp", "SRV", f"587 {target}", group="clients"),
        ]
    return records


def exchange_onprem(host: str) -> list[Expected]:
    """Exchange on premises as the target: mail to its host, and autodiscover (an address or a
    CNAME, as on-premises set-ups differ)."""
    return [
        _mx_to(host),
        Expected("autodiscover", "A", "", match="any", group="autodiscover", changes=True),
    ]


def route_records(route: str, domain: str, host: str = "", sip: bool = False) -> list[Expected]:
    """The records a route expects for a domain; ``host`` is the target's server (IMAP host,
    EWS host), ``sip`` Microsoft 365's optional Lync/Skype records."""
    if route == "m365":
        return microsoft365(domain, sip=sip)
    if route == "google-m365":
        return microsoft365(domain, sip=sip) + leaving_google()
    if route == "imap":
        return imap_host(host)
    if route == "exchange":
        return exchange_onprem(host)
    return []


# Microsoft's name for Skype for Business Online (retired July 2021) in supportedService.
SKYPE_SERVICE = "OfficeCommunicationsOnline"
CHANGES_AT_CUTOVER = {"mx", "spf", "autodiscover"}


def relative_name(label: str, domain: str) -> str | None:
    """Graph's labels are full names: "@" for the domain, the part before it otherwise, None
    for a name outside the domain."""
    label = label.strip().rstrip(".").lower()
    if label == domain:
        return "@"
    return label.removesuffix(f".{domain}") if label.endswith(f".{domain}") else None


def _tenant_group(record, name: str) -> str:
    if record.service == SKYPE_SERVICE:
        return "sip"
    if record.purpose == "verification":
        return "verification"
    if record.record_type == "MX":
        return "mx"
    if record.record_type == "TXT" and record.value.lower().startswith("v=spf1"):
        return "spf"
    if name == "autodiscover":
        return "autodiscover"
    return "services"


def _tenant_spf(text: str) -> list[str]:
    """What the tenant's SPF adds: its include terms (the domain's SPF has other senders too,
    so the whole text cannot be expected)."""
    return re.findall(r"include:\s*(\S+)", text, re.IGNORECASE)


def from_tenant(domain: str, records, sip: bool = False) -> list[Expected]:
    """The tenant's records (``graph_domains.DomainDnsRecord``) as expected records: exact,
    but the SPF, which must include what the tenant's does. Skype's are left out unless
    ``sip``; of the verification records only the TXT, as the MX alternative would stand
    next to the real MX."""
    expected = []
    for record in records:
        name = relative_name(record.label, domain)
        if name is None or (record.service == SKYPE_SERVICE and not sip):
            continue
        if record.purpose == "verification" and record.record_type != "TXT":
            continue
        group = _tenant_group(record, name)
        common = {
            "group": group,
            "changes": group in CHANGES_AT_CUTOVER,
            "optional": record.optional,
        }
        if group == "spf":
            includes = _tenant_spf(record.value)
            expected += [
                Expected(name, "TXT", f"include:{term}", match="contains", **common)
                for term in includes
            ] or [Expected(name, "TXT", "v=spf1", match="prefix", **common)]
            continue
        value = (
            record.value
            if record.record_type == "TXT"
            else normalize_value(record.record_type, record.value)
        )
        expected.append(Expected(name, record.record_type, value, **common))
    return expected


def valid_rtype(rtype: str) -> bool:
    try:
        dns.rdatatype.from_text(rtype)
    except dns.rdatatype.UnknownRdatatype:
        return False
    return rtype in RECORD_TYPES
