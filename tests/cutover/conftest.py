from tests.dnscheck.fixtures import dns_settings, domain, m365_project, old_dns  # noqa: F401
