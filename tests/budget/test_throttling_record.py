"""Each time a service throttles a mailbox is recorded on it (when, how long it waited, who said
what) and shown on the mailbox page: three Exchange Online mailboxes, each with its own mail,
copied through the engine from the Graph test server, which refuses their exports with 429."""

import time

import lxml.html
import pytest
from django.urls import reverse
from django.utils import timezone

from mailboxes.connectors.base import Endpoint
from mailboxes.connectors.graph import GraphConnector
from tests.corpus import corpus_mime
from tests.engine.conftest import make_mailbox, run_pass
from tests.rendered import text
from tests.servers.graph_server import TENANT_ID

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "s3cret-value"
# (mailbox, 429s its exports get, their Retry-After, the source tenant's max_inline_wait)
CASES = [
    ("ann", 1, 1, 5.0),
    ("bo", 2, 1, 5.0),
    # Longer than the worker waits in-process: handed back to the engine, which retries later.
    ("cy", 1, 1, 0.5),
]


def endpoint(server, **options) -> Endpoint:
    return Endpoint(
        kind="exchange_online",
        host=server.graph_url,
        auth_method="oauth2",
        secret=SECRET,
        oauth_tenant_id=TENANT_ID,
        oauth_client_id="mailferry-app",
        oauth_authority=server.authority,
        options={"ca_file": str(server.cert_file), **options},
    )


@pytest.fixture
def copied(graph_server, settings):
    """Each mailbox copied after the server was told to throttle its exports: name -> (mailbox,
    the 429s the server answered its exports, the messages its target holds)."""
    settings.COPY_RETRY_BASE_SECONDS = 0.01
    graph_server.register_app("mailferry-app", SECRET)
    mail = corpus_mime(12)
    copied = {}
    for n, (name, refusals, retry_after, inline) in enumerate(CASES):
        source = graph_server.add_user(f"{name}@old.example")
        target = graph_server.add_user(f"{name}@new.example")
        own = mail[4 * n : 4 * n + 4]
        for data in own:
            source.add_item("inbox", "IPM.Note", data)
        mailbox = make_mailbox(
            endpoint(graph_server, max_inline_wait=inline),
            endpoint(graph_server),
            f"{name}@old.example",
            f"{name}@new.example",
        )
        exports = graph_server.counts["exportItems"]
        graph_server.throttle("exportItems", refusals, retry_after=retry_after)

        done = run_pass(mailbox, "full")

        assert (done.state, done.items_copied, done.items_failed) == ("done", 4, 0)
        # One export answered (4 ids), the rest refused by the server.
        refused = graph_server.counts["exportItems"] - exports - 1
        held = sorted(i.body for i in target.folder("inbox").items.values())
        copied[name] = (mailbox, refused, held, sorted(own))
    return copied


def shown(client, mailbox) -> str:
    """The throttling line of the mailbox page, as a reader sees it ("" when it has none)."""
    response = client.get(reverse("mailbox_detail", args=[mailbox.project_id, mailbox.pk]))
    assert response.status_code == 200
    found = lxml.html.fromstring(response.content.decode()).xpath('//*[@id="throttling"]')
    return " ".join(found[0].text_content().split()) if found else ""


@pytest.mark.slow
class TestMailboxDetailThrottling:
    def test_each_page_shows_what_the_server_refused_and_the_time_waited(
        self, client, alice, copied
    ):
        client.force_login(alice)
        for (name, refusals, retry_after, _), (mailbox, refused, held, own) in zip(
            CASES, copied.values(), strict=True
        ):
            mailbox.project.members.add(alice)
            assert held == own  # its own mail arrived despite the refusals
            assert refused == refusals
            times = "once" if refused == 1 else f"{refused} times"
            last = mailbox.throttlings.first()
            at = timezone.localtime(last.at).strftime("%H:%M")
            line = shown(client, mailbox)
            assert line.startswith(
                f"Throttled {times}, {refused * retry_after} s in all; last at {at} by "
                "Exchange Online: "
            ), line
            assert "Too many requests; retry later." in line
            if name == "cy":  # the engine's retry, in the connector's words
                assert "Microsoft Graph is throttling this tenant (HTTP 429" in line

    def test_a_mailbox_never_throttled_shows_nothing(self, client, alice, graph_server):
        graph_server.register_app("mailferry-app", SECRET)
        for name in ("dee", "eve", "fay"):
            graph_server.add_user(f"{name}@old.example").add_item(
                "inbox", "IPM.Note", f"Subject: {name}\r\n\r\nhello\r\n".encode()
            )
            graph_server.add_user(f"{name}@new.example")
            mailbox = make_mailbox(
                endpoint(graph_server),
                endpoint(graph_server),
                f"{name}@old.example",
                f"{name}@new.example",
            )
            assert run_pass(mailbox, "full").items_copied == 1
            mailbox.project.members.add(alice)
            client.force_login(alice)
            assert shown(client, mailbox) == ""
            assert "Throttl" not in text(client.get(mailbox.get_absolute_url()))


@pytest.mark.slow
class TestGraphBudgetWaitsAreNoted:
    def test_a_wait_over_a_second_for_the_budget_is_noted(self, graph_server):
        """One request per 2 s window: each mailbox's requests after its first wait for the
        budget, and the connector notes each such wait (the engine records them)."""
        graph_server.register_app("mailferry-app", SECRET)
        for name in ("dee", "eve", "fay"):
            graph_server.add_user(f"{name}@new.example").add_item(
                "inbox", "IPM.Note", f"Subject: {name}\r\n\r\nhello\r\n".encode()
            )
            limits = endpoint(graph_server, mailbox_requests=1, request_window=2)
            with GraphConnector(limits, f"{name}@new.example") as connector:
                started = time.monotonic()
                inbox = next(f for f in connector.folders() if f.role == "inbox")
                assert len(connector.changes(inbox, {}).items) == 1
                elapsed = time.monotonic() - started
                notes = connector.take_throttled()

            assert notes, name
            assert {(n.service, n.reason) for n in notes} == {
                ("Exchange Online", "the mailbox's share of its limits was in use")
            }
            assert all(n.seconds > 1 for n in notes)
            assert sum(n.seconds for n in notes) <= elapsed
            assert connector.take_throttled() == []  # taken once
