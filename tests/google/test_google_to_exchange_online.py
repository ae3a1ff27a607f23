"""Google Workspace into Exchange Online: the Gmail API and Graph test servers on loopback, the
real google-auth, msal and httpx against them, the engine in process."""

from collections import defaultdict
from datetime import UTC, datetime

import pytest

from mailboxes.connectors.roles import EWS_DISTINGUISHED
from mailboxes.models import ItemError
from tests.engine.conftest import make_mailbox, run_pass
from tests.graph.conftest import graph_endpoint

from .seed import USERS, expected, seed

# Transactional: the Graph connector's threads write its request budget to the database.
pytestmark = pytest.mark.django_db(transaction=True)


def held_by_exchange(box) -> dict:
    """key -> sorted (bytes, flags, received) of what the Graph server holds for a user: a
    well-known folder keyed by its role, any other by its path."""
    held = defaultdict(list)
    for folder in box.folders.values():
        key = EWS_DISTINGUISHED.get(folder.well_known)
        if key is None:
            path, parent = [folder.display_name], box.folders.get(folder.parent_id)
            while parent is not None:
                path.insert(0, parent.display_name)
                parent = box.folders.get(parent.parent_id)
            key = tuple(path)
        for item in folder.items.values():
            flags = {"\\Seen"} if item.is_read else set()
            if item.flagged:
                flags.add("\\Flagged")
            received = datetime.strptime(item.received, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            held[key].append((item.mime, frozenset(flags), received))
    return {key: sorted(items, key=_order) for key, items in held.items() if items}


def without_draft_flag(held: dict) -> dict:
    """importMime makes a non-draft message (its page says so): Drafts hold no \\Draft flag."""
    return {
        key: sorted([(d, f - {"\\Draft"}, r) for d, f, r in items], key=_order)
        for key, items in held.items()
    }


def _order(entry):
    return entry[0], sorted(entry[1]), entry[2]


def test_google_to_exchange_online_in_every_label_folder(gmail, google_tenant, graph_server):
    graph_server.register_app("mailferry-app", "s3cret-value")
    target = graph_endpoint(graph_server, "mailferry-app")
    boxes = seed(gmail)
    targets = {user: graph_server.add_user(user.replace("fabrikam", "cloud")) for user in USERS}
    for user in USERS:
        row = make_mailbox(google_tenant, target, user, user.replace("fabrikam", "cloud"))
        done = run_pass(row, "full")
        assert (done.state, done.items_failed) == ("done", 0)
    for user in USERS:
        assert held_by_exchange(targets[user]) == without_draft_flag(expected(boxes[user]))
        assert {gmail.gets[(user, m)] for m in boxes[user].messages} == {1}
    assert not ItemError.objects.exists()
