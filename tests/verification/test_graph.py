"""Verification with Exchange Online (the loopback Graph test server) as the target: three
EWS source mailboxes, each with its own password and its own mail, copied in by the
application, and a fourth first copied into the wrong account. Items deleted on a target,
items added to a source and a copy in another account make ``verify`` exit 1 and name the
folder and counts; "Copy what is missing" restores them and ``verify --deep`` (each copy's
PR_SEARCH_KEY against its source item's) exits 0. Counts are compared with the servers' state.
Exchange Online to Exchange Online as well, where a copy holding another item's key is named."""

import pytest

from mailboxes.connectors.base import Endpoint
from mailboxes.connectors.graph import FINGERPRINT
from mailboxes.models import Mailbox
from projects.models import Project
from tests.engine.conftest import tenant_for
from tests.graph.conftest import SECRET, graph_endpoint
from tests.graph.seed import seed
from tests.servers.ews_server import start_ews_server
from tests.servers.graph_server import SEARCH_KEY

from .conftest import run, unique_messages, verify_lines

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def graph_app(graph_server):
    return graph_server.register_app("mailferry-app", SECRET)


@pytest.fixture
def ews_source():
    server = start_ews_server()
    yield server
    server.stop()


def graph_held(box) -> dict[str, int]:
    """Folder name -> how many items the Graph server holds there (non-empty folders)."""
    with box.lock:
        return {f.display_name: len(f.items) for f in box.folders.values() if f.items}


def test_graph_target_differences_are_named_and_copy_what_is_missing_restores_them(
    ews_source, graph_server, graph_app
):
    project = Project.objects.create(
        client_name="Tailspin",
        source=tenant_for(Endpoint(kind="ews", host=ews_source.url)),
        target=tenant_for(graph_endpoint(graph_server, graph_app.client_id)),
    )
    boxes, mailboxes = [], []
    decoy = graph_server.add_user("decoy@cloud.example")
    for i in range(4):
        old, new = f"user{i}@src.test", f"user{i}@cloud.example"
        ews_source.state.add_user(old, f"pw-src-{i}")
        boxes.append(graph_server.add_user(new))
        inbox = ews_source.state.folder(old, "Inbox")
        for raw in unique_messages(f"graph{i}", 3 + i):
            ews_source.state.add_item(inbox, raw.data)
        mailboxes.append(
            project.mailboxes.create(
                source_address=old,
                target_address=new,
                source_login=old,
                source_password=f"pw-src-{i}",
            )
        )
    deleted, grown, untouched, misdirected = mailboxes
    # The fourth mailbox's first copy goes to another user's mailbox (a wrong target address).
    misdirected_to = misdirected.target_address
    Mailbox.objects.filter(pk=misdirected.pk).update(target_address="decoy@cloud.example")
    full = run("run_pass", project.pk, "--kind", "full", "--wait", "--inline")
    assert full.code == 0, full.out + full.message
    first = run("verify", project.pk, "--deep", "--inline")
    assert first.code == 0, first.out + first.message
    assert sum(graph_held(decoy).values()) == 6 and graph_held(boxes[3]) == {}
    Mailbox.objects.filter(pk=misdirected.pk).update(target_address=misdirected_to)

    target_inbox = boxes[0].folder("inbox")
    for item_id in list(target_inbox.items)[:2]:
        boxes[0].delete_item(target_inbox, item_id)
    for raw in unique_messages("graph1-late", 3):
        ews_source.state.add_item(ews_source.state.folder(grown.source_address, "Inbox"), raw.data)

    checked = run("verify", project.pk, "--inline")

    assert checked.code == 1, checked.out
    lines = verify_lines(checked)
    assert lines[deleted.source_address] == (
        f"{deleted.source_address} verified=no missing=2 failed=0 excluded=0 extra=0"
    )
    assert lines[grown.source_address] == (
        f"{grown.source_address} verified=no missing=3 failed=0 excluded=0 extra=0"
    )
    assert lines[untouched.source_address] == (
        f"{untouched.source_address} verified=yes missing=0 failed=0 excluded=0 extra=0"
    )
    assert lines[misdirected.source_address] == (
        f"{misdirected.source_address} verified=no missing=6 failed=0 excluded=0 extra=0"
    )
    assert "  folder Inbox: missing=6 (6 gone from the target)" in checked.out
    assert "  folder Inbox: missing=2 (2 gone from the target)" in checked.out
    assert "  folder Inbox: missing=3 (3 new on the source)" in checked.out
    for mailbox, box in zip(mailboxes, boxes, strict=True):
        mailbox.refresh_from_db()
        assert mailbox.verification["totals"]["target_items"] == sum(graph_held(box).values())

    fixed = run("run_pass", project.pk, "--kind", "missing", "--wait", "--inline")
    assert fixed.code == 0, fixed.out + fixed.message
    assert f"{deleted.source_address} state=done copied=2 failed=0" in fixed.out
    assert f"{grown.source_address} state=done copied=3 failed=0" in fixed.out
    assert f"{untouched.source_address} state=done copied=0 failed=0" in fixed.out
    assert f"{misdirected.source_address} state=done copied=6 failed=0" in fixed.out

    again = run("verify", project.pk, "--deep", "--inline")
    assert again.code == 0, again.out
    for mailbox, box in zip(mailboxes, boxes, strict=True):
        source_counts = {
            name: len(items)
            for name, items in ews_source.state.held(mailbox.source_address).items()
        }
        assert graph_held(box) == source_counts


def test_graph_to_graph_deep_verification_matches_the_key_each_copy_kept(graph_server, graph_app):
    """Exchange Online to Exchange Online, three mailboxes each with every kind of item and
    mail of its own: no copy is stamped, and ``verify --deep`` confirms each one, tasks and notes
    included, by the PR_SEARCH_KEY it kept from its source item; a copy holding another item's
    key is named as changed."""
    endpoint = graph_endpoint(graph_server, graph_app.client_id)
    project = Project.objects.create(
        client_name="Fabrikam", source=tenant_for(endpoint), target=tenant_for(endpoint)
    )
    boxes = []
    for i in range(3):
        old, new = f"user{i}@old.example", f"user{i}@cloud.example"
        source = graph_server.add_user(old)
        seed(source)
        for n in range(i + 1):
            source.add_item("inbox", "IPM.Note", f"{old} own #{n}".encode())
        boxes.append(graph_server.add_user(new))
        project.mailboxes.create(source_address=old, target_address=new)
    full = run("run_pass", project.pk, "--kind", "full", "--wait", "--inline")
    assert full.code == 0, full.out + full.message

    copies = [item for box in boxes for f in box.folders.values() for item in f.items.values()]
    assert len(copies) == 3 * 60 + 1 + 2 + 3
    assert not any(FINGERPRINT in item.properties for item in copies)
    deep = run("verify", project.pk, "--deep", "--inline")
    assert deep.code == 0, deep.out
    for address, line in verify_lines(deep).items():
        assert line == f"{address} verified=yes missing=0 failed=0 excluded=0 extra=0"

    task = next(iter(boxes[1].folder("tasks").items.values()))
    note = next(iter(boxes[1].folder("notes").items.values()))
    task.properties[SEARCH_KEY] = note.properties[SEARCH_KEY]
    again = run("verify", project.pk, "--deep", "--inline")

    assert again.code == 1, again.out
    lines = verify_lines(again)
    assert lines["user1@old.example"] == (
        "user1@old.example verified=no missing=1 failed=0 excluded=0 extra=0"
    )
    assert "  folder Tasks: missing=1 (1 changed on the target)" in again.out
    for address in ("user0@old.example", "user2@old.example"):
        assert lines[address] == f"{address} verified=yes missing=0 failed=0 excluded=0 extra=0"
