"""EWS requests take their turn in the mailbox's EWSMaxConcurrency budget shared by every worker
(mailboxes.budget): with the tenant option at 2, four threads each copying with a connector of
its own never have more than 2 requests of one mailbox in flight at the EWS server."""

import threading

import pytest
from django.db import connection

from mailboxes.budget import default_store
from mailboxes.connectors.ews import EwsConnector
from tests.corpus import corpus_mime
from tests.servers.ews_server import start_ews_server

from .conftest import endpoint

pytestmark = pytest.mark.django_db(transaction=True)

USERS = ["ann@src.test", "bo@src.test", "cy@src.test"]
THREADS = 4  # per mailbox: more than the budget's 2, so only the budget keeps them to 2


@pytest.fixture
def server():
    server = start_ews_server()
    mail = corpus_mime(9)
    for n, user in enumerate(USERS):
        server.add_user(user, password=f"pw-{user}")
        for data in mail[3 * n : 3 * n + 3]:
            server.state.add_item(server.state.folder(user, "Inbox"), data)
    server.state.hold = 0.1  # long enough for the threads' requests to overlap
    yield server
    server.stop()


def list_inbox(server, user, budget: bool, found: dict) -> None:
    """What a worker's copy does first: log in, walk the folders, list the inbox, fetch it."""
    try:
        connector = EwsConnector(
            endpoint(server, user, f"pw-{user}", options={"max_concurrency": 2}), user
        )
        if budget:
            connector.budget_store = default_store()
        with connector:
            for _ in range(3):
                inbox = next(f for f in connector.folders() if f.role == "inbox")
                ids = [ref.source_id for ref in connector.changes(inbox, {}).items]
                found.setdefault(user, []).append(
                    sorted(i.data for i in connector.fetch(inbox, ids))
                )
    except Exception as exc:  # noqa: BLE001 - reported to the test thread
        found.setdefault("errors", []).append(exc)
    finally:
        connection.close()


def copy_in_threads(server, budget: bool) -> dict:
    found: dict = {}
    threads = [
        threading.Thread(target=list_inbox, args=(server, user, budget, found))
        for user in USERS
        for _ in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
        assert not thread.is_alive()
    assert "errors" not in found, found.get("errors")
    return found


@pytest.mark.slow
class TestEwsBudget:
    def test_no_mailbox_has_more_requests_in_flight_than_its_budget(self, server):
        found = copy_in_threads(server, budget=True)

        for user in USERS:
            own = sorted(server.state.held(user)["Inbox"])
            assert found[user] == [own] * (3 * THREADS)  # each thread saw its own mailbox
            assert server.state.max_in_flight[user] == 2

    def test_without_the_budget_the_threads_exceed_it(self, server):
        """The server does see more when nothing shares a budget: the limit above is ours."""
        copy_in_threads(server, budget=False)

        assert max(server.state.max_in_flight[user] for user in USERS) > 2
