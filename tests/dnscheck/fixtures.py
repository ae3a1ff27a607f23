"""Fixtures for tests that store checks: a Microsoft 365 project whose domain is served by NSD."""

import pytest

from .zones import DOMAIN, OLD, zone


@pytest.fixture(autouse=True)
def dns_settings(settings):
    """No public resolvers from tests; a short timeout keeps silent servers cheap."""
    settings.DNSCHECK_RESOLVERS = []
    settings.DNSCHECK_TIMEOUT = 1.0
    return settings


@pytest.fixture
def m365_project(project):
    project.target.kind = "exchange_online"
    project.target.save()
    return project


@pytest.fixture
def old_dns(nsd_factory):
    """One server, still serving the old provider's records until a test reloads it."""
    return nsd_factory({DOMAIN: zone(OLD)})


@pytest.fixture
def domain(m365_project, old_dns):
    return m365_project.domains.create(name=DOMAIN, nameservers=old_dns.address)
