"""What DNS should say: expected records, how found values compare, and the defaults per target.

Plain Python (no Django): the management command, the stored checks and the tests share it.
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.exception
import dns.name
import dns.rdatatype

RECORD_TYPES = ("MX", "TXT", "CNAME", "SRV", "A", "AAAA", "NS")
MATCHES = ("exact", "prefix", "contains")


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
    """The comparable form of a value as a person writes it (``10 mx.example.org`` for MX)."""
    value = value.strip()
    if rtype in ("MX", "CNAME", "NS", "PTR"):
        return _absolute(value.split()[-1]) if value else ""
    if rtype == "SRV":
        # Priority and weight differ between providers' instructions; port and target matter.
        parts = value.split()
        return f"{parts[-2]} {_absolute(parts[-1])}" if len(parts) >= 2 else value.lower()
    if rtype == "TXT":
        return value
    return value.lower()


def rdata_value(rtype: str, rdata) -> str:
    """The comparable form of a value found in DNS."""
    if rtype == "TXT":
        return b"".join(rdata.strings).decode("utf-8", "replace")
    if rtype == "MX":
        return _absolute(rdata.exchange.to_text())
    if rtype == "SRV":
        return f"{rdata.port} {_absolute(rdata.target.to_text())}"
    if rtype in ("CNAME", "NS", "PTR"):
        return _absolute(rdata.target.to_text())
    return rdata.to_text().lower()


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
    key: object = None  # the stored record's id, for the caller

    def fqdn(self, domain: str) -> str:
        return domain if self.name in ("@", "") else f"{self.name}.{domain}"

    def matches(self, found: str) -> bool:
        want = normalize_value(self.rtype, self.value)
        if self.rtype != "TXT":
            found = found.lower()
        if self.match == "prefix":
            return found.startswith(want)
        if self.match == "contains":
            return want in found
        return found == want

    def describe(self, domain: str) -> str:
        return f"{self.rtype} {self.fqdn(domain)}"


def microsoft365(domain: str, sip: bool = False) -> list[Expected]:
    """Microsoft 365's records for a domain (what its admin centre asks for)."""
    dashes = domain.replace(".", "-")
    records = [
        Expected("@", "MX", f"{dashes}.mail.protection.outlook.com.", group="mx", changes=True),
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
        records += [
            Expected("_sip._tls", "SRV", "100 1 443 sipdir.online.lync.com.", group="sip"),
            Expected(
                "_sipfederationtls._tcp", "SRV", "100 1 5061 sipfed.online.lync.com.", group="sip"
            ),
        ]
    return records


TARGETS = {"m365": microsoft365, "none": lambda domain, sip=False: []}


def valid_rtype(rtype: str) -> bool:
    try:
        dns.rdatatype.from_text(rtype)
    except dns.rdatatype.UnknownRdatatype:
        return False
    return rtype in RECORD_TYPES
