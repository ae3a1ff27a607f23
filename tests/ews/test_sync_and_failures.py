"""Delta sync, throttling, refused items and refused logins, as the server says them on the wire."""

from datetime import UTC, datetime

import pytest

from mailboxes.connectors.base import AuthError, ConnectorError, Endpoint, Item, TransientError
from mailboxes.connectors.ews import EWS_FTS, EwsConnector
from tests.corpus import corpus_mime
from tests.ews.conftest import ALICE, endpoint
from tests.servers.ews_server import start_ews_server


def inbox_of(connector):
    return next(f for f in connector.folders() if f.role == "inbox")


def test_delta_returns_only_new_items(source, source_connector):
    inbox = inbox_of(source_connector)
    first = source_connector.changes(inbox, {})
    new = [
        source.state.add_item(source.state.folder(ALICE, "Inbox"), m) for m in corpus_mime(9)[7:]
    ]

    delta = source_connector.changes(inbox, first.state)
    quiet = source_connector.changes(inbox, delta.state)

    assert len(first.items) == 6 and not first.reset
    assert [r.source_id for r in delta.items] == [i.id for i in new]
    assert quiet.items == [] and not quiet.reset


def test_lost_sync_state_lists_everything_with_reset(source, source_connector):
    inbox = inbox_of(source_connector)
    first = source_connector.changes(inbox, {})
    source.state.invalidate_sync_states()

    again = source_connector.changes(inbox, first.state)

    assert again.reset
    assert {r.source_id for r in again.items} == {r.source_id for r in first.items}
    assert source_connector.changes(inbox, again.state).items == []


def test_prestage_lists_old_items_and_keeps_the_watermark(source, source_connector):
    inbox = inbox_of(source_connector)
    fresh = source.state.add_item(
        source.state.folder(ALICE, "Inbox"), b"Subject: today\r\n\r\nhi\r\n"
    )

    prestage = source_connector.changes(inbox, {}, before=datetime(2021, 1, 1, tzinfo=UTC))
    delta = source_connector.changes(inbox, prestage.state)

    assert len(prestage.items) == 6 and fresh.id not in {r.source_id for r in prestage.items}
    assert fresh.id in {r.source_id for r in delta.items}


def test_short_server_busy_back_off_is_waited_out(source, source_connector):
    inbox = inbox_of(source_connector)
    source.state.inject("SyncFolderItems", "busy", back_off_ms=300)

    started = datetime.now(UTC)
    listed = source_connector.changes(inbox, {})

    assert len(listed.items) == 6
    assert source.requests["SyncFolderItems"] == 2
    assert (datetime.now(UTC) - started).total_seconds() >= 0.3


def test_long_server_busy_back_off_is_handed_to_the_task(source):
    connector = EwsConnector(endpoint(source, ALICE, options={"max_wait": 5}), ALICE)
    inbox = inbox_of(connector)
    source.state.inject("SyncFolderItems", "busy", back_off_ms=120_000)

    with pytest.raises(TransientError) as caught:
        connector.changes(inbox, {})

    assert caught.value.retry_after == 120
    assert source.requests["SyncFolderItems"] == 1


def test_http_503_is_transient(source):
    connector = EwsConnector(endpoint(source, ALICE, options={"max_wait": 1}), ALICE)
    source.state.inject("*", "http503", retry_after=30)

    with pytest.raises(TransientError) as caught:
        connector.folders()

    assert caught.value.retry_after == 30


@pytest.mark.parametrize("code", ["ErrorItemCorrupt", "ErrorMessageSizeExceeded"])
@pytest.mark.parametrize("format", [EWS_FTS, "rfc822"])
def test_refused_item_is_reported_and_the_rest_stored(
    source_connector, target, target_connector, code, format
):
    inbox = inbox_of(source_connector)
    ids = [r.source_id for r in source_connector.changes(inbox, {}).items]
    items = source_connector.fetch(inbox, ids, format=format)
    poisoned = corpus_mime(6)[2]
    target.state.reject_items_containing(poisoned, code)

    results = target_connector.store(
        target_connector.ensure_folder(("Inbox",), "mail", "inbox"), items
    )

    refused = [r for r in results if r.error]
    assert [r.source_id for r in refused] == [ids[2]]
    assert refused[0].error_code == code and refused[0].target_id is None
    assert all(r.target_id for r in results if r not in refused)
    assert len(target.state.items) == 5


def test_unreadable_source_item_comes_back_as_an_error_item(source, source_connector):
    inbox = inbox_of(source_connector)
    ids = [r.source_id for r in source_connector.changes(inbox, {}).items]
    source.state.corrupt_ids.add(ids[0])

    items = source_connector.fetch(inbox, ids, format=EWS_FTS)

    assert sorted(i.source_id for i in items) == sorted(ids)
    (unreadable,) = [i for i in items if i.error]
    assert (unreadable.source_id, unreadable.data) == (ids[0], b"")
    assert unreadable.error_code == "ErrorItemCorrupt"
    assert all(i.data for i in items if not i.error)


def test_wrong_password_is_an_auth_error_without_retries(source):
    connector = EwsConnector(endpoint(source, ALICE, password="wrong"), ALICE)

    with pytest.raises(AuthError, match="login refused"):
        connector.check()

    assert source.requests["(refused login)"] == 1  # a 401 is final, never read as throttling


def test_basic_login_refused_by_exchange_online_asks_for_oauth2(source):
    online = EwsConnector(endpoint(source, ALICE, "wrong", kind="exchange_online"), ALICE)

    with pytest.raises(AuthError, match="accepts only OAuth2"):
        online.check()


def test_ntlm_negotiates_and_refuses_a_wrong_password(source, tmp_path, monkeypatch):
    monkeypatch.setenv("NTLM_USER_FILE", str(source.state.ntlm_user_file(tmp_path)))
    good = EwsConnector(endpoint(source, ALICE, auth_method="ntlm"), ALICE)
    bad = EwsConnector(endpoint(source, ALICE, "wrong", auth_method="ntlm"), ALICE)

    assert inbox_of(good).count == 6
    with pytest.raises(AuthError, match="login refused"):
        bad.check()
    assert source.requests["(refused login)"] == 1


def test_missing_impersonation_rights_are_named(source):
    source.state.add_user("admin@src.test", "admin-pw")
    connector = EwsConnector(
        endpoint(source, "admin@src.test", "admin-pw", impersonation="admin@src.test"), ALICE
    )

    with pytest.raises(AuthError, match="may not impersonate alice@src.test"):
        connector.check()


def test_impersonation_with_rights_reads_the_mailbox(source):
    source.state.add_user("admin@src.test", "admin-pw", impersonation=True)
    connector = EwsConnector(
        endpoint(source, "admin@src.test", "admin-pw", impersonation="admin@src.test"), ALICE
    )

    assert "impersonating alice@src.test" in connector.check()
    assert inbox_of(connector).count == 6


def oauth_endpoint(server, client_id, secret):
    return endpoint(
        server,
        "",
        secret,
        auth_method="oauth2",
        oauth_client_id=client_id,
        oauth_tenant_id="tenant-1",
        oauth_authority=server.base_url,
        kind="exchange_online",
    )


def test_oauth2_client_credentials_impersonate_the_mailbox(source, monkeypatch):
    # oauthlib refuses plain-http token endpoints; the test server speaks http on loopback only.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    source.state.add_client("app-id", "app-secret", impersonation=True)

    good = EwsConnector(oauth_endpoint(source, "app-id", "app-secret"), ALICE)
    bad = EwsConnector(oauth_endpoint(source, "app-id", "wrong-secret"), ALICE)

    assert inbox_of(good).count == 6
    with pytest.raises(AuthError, match="client secret"):
        bad.check()


def test_oauth2_application_without_full_access_as_app_is_named(source, monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    source.state.add_client("plain-app", "app-secret")  # no full_access_as_app

    with pytest.raises(AuthError, match="plain-app may not impersonate alice@src.test"):
        EwsConnector(oauth_endpoint(source, "plain-app", "app-secret"), ALICE).check()


def test_exchange_online_blocking_ews_points_to_graph(source):
    source.state.ews_blocked = True
    connector = EwsConnector(endpoint(source, ALICE, kind="exchange_online"), ALICE)

    with pytest.raises(AuthError) as caught:
        connector.check()

    message = str(caught.value)
    assert "MC1227454" in message and "1 April 2027" in message
    assert "Graph connector" in message and "exchange_online" in message


def test_on_premises_403_names_the_ews_switches(source):
    source.state.ews_blocked = True

    with pytest.raises(AuthError, match="EWSEnabled") as caught:
        EwsConnector(endpoint(source, ALICE), ALICE).check()

    assert "Graph" not in str(caught.value)


def test_failed_autodiscover_asks_for_the_url():
    nowhere = Endpoint(kind="ews", host="", username="ann@mailferry.invalid", secret="secret")

    with pytest.raises(ConnectorError, match="Autodiscover found no EWS endpoint.*EWS URL"):
        EwsConnector(nowhere, "ann@mailferry.invalid").check()


def test_unknown_host_is_reported_as_dns():
    unknown = Endpoint(
        kind="ews",
        host="https://ews.mailferry.invalid/EWS/Exchange.asmx",
        username=ALICE,
        secret="secret",
    )

    with pytest.raises(ConnectorError, match="^DNS"):
        EwsConnector(unknown, ALICE).check()


def test_store_answers_in_input_order_and_refuses_unknown_formats(
    source_connector, target_connector
):
    inbox = inbox_of(source_connector)
    ids = [r.source_id for r in source_connector.changes(inbox, {}).items][:2]
    blob = source_connector.fetch(inbox, ids[:1], format=EWS_FTS)[0]
    mime = source_connector.fetch(inbox, ids[1:], format="rfc822")[0]
    stranger = Item("x", b"data", format="graph-fts")
    destination = target_connector.ensure_folder(("Inbox",), "mail", "inbox")

    results = target_connector.store(destination, [mime, stranger, blob])

    assert [r.source_id for r in results] == [ids[1], "x", ids[0]]
    assert results[0].target_id and results[2].target_id
    assert results[1].error_code == "unsupported_format" and results[1].target_id is None


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_untrusted_certificate_is_reported_as_tls(tmp_path):
    server = start_ews_server(tls_dir=tmp_path)
    server.state.add_user(ALICE)
    try:
        with pytest.raises(ConnectorError, match="^TLS"):
            EwsConnector(endpoint(server, ALICE), ALICE).check()
        trusting = EwsConnector(endpoint(server, ALICE, verify_tls=False), ALICE)
        assert "Connected to https://" in trusting.check()
    finally:
        server.stop()
