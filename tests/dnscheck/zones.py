"""The zones the DNS tests serve: contoso.test at the old provider and at Microsoft 365."""

DOMAIN = "contoso.test"

NEW = [
    "@ 300 IN MX 0 contoso-test.mail.protection.outlook.com.",
    '@ 300 IN TXT "MS=ms12345678"',
    '@ 300 IN TXT "v=spf1 include:spf.protection.outlook.com -all"',
    "autodiscover 300 IN CNAME autodiscover.outlook.com.",
    "selector1._domainkey 300 IN CNAME selector1-contoso-test._domainkey.contoso.onmicrosoft.com.",
    "selector2._domainkey 300 IN CNAME selector2-contoso-test._domainkey.contoso.onmicrosoft.com.",
    '_dmarc 300 IN TXT "v=DMARC1; p=quarantine; rua=mailto:dmarc@contoso.test"',
]

# Microsoft 365 for a domain added since July 2026: its MX under mx.microsoft (MC1048624).
MX_MICROSOFT = "contoso-test.o-v1.mx.microsoft."
NEW_MX_MICROSOFT = [f"@ 300 IN MX 0 {MX_MICROSOFT}" if " MX " in r else r for r in NEW]

# The old provider's records, as BPOS had them (seed: MX, a verification CNAME, autodiscover).
OLD = [
    "@ 3600 IN MX 10 mail.global.frontbridge.com.",
    '@ 3600 IN TXT "v=spf1 ip4:192.0.2.1 -all"',
    "autodiscover 3600 IN CNAME autodiscover.outlook.com.old.",
    "ms00112233 3600 IN CNAME ps.microsoftonline.com.",
]

# What must be gone after cutover (the consultant records these as "old").
GONE = [
    ("@", "MX", "mail.global.frontbridge.com."),
    ("autodiscover", "CNAME", "autodiscover.outlook.com.old."),
    ("ms00112233", "CNAME", "ps.microsoftonline.com."),
]

# Served next to the domain so SPF includes resolve on loopback.
OUTLOOK = ["@ IN NS ns1.contoso.test.", 'spf IN TXT "v=spf1 ip4:40.92.0.0/15 -all"']


def zone(records):
    return ["@ IN NS ns1", "ns1 IN A 127.0.0.1", "www IN A 192.0.2.10", *records]


def new_zones(records=NEW):
    return {DOMAIN: zone(records), "protection.outlook.com": OUTLOOK}


def serve_target_records(dns, records=NEW):
    """Cutover on a running NSD server: the domain now carries ``records`` (the target's by
    default) and Microsoft's SPF include resolves; reloaded at once."""
    dns.set_zone(DOMAIN, zone(records))
    dns.set_zone("protection.outlook.com", new_zones()["protection.outlook.com"])
    dns.reload()


# An IMAP host as the target: mail, SPF and what mail programs look up (RFC 6186, autoconfig).
IMAP_HOST = "imap.newhost.test"
IMAP = [
    f"@ 300 IN MX 10 {IMAP_HOST}.",
    '@ 300 IN TXT "v=spf1 a:imap.newhost.test -all"',
    f"_imaps._tcp 300 IN SRV 0 1 993 {IMAP_HOST}.",
    f"_submission._tcp 300 IN SRV 0 1 587 {IMAP_HOST}.",
    f"autoconfig 300 IN CNAME {IMAP_HOST}.",
    '_dmarc 300 IN TXT "v=DMARC1; p=none"',
]
