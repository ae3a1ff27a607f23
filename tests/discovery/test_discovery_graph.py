"""Discovery with Exchange Online (the Graph test server) on either side: figures as the server
holds them, folders an IMAP target cannot hold, Exchange Online's size limit, a user without a
mailbox."""

from datetime import datetime

import pytest

from mailboxes import discovery
from mailboxes.connectors.roles import kind_for_folder_class
from projects.models import Project
from tests.engine.conftest import tenant_for
from tests.graph.conftest import graph_app, graph_endpoint  # noqa: F401 - a fixture
from tests.graph.seed import seed
from tests.servers.graph_server import FakeMailbox

pytestmark = pytest.mark.django_db


def held(box: FakeMailbox) -> list:
    """(items, bytes, created dates) of each folder the connector lists (known kinds only)."""
    return [
        (
            len(f.items),
            sum(len(i.data) for i in f.items.values()),
            [i.created for i in f.items.values()],
        )
        for f in box.folders.values()
        if kind_for_folder_class(f.type)
    ]


def test_graph_source_into_imap(graph_server, graph_app, dovecot_b, dovecot_user):  # noqa: F811
    """Three mailboxes, each with its own content; the IMAP target takes mail only."""
    graph = tenant_for(graph_endpoint(graph_server, graph_app.client_id))
    project = Project.objects.create(
        client_name="Tailspin", source=graph, target=tenant_for(dovecot_b.endpoint())
    )
    boxes, mailboxes = [], []
    for i, name in enumerate(("ann", "ben", "cid")):
        box = graph_server.add_user(f"{name}@old.example")
        seed(box)
        for n in range(i * 5):
            box.add_item("inbox", "IPM.Note", f"{name} extra {n} ".encode() * (n + 1))
        if name == "cid":  # a folder name IMAP (and most servers) will not take
            box.add_item(box.add_folder("L" * 300), "IPM.Note", b"long")
        user = dovecot_user(dovecot_b)
        boxes.append(box)
        mailboxes.append(
            project.mailboxes.create(
                source_address=f"{name}@old.example",
                target_address=f"{user.name}@new.example",
                target_login=user.name,
                target_password=user.password,
            )
        )
    for box, mailbox in zip(boxes, mailboxes, strict=True):
        discovery.discover_mailbox(mailbox)
        mailbox.refresh_from_db()
        report, truth = mailbox.discovery, held(box)
        assert report["items"] == sum(items for items, _, _ in truth)
        assert report["bytes"] == sum(size for _, size, _ in truth)
        assert sorted((f["items"], f["bytes"]) for f in report["folders"]) == sorted(
            (items, size) for items, size, _ in truth
        )
        dates = [datetime.fromisoformat(d.replace("Z", "+00:00")) for *_, ds in truth for d in ds]
        assert datetime.fromisoformat(report["oldest"]) == min(dates)
        assert datetime.fromisoformat(report["newest"]) == max(dates)
        largest = max(len(i.data) for f in box.folders.values() for i in f.items.values())
        assert report["largest"][0]["size"] == largest
        # Calendar, contacts, tasks and notes cannot go into IMAP: named, not blocking.
        cannot = sorted(
            p["text"].split(" cannot")[0] for p in report["problems"] if not p["blocking"]
        )
        expected = ["Folder Calendar", "Folder Contacts", "Folder Notes", "Folder Tasks"]
        if mailbox.source_address.startswith("cid"):
            expected.insert(0, f"Folder {'L' * 300}")
        assert cannot == sorted(expected)
        assert not mailbox.discovery_blocking
        assert (mailbox.source_items, mailbox.source_bytes) == (report["items"], report["bytes"])


def test_exchange_online_target(graph_server, graph_app, dovecot_a, dovecot_user):  # noqa: F811
    """Exchange Online's 150 MB limit stands unless the tenant sets its own; a target user
    without a mailbox blocks."""
    graph = tenant_for(graph_endpoint(graph_server, graph_app.client_id))
    project = Project.objects.create(
        client_name="Litware", source=tenant_for(dovecot_a.endpoint()), target=graph
    )
    graph_server.add_user("ann@new.example")
    users = [dovecot_user(dovecot_a) for _ in range(2)]
    users[0].load("INBOX", [])
    ann, ghost = (
        project.mailboxes.create(
            source_address=f"{user.name}@old.example",
            target_address=target,
            source_login=user.name,
            source_password=user.password,
        )
        for user, target in zip(users, ("ann@new.example", "ghost@new.example"), strict=True)
    )
    discovery.discover_mailbox(ann)
    assert ann.discovery["max_item_size"] == 150 * 1024 * 1024
    assert ann.discovery["problems"] == []
    discovery.discover_mailbox(ghost)
    assert ghost.discovery_blocking
    (problem,) = ghost.discovery["problems"]
    assert problem["blocking"] and problem["text"].startswith("Target cannot be used")
    graph.options = {**graph.options, "max_item_size": 35 * 1024 * 1024}
    graph.save()
    ann.refresh_from_db()
    discovery.discover_mailbox(ann)
    assert ann.discovery["max_item_size"] == 35 * 1024 * 1024
