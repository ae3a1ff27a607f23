"""Connectors pointed at the loopback Graph server; msal and httpx talk to it over TLS."""

import pytest

from mailboxes.connectors.base import Endpoint
from mailboxes.connectors.graph import GraphConnector
from tests.servers.graph_server import TENANT_ID

SECRET = "s3cret-value"


def graph_endpoint(server, client_id="mailferry-app", secret=SECRET, **options) -> Endpoint:
    return Endpoint(
        kind="exchange_online",
        host=server.graph_url,
        auth_method="oauth2",
        secret=secret,
        oauth_tenant_id=TENANT_ID,
        oauth_client_id=client_id,
        oauth_authority=server.authority,
        options={"ca_file": str(server.cert_file), **options},
    )


@pytest.fixture
def graph_app(graph_server):
    return graph_server.register_app("mailferry-app", SECRET)


@pytest.fixture
def connect(graph_server, graph_app):
    """connect(user, **options) -> an open GraphConnector, closed at teardown."""
    opened = []

    def _connect(user, **options):
        connector = GraphConnector(graph_endpoint(graph_server, **options), user)
        connector.open()
        opened.append(connector)
        return connector

    yield _connect
    for connector in opened:
        connector.close()
