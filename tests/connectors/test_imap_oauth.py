"""IMAP OAuth2 logins (XOAUTH2, OAUTHBEARER) against a real Dovecot whose oauth2 passdb asks a
token introspection endpoint about every token, with tokens from the Graph test server's Entra
ID token endpoint through real msal (Microsoft client credentials). Each mailbox logs in as
itself; what the servers hold is read with plain imaplib and a password, never our connector."""

import json
import re
import time
from dataclasses import dataclass, field, replace

import pytest

from mailboxes.connectors.base import INBOX, MAIL, AuthError, ConnectorError, Endpoint
from mailboxes.connectors.imap import ImapConnector
from projects.models import Tenant
from projects.tasks import check_tenant
from tests.corpus import corpus_split
from tests.servers.dovecot import RawMessage
from tests.servers.gmail_server import GmailServer

DOMAIN = "contoso.test"
GMAIL_SCOPE = "https://mail.google.com/"
READONLY = "https://www.googleapis.com/auth/gmail.readonly"
CLIENT_ID = "imap-migration-app"
SECRET = "imap-app-secret"


@dataclass(frozen=True)
class OAuthUser:
    """A mailbox of the OAuth2 Dovecot: its address logs in with the app's token; the password
    only serves the test's own reading and loading."""

    server: object
    address: str
    password: str = field(repr=False)

    def holdings(self):
        return self.server.holdings(self.address, self.password)

    def load(self, mailbox, messages):
        return self.server.load(self.address, self.password, mailbox, messages)


@pytest.fixture
def microsoft(oauth2_dovecot, graph_server):
    """The Graph test server as Entra ID: an app with Exchange Online's IMAP.AccessAsApp
    permission, its tokens trusted by the OAuth2 Dovecot for mailboxes of DOMAIN."""
    server, introspection = oauth2_dovecot
    graph_server.register_app(CLIENT_ID, SECRET, roles={"IMAP.AccessAsApp"})
    introspection.trust_graph(graph_server, DOMAIN)
    yield graph_server
    introspection.forget_issuers()


@pytest.fixture
def oauth_users(oauth2_dovecot, request):
    """A factory of mailboxes on the OAuth2 Dovecot, named after the test."""
    server, _ = oauth2_dovecot
    stem = re.sub(r"[^a-z0-9]+", "", request.node.name.lower())[:16]

    def make(name: str, domain: str = DOMAIN) -> OAuthUser:
        address, password = server.add_user(f"{name}.{stem}{time.time_ns() % 10**8}@{domain}")
        return OAuthUser(server, address, password)

    return make


def oauth_endpoint(server, graph, secret=SECRET, **changes) -> Endpoint:
    options = {"ca_file": str(graph.cert_file), **changes.pop("options", {})}
    values = dict(
        auth_method="oauth2",
        oauth_client_id=CLIENT_ID,
        oauth_authority=graph.authority,
        verify_tls=True,  # the token endpoint's certificate, by the CA file
        options=options,
    )
    values.update(changes)
    return server.endpoint("", secret, **values)


def token_logins(server, address: str) -> list[str]:
    """The mechanism of each token login Dovecot logged for ``address`` (the test's own
    reading and loading log in with a password: PLAIN, left out)."""
    pattern = re.compile(rf"Login: user=<{re.escape(address)}>, method=([A-Z0-9-]+)")
    return [method for method in pattern.findall(server.log()) if method != "PLAIN"]


def wait_for(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def messages(start: int, count: int) -> list[RawMessage]:
    corpus = corpus_split()
    assert len(corpus) >= start + count
    flags = [frozenset(), frozenset({"\\Seen"}), frozenset({"\\Flagged", "\\Seen"})]
    return [
        RawMessage(data, flags[i % len(flags)])
        for i, (_, data) in enumerate(corpus[start:][:count])
    ]


def copy_folder(source, target, path=("INBOX",), into=("INBOX",)) -> None:
    folder = next(f for f in source.folders() if f.path == path)
    listed = source.changes(folder, {})
    items = source.fetch(folder, [ref.source_id for ref in listed.items])
    role = INBOX if into == ("INBOX",) else None
    results = target.store(target.ensure_folder(into, MAIL, role), items)
    assert [r.error for r in results] == [""] * len(items)


def bodies_and_flags(holdings, folder: str) -> list[tuple[bytes, str]]:
    # \Recent is the server's, set on the first session to see a message (RFC 3501 §2.3.2).
    return sorted(
        (data, " ".join(f for f in flags.split() if f != "\\Recent"))
        for data, flags in holdings.folders.get(folder, [])
    )


def expected(originals: list[RawMessage]) -> list[tuple[bytes, str]]:
    return sorted((m.data, " ".join(sorted(m.flags))) for m in originals)


@pytest.mark.slow
def test_three_mailboxes_copy_out_of_and_into_the_oauth2_server(
    oauth2_dovecot, microsoft, oauth_users, dovecot_a, dovecot_user
):
    server, _ = oauth2_dovecot
    users = [oauth_users(name) for name in ("ann", "bob", "cy")]
    own = {user.address: messages(8 * n, 8) for n, user in enumerate(users)}
    for user in users:
        user.load("INBOX", own[user.address])
    endpoint = oauth_endpoint(server, microsoft)

    # Out: each mailbox's INBOX, read with its own login, into a password account elsewhere.
    copies = {}
    for user in users:
        copy = copies[user.address] = dovecot_user(dovecot_a)
        source = ImapConnector(endpoint, user.address)
        with source, ImapConnector(copy.endpoint(), copy.name) as target:
            copy_folder(source, target)
    for user in users:
        held = bodies_and_flags(copies[user.address].holdings(), "INBOX")
        assert held == expected(own[user.address])

    # In: other mail from password accounts into each OAuth2 mailbox's "Imported".
    incoming = {}
    for n, user in enumerate(users):
        sender = dovecot_user(dovecot_a)
        incoming[user.address] = messages(24 + 5 * n, 5)
        sender.load("INBOX", incoming[user.address])
        source = ImapConnector(sender.endpoint(), sender.name)
        with source, ImapConnector(endpoint, user.address) as target:
            copy_folder(source, target, into=("Imported",))
    for user in users:
        holdings = user.holdings()
        assert bodies_and_flags(holdings, "Imported") == expected(incoming[user.address])
        assert bodies_and_flags(holdings, "INBOX") == expected(own[user.address])
        # Each mailbox logged in as itself, with the token (OAUTHBEARER is offered: preferred).
        assert token_logins(server, user.address) == ["OAUTHBEARER", "OAUTHBEARER"]


@pytest.mark.parametrize(
    "disable, mechanism",
    [
        ([], "OAUTHBEARER"),
        (["AUTH=OAUTHBEARER"], "XOAUTH2"),
        (["SASL-IR"], "OAUTHBEARER"),
        (["SASL-IR", "AUTH=OAUTHBEARER"], "XOAUTH2"),
    ],
)
def test_the_mechanism_follows_the_capabilities(
    oauth2_dovecot, microsoft, oauth_users, disable, mechanism
):
    server, _ = oauth2_dovecot
    users = [oauth_users(name) for name in ("ann", "bob", "cy")]
    for n, user in enumerate(users):
        user.load("INBOX", messages(3 * n, 3))
    endpoint = oauth_endpoint(server, microsoft, options={"disable": disable})
    for n, user in enumerate(users):
        with ImapConnector(endpoint, user.address) as connector:
            inbox = next(f for f in connector.folders() if f.path == ("INBOX",))
            listed = connector.changes(inbox, {})
            fetched = connector.fetch(inbox, [ref.source_id for ref in listed.items])
        assert [item.data for item in fetched] == [m.data for m in messages(3 * n, 3)]
        assert token_logins(server, user.address) == [mechanism]


@pytest.mark.parametrize("disable", [[], ["AUTH=OAUTHBEARER"]])
def test_a_mailbox_the_app_may_not_open_is_refused_in_the_servers_words(
    oauth2_dovecot, microsoft, oauth_users, disable
):
    server, _ = oauth2_dovecot
    stranger = oauth_users("dan", domain="fabrikam.test")
    endpoint = oauth_endpoint(server, microsoft, options={"disable": disable})
    with pytest.raises(AuthError) as raised:
        ImapConnector(endpoint, stranger.address).open()
    message = str(raised.value)
    assert f"IMAP login refused for {stranger.address} with the application's OAuth2 token" in (
        message
    )
    assert "Authentication failed" in message
    # Dovecot's error challenge, decoded: RFC 7628's status for OAUTHBEARER, Gmail's shape
    # ("401", schemes, scope) for XOAUTH2.
    assert ("status=invalid_token" if not disable else "status=401 schemes=bearer") in message
    assert token_logins(server, stranger.address) == []


def test_an_app_without_the_imap_permission_is_refused(oauth2_dovecot, graph_server, oauth_users):
    server, introspection = oauth2_dovecot
    graph_server.register_app(CLIENT_ID, SECRET, roles={"Mail.ReadWrite"})
    introspection.trust_graph(graph_server, DOMAIN)
    try:
        users = [oauth_users(name) for name in ("ann", "bob", "cy")]
        for user in users:
            with pytest.raises(AuthError, match="status=invalid_token"):
                ImapConnector(oauth_endpoint(server, graph_server), user.address).open()
            assert token_logins(server, user.address) == []
    finally:
        introspection.forget_issuers()


def test_a_token_the_server_stopped_taking_is_replaced_once(oauth2_dovecot, microsoft, oauth_users):
    server, introspection = oauth2_dovecot
    users = [oauth_users(name) for name in ("ann", "bob", "cy")]
    for n, user in enumerate(users):
        user.load("INBOX", messages(4 * n, 2))
    endpoint = oauth_endpoint(server, microsoft)
    with ImapConnector(endpoint, users[0].address) as connector:
        assert connector.folders()
    (first,) = microsoft.tokens
    # Entra ID ends the token early (as for a revoked grant); msal's cache still holds it for
    # most of an hour, so the next login sends it, is refused, and asks for a new one.
    microsoft.expire_tokens()
    refused = len(introspection.refused)
    for user in users[1:]:
        with ImapConnector(endpoint, user.address) as connector:
            inbox = next(f for f in connector.folders() if f.path == ("INBOX",))
            assert len(connector.changes(inbox, {}).items) == 2
        assert token_logins(server, user.address) == ["OAUTHBEARER"]
    assert set(introspection.refused[refused:]) == {first}  # the old token, and only it
    assert [token for token in microsoft.tokens if token != first]  # a new one was issued


def test_a_token_near_its_expiry_is_renewed_before_it_is_sent(
    oauth2_dovecot, microsoft, oauth_users
):
    server, introspection = oauth2_dovecot
    # Tokens of a few seconds: each is within msal's renewal margin from the start.
    microsoft.token_lifetime = 3
    users = [oauth_users(name) for name in ("ann", "bob", "cy")]
    endpoint = oauth_endpoint(server, microsoft)
    refused = len(introspection.refused)
    for user in users:
        with ImapConnector(endpoint, user.address) as connector:
            assert connector.folders()
        issued = max(expires for _, expires in microsoft.tokens.values())
        wait_for(lambda issued=issued: time.time() > issued + 0.1)  # the last token is dead
    assert introspection.refused[refused:] == []  # never an expired token sent
    assert all(token_logins(server, user.address) == ["OAUTHBEARER"] for user in users)


def test_a_server_without_oauth2_logins_says_so(dovecot_a, graph_server):
    endpoint = oauth_endpoint(dovecot_a, graph_server)
    with pytest.raises(ConnectorError, match="offers no OAuth2 login.*AUTH=PLAIN"):
        ImapConnector(endpoint, "ann@contoso.test").open()


def test_an_unknown_token_issuer_is_named(oauth2_dovecot, graph_server):
    server, _ = oauth2_dovecot
    endpoint = oauth_endpoint(server, graph_server, options={"oauth_provider": "okta"})
    with pytest.raises(ConnectorError, match="Unknown oauth_provider 'okta'"):
        ImapConnector(endpoint, "ann@contoso.test").open()


@pytest.mark.django_db
class TestConnectionTest:
    """The tenant's connection test (the worker's ``check_tenant``) on an OAuth2 IMAP tenant."""

    def tenant(self, server, graph, username, **fields) -> Tenant:
        values = dict(
            kind=Tenant.Kind.IMAP,
            endpoint=server.host,
            port=server.port,
            security=Tenant.Security.PLAIN,
            auth_method=Tenant.AuthMethod.OAUTH2,
            username=username,
            secret=SECRET,
            oauth_client_id=CLIENT_ID,
            oauth_authority=graph.authority,
            options={"ca_file": str(graph.cert_file)},
        )
        values.update(fields)
        return Tenant.objects.create(**values)

    def checked(self, tenant: Tenant) -> Tenant:
        check_tenant(tenant.pk)
        tenant.refresh_from_db()
        return tenant

    def test_the_apps_token_opens_the_mailbox(self, oauth2_dovecot, microsoft, oauth_users):
        server, _ = oauth2_dovecot
        users = [oauth_users(name) for name in ("ann", "bob", "cy")]
        for user in users:
            tenant = self.checked(self.tenant(server, microsoft, user.address))
            assert tenant.last_check_ok is True, tenant.last_check_message
            assert tenant.last_check_message.startswith("Connected: ")
            assert user.address in tenant.last_check_message
            assert token_logins(server, user.address) == ["OAUTHBEARER"]

    def test_a_wrong_client_secret_says_what_entra_id_said(
        self, oauth2_dovecot, microsoft, oauth_users
    ):
        server, _ = oauth2_dovecot
        user = oauth_users("ann")
        tenant = self.checked(self.tenant(server, microsoft, user.address, secret="not-it"))
        assert tenant.last_check_ok is False
        assert "Entra ID refused the app's credentials (invalid_client)" in (
            tenant.last_check_message
        )
        assert "AADSTS7000215: Invalid client secret provided." in tenant.last_check_message
        assert "not-it" not in tenant.last_check_message
        assert token_logins(server, user.address) == []

    def test_a_refused_token_names_the_mailbox_and_the_servers_words(
        self, oauth2_dovecot, microsoft, oauth_users
    ):
        server, _ = oauth2_dovecot
        stranger = oauth_users("dan", domain="fabrikam.test")
        tenant = self.checked(self.tenant(server, microsoft, stranger.address))
        assert tenant.last_check_ok is False
        assert tenant.last_check_message == (
            f"IMAP login refused for {stranger.address} with the application's OAuth2 token on "
            f"{server.host}:{server.port}: [AUTHENTICATIONFAILED] Authentication failed. "
            "(status=invalid_token)"
        )


def test_endpoint_changes_keep_the_mailbox_login(oauth2_dovecot, microsoft, oauth_users):
    """The tenant's username is for its connection test only: another mailbox logs in as
    itself even when the tenant names one (the rule of ``Endpoint.for_mailbox``)."""
    server, _ = oauth2_dovecot
    ann, bob, cy = (oauth_users(name) for name in ("ann", "bob", "cy"))
    for n, user in enumerate((ann, bob, cy)):
        user.load("INBOX", messages(5 + n, 1))
    endpoint = replace(oauth_endpoint(server, microsoft), username=ann.address)
    for n, user in enumerate((ann, bob, cy)):
        mailbox_endpoint = endpoint.for_mailbox(user.address)
        with ImapConnector(mailbox_endpoint, user.address) as connector:
            inbox = next(f for f in connector.folders() if f.path == ("INBOX",))
            (ref,) = connector.changes(inbox, {}).items
            (item,) = connector.fetch(inbox, [ref.source_id])
        assert item.data == messages(5 + n, 1)[0].data
        assert token_logins(server, user.address) == ["OAUTHBEARER"]


# -- Google: a service account with domain-wide delegation, one token per mailbox -----------


@pytest.fixture
def gmail(tmp_path, oauth2_dovecot):
    """The Gmail test server as Google's token endpoint (real google-auth, JWT bearer grant);
    the OAuth2 Dovecot trusts its tokens that carry Gmail IMAP's scope."""
    _, introspection = oauth2_dovecot
    server = GmailServer(tmp_path / "gmail").start()
    introspection.trust_gmail(server)
    yield server
    introspection.forget_issuers()
    server.stop()


def service_account(gmail, scopes=(GMAIL_SCOPE,)) -> str:
    """A service account whose client id the domain delegates ``scopes`` to: its JSON key."""
    key = gmail.add_service_account()
    gmail.delegate(key["client_id"], scopes)
    return json.dumps(key)


def google_endpoint(server, gmail, key: str, **options) -> Endpoint:
    return server.endpoint(
        "",
        key,
        auth_method="oauth2",
        verify_tls=True,
        options={"oauth_provider": "google", "ca_file": str(gmail.cert_file), **options},
    )


def google_users(oauth_users, gmail, names=("ann", "bob", "cy")) -> list[OAuthUser]:
    users = [oauth_users(name, domain="example.test") for name in names]
    for user in users:
        gmail.add_user(user.address)  # a user of the Google Workspace domain
    return users


@pytest.mark.slow
def test_google_three_mailboxes_each_with_its_own_token_copy_out_and_in(
    oauth2_dovecot, gmail, oauth_users, dovecot_a, dovecot_user
):
    server, _ = oauth2_dovecot
    users = google_users(oauth_users, gmail)
    own = {user.address: messages(2 + 7 * n, 7) for n, user in enumerate(users)}
    incoming = {user.address: messages(30 + 4 * n, 4) for n, user in enumerate(users)}
    endpoint = google_endpoint(server, gmail, service_account(gmail))
    for user in users:
        user.load("INBOX", own[user.address])
        copy, sender = dovecot_user(dovecot_a), dovecot_user(dovecot_a)
        sender.load("INBOX", incoming[user.address])
        source = ImapConnector(endpoint, user.address)
        with source, ImapConnector(copy.endpoint(), copy.name) as target:
            copy_folder(source, target)
        source = ImapConnector(sender.endpoint(), sender.name)
        with source, ImapConnector(endpoint, user.address) as target:
            copy_folder(source, target, into=("Imported",))
        assert bodies_and_flags(copy.holdings(), "INBOX") == expected(own[user.address])
    for user in users:
        holdings = user.holdings()
        assert bodies_and_flags(holdings, "INBOX") == expected(own[user.address])
        assert bodies_and_flags(holdings, "Imported") == expected(incoming[user.address])
        assert token_logins(server, user.address) == ["OAUTHBEARER", "OAUTHBEARER"]
    # One token per mailbox, each with the mailbox as its subject, asked for once and reused.
    assert sorted(grant.subject for grant in gmail.tokens.values()) == sorted(
        user.address for user in users
    )


def test_google_a_token_google_ended_early_is_replaced_and_short_ones_renewed_before_use(
    oauth2_dovecot, gmail, oauth_users
):
    server, introspection = oauth2_dovecot
    users = google_users(oauth_users, gmail)
    endpoint = google_endpoint(server, gmail, service_account(gmail))
    for user in users:
        with ImapConnector(endpoint, user.address) as connector:
            assert connector.folders()
    first = set(gmail.tokens)
    # Google ends every token early; google-auth still holds them for most of an hour.
    gmail.expire_tokens()
    # From now on tokens of a few seconds: within google-auth's renewal margin from the start.
    gmail.token_lifetime = 3
    refused = len(introspection.refused)
    for user in users:
        with ImapConnector(endpoint, user.address) as connector:
            assert connector.folders()
    assert set(introspection.refused[refused:]) == first  # each old token, and only those
    # A new short token is asked for before each login, and no dead token is ever sent.
    refused = len(introspection.refused)
    for user in users:
        before = set(gmail.tokens)
        with ImapConnector(endpoint, user.address) as connector:
            assert connector.folders()
        (new,) = set(gmail.tokens) - before
        wait_for(lambda new=new: time.time() > gmail.tokens[new].expires + 0.1)
    assert introspection.refused[refused:] == []
    for user in users:
        assert token_logins(server, user.address) == ["OAUTHBEARER"] * 3


def test_google_refusals_say_what_google_or_the_server_said(oauth2_dovecot, gmail, oauth_users):
    server, _ = oauth2_dovecot
    ann, bob, cy = google_users(oauth_users, gmail)
    # Delegation without Gmail IMAP's scope: Google's token endpoint refuses.
    readonly = service_account(gmail, [READONLY])
    with pytest.raises(AuthError) as raised:
        ImapConnector(google_endpoint(server, gmail, readonly), ann.address).open()
    assert f"Google refused a token for {ann.address}" in str(raised.value)
    assert "unauthorized_client" in str(raised.value)
    # A token for another scope is issued, but IMAP takes only https://mail.google.com/.
    endpoint = google_endpoint(server, gmail, readonly, scope=READONLY)
    with pytest.raises(AuthError, match="status=invalid_token"):
        ImapConnector(endpoint, bob.address).open()
    # A mailbox that is not a user of the Google domain gets no token.
    stranger = oauth_users("dan", domain="example.test")
    full = google_endpoint(server, gmail, service_account(gmail))
    with pytest.raises(AuthError, match="Invalid email or User ID"):
        ImapConnector(full, stranger.address).open()
    # The key is not a service account key.
    with pytest.raises(AuthError, match="not a service account key"):
        ImapConnector(google_endpoint(server, gmail, "hunter2"), cy.address).open()
    for user in (ann, bob, cy, stranger):
        assert token_logins(server, user.address) == []


@pytest.mark.django_db
def test_google_connection_test_with_a_key_google_does_not_know(oauth2_dovecot, gmail, oauth_users):
    server, _ = oauth2_dovecot
    (ann,) = google_users(oauth_users, gmail, names=("ann",))
    stranger = gmail.add_service_account("deleted")
    del gmail.accounts[stranger["client_email"]]  # deleted in Google Cloud since
    tenant = Tenant.objects.create(
        kind=Tenant.Kind.IMAP,
        endpoint=server.host,
        port=server.port,
        security=Tenant.Security.PLAIN,
        auth_method=Tenant.AuthMethod.OAUTH2,
        username=ann.address,
        secret=json.dumps(stranger),
        options={"oauth_provider": "google", "ca_file": str(gmail.cert_file)},
    )
    check_tenant(tenant.pk)
    tenant.refresh_from_db()
    assert tenant.last_check_ok is False
    assert f"Google refused a token for {ann.address}" in tenant.last_check_message
    assert "The OAuth client was not found." in tenant.last_check_message
    assert "PRIVATE KEY" not in tenant.last_check_message

    tenant.secret = service_account(gmail)
    tenant.save()
    check_tenant(tenant.pk)
    tenant.refresh_from_db()
    assert tenant.last_check_ok is True, tenant.last_check_message
    assert tenant.last_check_message.startswith("Connected: ") and ann.address in (
        tenant.last_check_message
    )
