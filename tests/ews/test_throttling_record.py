"""ErrorServerBusy met while copying from Exchange (EWS) is recorded on the mailbox and shown on
its page: three mailboxes, each with its own mail, whose listings the server refuses as busy
(BackOffMilliseconds 1000) once, twice and three times."""

import lxml.html
import pytest
from django.urls import reverse

from tests.corpus import corpus_mime
from tests.engine.conftest import make_mailbox, run_pass
from tests.servers.ews_server import start_ews_server

from .conftest import endpoint

pytestmark = pytest.mark.django_db

USERS = ["ann@src.test", "bo@src.test", "cy@src.test"]


@pytest.fixture
def servers():
    source, target = start_ews_server(), start_ews_server()
    yield source, target
    source.stop()
    target.stop()


def shown(client, mailbox) -> str:
    """The throttling line of the mailbox page, as a reader sees it ("" when it has none)."""
    response = client.get(reverse("mailbox_detail", args=[mailbox.project_id, mailbox.pk]))
    assert response.status_code == 200
    found = lxml.html.fromstring(response.content.decode()).xpath('//*[@id="throttling"]')
    return " ".join(found[0].text_content().split()) if found else ""


@pytest.mark.slow
class TestMailboxDetailEwsBusy:
    def test_each_page_counts_the_busy_answers_and_their_back_off(
        self, client, alice, servers, settings
    ):
        settings.COPY_RETRY_BASE_SECONDS = 0.01
        source, target = servers
        mail = corpus_mime(9)
        client.force_login(alice)
        for n, user in enumerate(USERS):
            source.add_user(user)
            own = mail[3 * n : 3 * n + 3]
            for data in own:
                source.state.add_item(source.state.folder(user, "Inbox"), data)
            moved = user.replace("src", "dst")
            target.add_user(moved)
            mailbox = make_mailbox(endpoint(source, user), endpoint(target, moved), user, moved)
            mailbox.project.members.add(alice)
            busy = n + 1
            source.state.inject("SyncFolderItems", "busy", times=busy, back_off_ms=1000)

            done = run_pass(mailbox, "full")

            assert (done.state, done.items_copied, done.items_failed) == ("done", 3, 0)
            assert sorted(target.state.held(moved)["Inbox"]) == sorted(own)
            assert source.state.faults[-1]["times"] == 0  # the server refused ``busy`` times
            times = "once" if busy == 1 else f"{busy} times"
            line = shown(client, mailbox)
            assert line.startswith(f"Throttled {times}, {busy} s in all; last at "), line
            assert line.endswith(
                "by Exchange (EWS): the server is busy (ErrorServerBusy), back off 1 s"
            ), line
