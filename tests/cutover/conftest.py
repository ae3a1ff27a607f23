from tests.dnscheck.fixtures import (  # noqa: F401
    dns_settings,
    domain,
    m365_project,
    old_dns,
    tenant_dns,
)
