from .fixtures import dns_settings, domain, m365_project, old_dns, tenant_dns  # noqa: F401
