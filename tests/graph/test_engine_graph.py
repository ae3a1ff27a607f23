"""The copy engine (mailboxes.engine, inline scheduler) with Exchange Online as the target.

``Tenant`` has no field yet for the login authority or the CA file the Graph connector takes
from ``Endpoint.oauth_authority`` / ``Endpoint.options``; the ``graph_tenants`` fixture adds
them to the Endpoint the tenant builds, and nothing else. Everything else is real: the engine,
the Django rows, msal, httpx, TLS and the loopback Graph server.
"""

import dataclasses

import pytest

from mailboxes.connectors.base import Endpoint
from mailboxes.connectors.maildir import MaildirConnector
from projects.models import Tenant
from tests.engine.conftest import make_mailbox, run_pass
from tests.graph.conftest import SECRET
from tests.graph.test_graph_copy import SEED, corpus_items, seed
from tests.servers.graph_server import TENANT_ID

pytestmark = pytest.mark.django_db


@pytest.fixture
def graph_tenants(monkeypatch, graph_server, graph_app, settings):
    settings.COPY_BATCH_ITEMS = 30
    settings.COPY_RETRY_BASE_SECONDS = 0.01
    built = Tenant.endpoint_config

    def endpoint_config(tenant):
        endpoint = built(tenant)
        if endpoint.kind != "exchange_online":
            return endpoint
        options = {"ca_file": str(graph_server.cert_file)}
        return dataclasses.replace(
            endpoint, oauth_authority=graph_server.authority, options=options
        )

    monkeypatch.setattr(Tenant, "endpoint_config", endpoint_config)
    return Endpoint(
        kind="exchange_online",
        host=graph_server.graph_url,
        auth_method="oauth2",
        secret=SECRET,
        oauth_tenant_id=TENANT_ID,
        oauth_client_id=graph_app.client_id,
    )


def test_engine_copies_a_maildir_into_exchange_online(tmp_path, graph_server, graph_tenants):
    source = MaildirConnector(Endpoint(kind="maildir", host=str(tmp_path)), "src")
    items = corpus_items()
    source.store(source.ensure_folder(("INBOX",), "mail", "inbox"), items[:15])
    source.store(source.ensure_folder(("Archive", "2019"), "mail", None), items[15:])
    box = graph_server.add_user("ann@cloud.example")
    mailbox = make_mailbox(
        Endpoint(kind="maildir", host=str(tmp_path)), graph_tenants, "src", "ann@cloud.example"
    )

    done = run_pass(mailbox, "full")

    assert (done.state, done.items_copied, done.items_failed) == ("done", 25, 0)
    arrived = {i.mime: i for f in box.folders.values() for i in f.items.values() if i.mime}
    for item in items:
        landed = arrived[item.data]
        assert landed.is_read == ("\\Seen" in item.flags)
        assert landed.received == item.received.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert len(box.folder("inbox").items) == 15
    assert graph_server.counts["importMime"] == 25

    again = run_pass(mailbox, "delta")
    assert (again.items_copied, again.items_total) == (0, 0)


def test_engine_copies_exchange_online_to_exchange_online(graph_server, graph_tenants):
    source_box = graph_server.add_user("bo@old.example")
    target_box = graph_server.add_user("bo@new.example")
    seed(source_box)
    mailbox = make_mailbox(graph_tenants, graph_tenants, "bo@old.example", "bo@new.example")

    done = run_pass(mailbox, "full")

    assert (done.state, done.items_copied, done.items_failed) == ("done", 60, 0)
    for name, _, _ in SEED:
        assert sorted(i.data for i in target_box.folder(name).items.values()) == sorted(
            i.data for i in source_box.folder(name).items.values()
        )
    # Batches of 30 from the engine, 20 ids per exportItems: inbox 45 -> 30 + 15 -> 2 + 1.
    assert graph_server.counts["exportItems"] == 3 + 5 + 1
    assert graph_server.counts["importItem"] == 60

    late = source_box.add_item("inbox", "IPM.Note", b"arrived during cutover")
    delta = run_pass(mailbox, "delta")
    assert (delta.items_total, delta.items_copied) == (1, 1)
    assert late.data in {i.data for i in target_box.folder("inbox").items.values()}
