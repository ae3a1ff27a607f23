"""The copy engine (mailboxes.engine, inline scheduler) with Exchange Online as the target:
real Django rows, msal, httpx, TLS and the loopback Graph (and EWS) servers."""

import pytest

from mailboxes import engine, services
from mailboxes.connectors.base import Endpoint
from mailboxes.connectors.graph import FINGERPRINT
from mailboxes.connectors.maildir import MaildirConnector
from mailboxes.models import CopiedItem, FolderJob, ItemError
from tests.engine.conftest import make_mailbox, run_pass
from tests.graph.conftest import ALICE, KINDS, graph_endpoint
from tests.graph.seed import SEED, corpus_items, seed
from tests.servers.ews_server import PR_SEARCH_KEY
from tests.servers.graph_server import SEARCH_KEY

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def graph_tenants(graph_server, graph_app, settings):
    """The Exchange Online tenant, with the test server's login authority and CA file in the
    tenant's own fields, as a consultant on a sovereign cloud or behind a TLS proxy sets them."""
    settings.COPY_BATCH_ITEMS = 30
    settings.COPY_RETRY_BASE_SECONDS = 0.01
    return graph_endpoint(graph_server, graph_app.client_id)


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
        assert sorted(i.content for i in target_box.folder(name).items.values()) == sorted(
            i.content for i in source_box.folder(name).items.values()
        )
    # Batches of 30 from the engine, 20 ids per exportItems: inbox 45 -> 30 + 15 -> 2 + 1.
    assert graph_server.counts["exportItems"] == 3 + 5 + 1
    assert graph_server.counts["importItem"] == 60

    late = source_box.add_item("inbox", "IPM.Note", b"arrived during cutover")
    delta = run_pass(mailbox, "delta")
    assert (delta.items_total, delta.items_copied) == (1, 1)
    assert late.content in {i.content for i in target_box.folder("inbox").items.values()}


def test_engine_copies_every_kind_from_ews_to_exchange_online(
    ews_source, graph_server, graph_tenants
):
    """EWS exports go into Graph unchanged (the same FastTransfer stream), so calendars,
    contacts, tasks and notes arrive too, not only mail."""
    box = graph_server.add_user("alice@cloud.example")
    source = Endpoint("ews", ews_source.url, username=ALICE, secret="secret")
    mailbox = make_mailbox(source, graph_tenants, ALICE, "alice@cloud.example")

    done = run_pass(mailbox, "full")

    assert (done.state, done.items_copied, done.items_failed) == ("done", 28, 0)
    landed = {f.well_known: len(f.items) for f in box.folders.values() if f.items}
    assert landed == {"inbox": 24, "calendar": 1, "contacts": 1, "tasks": 1, "notes": 1}
    blobs = b"".join(i.data for f in box.folders.values() for i in f.items.values())
    for _, item_class, _ in KINDS:
        # The fake EWS server's export blob names the item class it carries.
        assert f'"item_class": "{item_class}"'.encode() in blobs
    assert graph_server.counts["importMime"] == 0


def test_an_item_graph_leaves_out_of_exports_is_asked_again_then_an_item_error(
    graph_server, graph_tenants
):
    """Every exported id is accounted for: one left out once is asked for again on its own and
    copied; one left out of both answers is an ItemError in Graph's place, not a deletion."""
    source_box = graph_server.add_user("cy@old.example")
    target_box = graph_server.add_user("cy@new.example")
    inbox = source_box.folder("inbox")
    kept, lost = (source_box.add_item(inbox, "IPM.Note", f"#{n}".encode()) for n in range(2))
    for n in range(5):
        source_box.add_item(inbox, "IPM.Note", f"other {n}".encode())
    graph_server.drop_from_exports([kept.id], times=1)
    graph_server.drop_from_exports([lost.id], times=2)
    mailbox = make_mailbox(graph_tenants, graph_tenants, "cy@old.example", "cy@new.example")

    done = run_pass(mailbox, "full")

    assert (done.items_copied, done.items_failed) == (6, 1)
    landed = {i.content for i in target_box.folder("inbox").items.values()}
    assert kept.content in landed and lost.content not in landed
    (error,) = ItemError.objects.all()
    assert error.source_id == lost.id
    assert "left the item out of its answer" in error.reason


class Crash(BaseException):
    """Stands for the worker dying: nothing in the engine may catch it."""


def crash_on_the_second_record_then_resume(mailbox, monkeypatch, graph_server) -> int:
    """A full pass whose worker dies right after the target took its second batch, before
    recording it, then a restarted worker that resumes the pass; returns how many items the
    target had imported when the worker died."""
    scheduler = engine.InlineScheduler("node-1:42")
    services.start_passes([mailbox], "full", scheduler=scheduler)
    original, calls = FolderJob.record_batch, []

    def dies_on_the_second_batch(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise Crash
        return original(self, *args, **kwargs)

    monkeypatch.setattr(FolderJob, "record_batch", dies_on_the_second_batch)
    with pytest.raises(Crash):
        scheduler.run()
    assert FolderJob.objects.get(lease_owner="node-1:42").inflight
    imported = graph_server.counts["importItem"]
    monkeypatch.setattr(FolderJob, "record_batch", original)

    restarted = engine.InlineScheduler("node-1:43")
    assert engine.requeue_stalled(restarted, node="node-1") >= 1
    restarted.run()
    mailbox.refresh_from_db()
    assert mailbox.state == "done"
    return imported


def test_a_crash_between_import_and_record_copies_nothing_twice(
    graph_server, graph_tenants, monkeypatch
):
    """Recovery finds what was imported but not recorded by the PR_SEARCH_KEY each copy kept
    from its source item, and imports none of it again."""
    source_box = graph_server.add_user("di@old.example")
    target_box = graph_server.add_user("di@new.example")
    for n in range(45):
        source_box.add_item("inbox", "IPM.Note", f"mail #{n}".encode(), n % 2 == 0)
    for n in range(4):
        source_box.add_item("calendar", "IPM.Appointment", f"event #{n}".encode())
    mailbox = make_mailbox(graph_tenants, graph_tenants, "di@old.example", "di@new.example")

    imported = crash_on_the_second_record_then_resume(mailbox, monkeypatch, graph_server)

    for name in ("inbox", "calendar"):
        assert sorted(i.content for i in target_box.folder(name).items.values()) == sorted(
            i.content for i in source_box.folder(name).items.values()
        )
    assert 0 < imported < 49 and graph_server.counts["importItem"] == 49
    assert CopiedItem.objects.count() == 49


def test_a_crash_between_import_and_record_from_ews_copies_nothing_twice(
    ews_source, graph_server, graph_tenants, monkeypatch, settings
):
    """From EWS too: ExportItems' stream carries each item's PR_SEARCH_KEY into its copy, so
    recovery finds the imports a dead worker never recorded, though none was stamped."""
    settings.COPY_BATCH_ITEMS = 10
    box = graph_server.add_user("alice@cloud.example")
    source = Endpoint("ews", ews_source.url, username=ALICE, secret="secret")
    mailbox = make_mailbox(source, graph_tenants, ALICE, "alice@cloud.example")

    imported = crash_on_the_second_record_then_resume(mailbox, monkeypatch, graph_server)

    copies = [item for folder in box.folders.values() for item in folder.items.values()]
    source_keys = sorted(i.extended[PR_SEARCH_KEY] for i in ews_source.state.items.values())
    assert sorted(i.properties[SEARCH_KEY] for i in copies) == source_keys  # each item once
    assert not any(FINGERPRINT in i.properties for i in copies)
    assert 0 < imported < 28 and graph_server.counts["importItem"] == 28
    assert CopiedItem.objects.count() == 28
