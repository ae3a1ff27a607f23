"""Google Workspace tenants pointed at the loopback Gmail API server: google-auth signs the
service account's JWT and httpx reads Gmail over TLS, both unpatched."""

import json

import pytest

from mailboxes.connectors.base import Endpoint
from mailboxes.connectors.gmail import READ_SCOPE
from tests.servers.gmail_server import GmailServer


@pytest.fixture
def gmail(tmp_path):
    """The server with a service account whose client id has domain-wide delegation for
    Gmail read access; ``gmail.key`` is its key JSON."""
    server = GmailServer(tmp_path / "gmail").start()
    server.key = server.add_service_account()
    server.delegate(server.key["client_id"], [READ_SCOPE])
    yield server
    server.stop()


def google_endpoint(server, key: dict, spool, **options) -> Endpoint:
    """A Google tenant as a consultant sets it: the key JSON as the secret; the API URL and
    CA file only because the server is local."""
    return Endpoint(
        kind="google",
        host=server.url,
        secret=json.dumps(key),
        options={"ca_file": str(server.cert_file), "spool_dir": str(spool), **options},
    )


@pytest.fixture
def google_tenant(gmail, tmp_path, settings):
    settings.COPY_RETRY_BASE_SECONDS = 0.01
    return google_endpoint(gmail, gmail.key, tmp_path / "spool")
