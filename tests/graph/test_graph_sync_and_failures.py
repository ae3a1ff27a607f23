"""Delta state, throttling, permissions and credentials of the Graph connector."""

import ssl
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from mailboxes.connectors.base import AuthError, Item, TransientError
from mailboxes.connectors.graph import GraphConnector, graph_base_url
from tests.graph.conftest import graph_endpoint, register_certificate_app
from tests.servers.graph_server import ALL_ROLES

# Each Graph request takes its turn in the mailbox budget, kept in the database here.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ann(graph_server):
    box = graph_server.add_user("ann@example.org")
    for n in range(7):
        box.add_item("inbox", "IPM.Note", f"message {n}".encode())
    return box


def inbox_of(connector):
    return next(f for f in connector.folders() if f.role == "inbox")


def test_delta_lists_only_new_items_and_pages_through(graph_server, ann, connect):
    connector = connect("ann@example.org", page_size=3)
    inbox = inbox_of(connector)
    first = connector.changes(inbox, {})
    assert len(first.items) == 7 and not first.reset
    assert graph_server.counts["items.delta"] == 3  # pages of 3, 3 and 1

    new = [ann.add_item("inbox", "IPM.Note", b"late arrival") for _ in range(2)]
    ann.delete_item(ann.folder("inbox"), first.items[0].source_id)
    second = connector.changes(inbox, first.state)

    assert [ref.source_id for ref in second.items] == [item.id for item in new]
    assert connector.changes(inbox, second.state).items == []


def test_lost_delta_state_falls_back_to_a_full_listing(graph_server, ann, connect):
    connector = connect("ann@example.org")
    inbox = inbox_of(connector)
    state = connector.changes(inbox, {}).state
    graph_server.expire_delta_tokens()

    again = connector.changes(inbox, state)

    assert again.reset
    assert len(again.items) == 7
    assert connector.changes(inbox, again.state).items == []


def test_prestage_keeps_younger_items_for_the_next_pass(ann, connect):
    connector = connect("ann@example.org")
    inbox = inbox_of(connector)
    cutoff = datetime.now(UTC) + timedelta(seconds=1)
    ann.add_item("inbox", "IPM.Note", b"young")
    young = list(ann.folder("inbox").items.values())[-1]
    young.created = (cutoff + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")

    prestage = connector.changes(inbox, {}, before=cutoff)
    delta = connector.changes(inbox, prestage.state)

    assert young.id not in {ref.source_id for ref in prestage.items}
    assert len(prestage.items) == 7
    assert [ref.source_id for ref in delta.items] == [young.id]


def test_short_throttling_waits_inline_and_succeeds(graph_server, ann, connect):
    connector = connect("ann@example.org")
    inbox = inbox_of(connector)
    ids = [ref.source_id for ref in connector.changes(inbox, {}).items]
    graph_server.throttle("exportItems", 2, retry_after=0.2)

    started = time.monotonic()
    items = connector.fetch(inbox, ids)

    assert len(items) == 7
    assert graph_server.counts["exportItems"] == 3  # two 429s, then the export
    assert time.monotonic() - started >= 0.4  # Retry-After honoured each time


def test_throttled_batch_requests_are_retried_alone(graph_server, connect):
    graph_server.add_user("bo@example.org")
    connector = connect("bo@example.org")
    inbox = inbox_of(connector)
    graph_server.throttle("importMime", 1, retry_after=0.1)
    items = [Item(f"1:{n}", f"Subject: {n}\r\n\r\nbody\r\n".encode()) for n in range(3)]
    results = connector.store(inbox, items)

    assert all(r.target_id for r in results)
    assert graph_server.counts["importMime"] == 4  # the throttled one once more
    assert len(graph_server.users["bo@example.org"].folder("inbox").items) == 3


def test_long_throttling_goes_back_to_the_engine_with_the_hint(graph_server, ann, connect):
    connector = connect("ann@example.org")
    inbox = inbox_of(connector)
    ids = [ref.source_id for ref in connector.changes(inbox, {}).items]
    graph_server.throttle("exportItems", 1, retry_after=120)

    with pytest.raises(TransientError) as raised:
        connector.fetch(inbox, ids)

    assert raised.value.retry_after == 120
    assert graph_server.counts["exportItems"] == 1


def test_check_names_each_missing_permission(graph_server, ann):
    roles = ALL_ROLES - {"MailboxItem.ImportExport.All", "MailboxItem.Read.All"}
    graph_server.register_app("half-consented", "pw", roles)
    endpoint = graph_endpoint(graph_server, client_id="half-consented", secret="pw")

    with (
        GraphConnector(endpoint, "ann@example.org") as connector,
        pytest.raises(AuthError) as raised,
    ):
        connector.check()

    message = str(raised.value)
    assert "MailboxItem.ImportExport.All" in message and "MailboxItem.Read.All" in message
    assert "MailboxFolder.Read.All" not in message  # granted through ReadWrite


def test_check_without_admin_consent_says_so(graph_server, ann):
    graph_server.register_app("unconsented", "pw", roles=())
    endpoint = graph_endpoint(graph_server, client_id="unconsented", secret="pw")

    with (
        GraphConnector(endpoint, "ann@example.org") as connector,
        pytest.raises(AuthError, match="no application permissions with admin consent"),
    ):
        connector.check()


def test_check_tells_a_source_only_app_what_a_target_needs(graph_server, ann):
    roles = {
        "User.Read.All",
        "MailboxFolder.Read.All",
        "MailboxItem.Read.All",
        "MailboxItem.ImportExport.All",
    }
    graph_server.register_app("source-only", "pw", roles)
    endpoint = graph_endpoint(graph_server, client_id="source-only", secret="pw")

    with GraphConnector(endpoint, "ann@example.org") as connector:
        message = connector.check()

    assert message.startswith("Connected: 10 folders in ann@example.org.")
    assert "MailboxFolder.ReadWrite.All" in message and "Mail-Advanced.ReadWrite.All" in message
    assert "Mail.Read (to export mail as MIME" in message


def test_check_before_any_mailbox_exists_tests_sign_in_and_permissions(graph_server, graph_app):
    with GraphConnector(graph_endpoint(graph_server), "") as connector:
        message = connector.check()

    assert message == "Signed in: the app holds the permissions every migration needs."
    assert graph_server.counts["exchangeSettings"] == 0


def test_a_403_from_graph_names_the_permission(graph_server, ann):
    graph_server.register_app("no-export", "pw", ALL_ROLES - {"MailboxItem.ImportExport.All"})
    endpoint = graph_endpoint(graph_server, client_id="no-export", secret="pw")

    with GraphConnector(endpoint, "ann@example.org") as connector:
        inbox = inbox_of(connector)
        ids = [ref.source_id for ref in connector.changes(inbox, {}).items]
        with pytest.raises(AuthError, match="needs the MailboxItem.ImportExport.All application"):
            connector.fetch(inbox, ids)


def test_wrong_secret_is_an_auth_error_with_entras_reason(graph_server, graph_app, ann):
    endpoint = graph_endpoint(graph_server, secret="wrong")

    with (
        GraphConnector(endpoint, "ann@example.org") as connector,
        pytest.raises(AuthError, match="AADSTS7000215"),
    ):
        connector.check()


def test_tokens_are_shared_per_tenant_and_client(graph_server, ann, connect):
    graph_server.add_user("bo@example.org")
    first, second = connect("ann@example.org"), connect("bo@example.org")
    first.check()
    second.check()

    # One token cache for the tenant's app: the second mailbox works with the first's token.
    assert first._token() == second._token()


def test_an_expired_token_is_renewed_and_the_copy_goes_on(graph_server, ann, connect):
    """Graph refuses a token (and an import session) past its end while the client still holds
    it as valid (its clock and Entra's differ, or a worker held it for an hour): the connector
    gets a new one and goes on."""
    source = connect("ann@example.org")
    target_box = graph_server.add_user("bo@example.org")
    target = connect("bo@example.org")
    inbox = inbox_of(source)
    destination = target.ensure_folder(inbox.path, inbox.kind, inbox.role)
    ids = [r.source_id for r in source.changes(inbox, {}).items]
    first = target.store(destination, source.fetch(inbox, ids[:3]))
    held = source._token()
    graph_server.expire_tokens()

    items = source.fetch(inbox, ids[3:])
    results = first + target.store(destination, items)

    assert len(items) == 4 and all(r.target_id and not r.error for r in results)
    assert len(target_box.folder("inbox").items) == 7
    assert graph_server.counts["createImportSession"] == 2  # the expired session was renewed
    assert source._token() != held
    context = ssl.create_default_context(cafile=graph_server.cert_file)
    refused = httpx.get(
        f"{graph_server.graph_url}/users/ann@example.org/settings/exchange",
        headers={"Authorization": f"Bearer {held}"},
        verify=context,
    )
    assert refused.status_code == 401
    assert refused.json()["error"]["message"] == (
        "Lifetime validation failed, the token is expired."
    )


def test_a_refused_token_is_replaced(graph_server, ann, connect):
    connector = connect("ann@example.org")
    inbox = inbox_of(connector)
    revoked = connector._token()
    graph_server.revoke_tokens()

    assert len(connector.changes(inbox, {}).items) == 7
    assert connector._token() != revoked


def test_certificate_credentials(graph_server, ann, tmp_path):
    key_pem, thumbprint = register_certificate_app(graph_server, "cert-app")
    endpoint = replace(
        graph_endpoint(
            graph_server, client_id="cert-app", secret="", certificate_thumbprint=thumbprint
        ),
        certificate_key=key_pem,
    )

    with GraphConnector(endpoint, "ann@example.org") as connector:
        assert connector.check().startswith("Connected: 10 folders")


def test_server_refuses_more_than_20_ids_per_export(graph_server, graph_app, ann, connect):
    connector = connect("ann@example.org")
    token = connector._token()
    url = f"{graph_server.graph_url}/admin/exchange/mailboxes/{ann.id}/exportItems"
    ids = [item.id for item in ann.folder("inbox").items.values()] * 3

    response = httpx.post(
        url,
        json={"itemIds": ids[:21]},
        headers={"Authorization": f"Bearer {token}"},
        verify=ssl.create_default_context(cafile=graph_server.cert_file),
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "ErrorInvalidArgument"


@pytest.mark.parametrize(
    ("typed", "used"),
    [
        ("", "https://graph.microsoft.com/beta"),
        ("graph.microsoft.us", "https://graph.microsoft.us/beta"),
        ("https://graph.microsoft.com/", "https://graph.microsoft.com/beta"),
        ("https://graph.microsoft.com/v1.0/", "https://graph.microsoft.com/v1.0"),
        ("https://127.0.0.1:8443/beta", "https://127.0.0.1:8443/beta"),
    ],
)
def test_the_graph_url_a_consultant_types_is_completed(typed, used):
    assert graph_base_url(typed) == used
