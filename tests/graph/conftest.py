"""Connectors pointed at the loopback Graph server; msal and httpx talk to it over TLS."""

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from mailboxes.connectors.base import Endpoint
from mailboxes.connectors.graph import GraphConnector
from tests.corpus import corpus_mime
from tests.servers.ews_server import start_ews_server
from tests.servers.graph_server import ALL_ROLES, TENANT_ID

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


def register_certificate_app(server, client_id) -> tuple[str, str]:
    """An app that logs in with a certificate: (its private key in PEM, its SHA-1 thumbprint)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailferry")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    server.register_app(
        client_id, roles=ALL_ROLES, certificate_pem=cert.public_bytes(serialization.Encoding.PEM)
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return key_pem, cert.fingerprint(hashes.SHA1()).hex()


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


ALICE = "alice@onprem.test"
KINDS = [
    ("Inbox", "IPM.Note", b""),
    ("Calendar", "IPM.Appointment", b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nEND:VEVENT\r\n"),
    ("Contacts", "IPM.Contact", b"BEGIN:VCARD\r\nFN:Carol\r\nEND:VCARD\r\n"),
    ("Tasks", "IPM.Task", b"Task: file the report\r\n"),
    ("Notes", "IPM.StickyNote", b"Note: buy milk\r\n"),
]


@pytest.fixture
def ews_source():
    server = start_ews_server()
    server.add_user(ALICE)
    state = server.state
    received = datetime(2021, 5, 4, 10, 0, tzinfo=UTC)
    for n, mime in enumerate(corpus_mime(24)):
        state.add_item(
            state.folder(ALICE, "Inbox"),
            mime,
            is_read=n % 2 == 0,
            received=received + timedelta(hours=n),
        )
    for name, item_class, body in KINDS[1:]:
        state.add_item(state.folder(ALICE, name), body, item_class)
    yield server
    server.stop()
