"""Where connectors may go: loopback, link-local, unspecified and the app's own service
addresses are refused before any socket opens (unless local endpoints are allowed); private
ranges are not; maildir folders stay under the maildir root."""

import socket
from contextlib import contextmanager

import pytest

from mailboxes.connectors.base import ConnectorError, Endpoint, Reach
from mailboxes.connectors.ews import EwsConnector, _ReachingAutodiscovery
from mailboxes.connectors.graph import GraphConnector
from mailboxes.connectors.imap import ImapConnector
from mailboxes.connectors.maildir import MaildirConnector
from mailboxes.connectors.reach import (
    ReachError,
    addresses,
    maildir_folder,
    problem,
    url_place,
)

STRICT = Reach(allow_local=False)
HINT = "set ALLOW_LOCAL_ENDPOINTS=1 to allow it"


@contextmanager
def listener():
    """A loopback port that records every connection accepted on it."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0.3)
        accepted = []

        def count():
            try:
                while True:
                    accepted.append(server.accept()[0])
            except TimeoutError:
                return len(accepted)

        yield server.getsockname()[1], count
        for connection in accepted:
            connection.close()


@pytest.mark.parametrize(
    "address, why",
    [
        ("127.0.0.1", "a loopback address"),
        ("127.8.9.10", "a loopback address"),
        ("::1", "a loopback address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("169.254.169.254", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("0.0.0.0", "an unspecified address"),
        ("::", "an unspecified address"),
        ("10.1.2.3", ""),
        ("172.16.0.5", ""),
        ("192.168.1.10", ""),
        ("203.0.113.7", ""),
    ],
)
def test_what_is_refused_and_what_stays_allowed(address, why):
    assert problem(STRICT, address) == why
    assert problem(Reach(allow_local=True), address) == ""


def test_the_apps_own_services_are_refused_by_address_network_or_name():
    reach = Reach(allow_local=False, services=("10.9.8.7", "10.20.0.0/16", "localhost"))
    assert "own services" in problem(reach, "10.9.8.7")
    assert "own services" in problem(reach, "10.20.3.4")
    assert problem(reach, "10.9.8.8") == ""


def test_a_name_is_judged_by_what_it_resolves_to():
    with pytest.raises(ReachError, match=r"endpoint localhost:993 resolves to (127\.0\.0\.1|::1)"):
        addresses(STRICT, "localhost", 993)
    assert addresses(STRICT, "10.1.2.3", 993) == ["10.1.2.3"]


@pytest.mark.parametrize(
    "url, place",
    [
        ("https://mail.example.org/EWS/Exchange.asmx", ("mail.example.org", 443)),
        ("http://10.1.2.3:8080/EWS/Exchange.asmx", ("10.1.2.3", 8080)),
        ("graph.microsoft.us", ("graph.microsoft.us", 443)),
        ("https://[::1]:6379/x", ("::1", 6379)),
        ("https://host:port/x", ("host", 443)),
    ],
)
def test_where_a_url_leads(url, place):
    assert url_place(url) == place


def test_imap_refuses_loopback_before_any_socket_opens():
    with listener() as (port, accepted):
        endpoint = Endpoint(
            kind="imap", host="127.0.0.1", port=port, security="plain", reach=STRICT
        )
        with pytest.raises(ReachError) as refused:
            ImapConnector(endpoint, "ann").open()
        assert str(refused.value) == f"endpoint 127.0.0.1:{port} is a loopback address; {HINT}"
        assert accepted() == 0


def test_ews_never_posts_to_a_loopback_service():
    with listener() as (port, accepted):
        url = f"http://127.0.0.1:{port}/EWS/Exchange.asmx"
        endpoint = Endpoint(
            kind="ews", host=url, username="ann", secret="pw", reach=STRICT, options={"max_wait": 0}
        )
        with pytest.raises(ReachError, match=f"endpoint 127.0.0.1:{port} is a loopback address"):
            EwsConnector(endpoint, "ann@example.org").check()
        assert accepted() == 0


def test_ews_autodiscovery_probes_no_loopback_host():
    discovery = _ReachingAutodiscovery(email="ann@example.org")
    discovery.reach = STRICT
    with pytest.raises(ReachError, match="endpoint 127.0.0.1:443 is a loopback address"):
        discovery._ensure_valid_hostname("https://127.0.0.1/autodiscover/autodiscover.svc")


def test_graph_never_asks_a_loopback_authority_for_a_token():
    with listener() as (port, accepted):
        endpoint = Endpoint(
            kind="exchange_online",
            host=f"https://127.0.0.1:{port}/v1.0",
            auth_method="oauth2",
            secret="s3cret",
            oauth_tenant_id="tid",
            oauth_client_id="cid",
            oauth_authority=f"https://127.0.0.1:{port}/tid",
            reach=STRICT,
        )
        refused = pytest.raises(ReachError, match=f"endpoint 127.0.0.1:{port} is a loopback")
        with refused, GraphConnector(endpoint, "ann@example.org") as graph:
            graph.check()
        assert accepted() == 0


class TestMaildirRoot:
    @pytest.fixture
    def root(self, tmp_path):
        (tmp_path / "root" / "client-a").mkdir(parents=True)
        (tmp_path / "elsewhere" / "Maildir" / "cur").mkdir(parents=True)
        return tmp_path / "root"

    def test_a_folder_under_the_root_is_allowed(self, root):
        reach = Reach(maildir_root=str(root))
        assert maildir_folder(reach, str(root / "client-a")) == (root / "client-a").resolve()

    @pytest.mark.parametrize(
        "path", ["../elsewhere/Maildir", "{root}/../elsewhere/Maildir", "{tmp}/elsewhere/Maildir"]
    )
    def test_a_folder_outside_the_root_is_refused(self, root, path):
        reach = Reach(maildir_root=str(root))
        with pytest.raises(ReachError, match="maildir"):
            maildir_folder(reach, path.format(root=root, tmp=root.parent))

    def test_a_symlink_inside_the_root_pointing_outside_is_refused(self, root):
        (root / "client-a" / "store").symlink_to(root.parent / "elsewhere")
        reach = Reach(maildir_root=str(root))
        with pytest.raises(ReachError, match="not under the maildir root"):
            MaildirConnector(
                Endpoint(kind="maildir", host=str(root / "client-a" / "store"), reach=reach),
                "Maildir",
            ).check()

    @pytest.mark.parametrize("mailbox", ["..", "../elsewhere", "a/../../elsewhere"])
    def test_a_mailbox_name_cannot_climb_out_of_the_root(self, root, mailbox):
        endpoint = Endpoint(kind="maildir", host=str(root), reach=Reach(maildir_root=str(root)))
        with pytest.raises(ReachError):
            MaildirConnector(endpoint, mailbox)


class TestOptions:
    """Options are read through the connector's schema: junk is a connector error naming the
    key, never a ValueError from deep inside."""

    @pytest.mark.parametrize(
        "options, named",
        [
            ({"timeout": "abc"}, "timeout"),
            ({"timeout": 500}, "timeout"),
            ({"timeout": True}, "timeout"),
            ({"disable": "MULTIAPPEND"}, "disable"),
            ({"concurrency": 0}, "concurrency"),
            ({"colour": "blue"}, "colour"),
        ],
    )
    def test_bad_imap_options_are_a_connector_error(self, options, named):
        endpoint = Endpoint(kind="imap", host="10.1.2.3", options=options)
        with pytest.raises(ConnectorError, match=f"option {named}"):
            ImapConnector(endpoint, "ann")

    def test_graph_options_are_read_with_their_defaults(self):
        endpoint = Endpoint(kind="exchange_online", options={"page_size": 50})
        graph = GraphConnector(endpoint, "ann@example.org")
        assert (graph.page_size, graph.concurrency, graph.max_attempts) == (50, 4, 4)

    def test_the_max_wait_of_ews_is_capped(self):
        with pytest.raises(ConnectorError, match="option max_wait must be a number from 0 to 300"):
            EwsConnector(Endpoint(kind="ews", options={"max_wait": 3600}), "ann@example.org")
