"""Fixtures for tests that store checks: a Microsoft 365 project whose domain is served by NSD,
and its tenant on the Graph test server."""

import pytest

from tests.servers.graph_server import ALL_ROLES, TENANT_ID

from .zones import DOMAIN, OLD, zone

SECRET = "dns-app-secret"


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


def point_at_graph(tenant, server, client_id="dns-app"):
    """The tenant signs in to the Graph test server as ``client_id``, as a consultant sets it."""
    tenant.kind = "exchange_online"
    tenant.endpoint = server.graph_url
    tenant.auth_method = "oauth2"
    tenant.secret = SECRET
    tenant.oauth_tenant_id = TENANT_ID
    tenant.oauth_client_id = client_id
    tenant.oauth_authority = server.authority
    tenant.options = {"ca_file": str(server.cert_file)}
    tenant.save()
    return tenant


@pytest.fixture
def tenant_dns(graph_server, domain):
    """The project's target tenant lists contoso.test's records (Graph's shapes); its app may
    read them (Domain.Read.All)."""
    graph_server.register_app("dns-app", SECRET, roles=ALL_ROLES | {"Domain.Read.All"})
    point_at_graph(domain.project.target, graph_server)
    graph_server.add_domain(DOMAIN, mx="contoso-test.o-v1.mx.microsoft")
    return graph_server
