"""Connection tests against a server that accepts and never answers do not hold up copies:
they run on their own queue and worker, as `make run` and compose start them."""

import socket
import threading

import pytest

from mailboxes import services
from mailboxes.models import MailboxPass
from projects.models import Tenant
from projects.tasks import check_tenant
from tests.engine.conftest import make_mailbox
from tests.engine.messages import bulk
from tests.servers.worker import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CLICKS = 4
RECEIVED = "Task projects.tasks.check_tenant["


@pytest.fixture
def silent_server():
    """A port that accepts connections and never says a word (no IMAP greeting)."""
    listener = socket.create_server(("127.0.0.1", 0))
    held = []

    def accept():
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()
    for connection in held:
        connection.close()


def test_a_copy_finishes_while_connection_tests_hang(
    start_worker, silent_server, dovecot_a, dovecot_b, dovecot_user
):
    source, target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
    source.load("INBOX", bulk(10))
    mailbox = make_mailbox(source.endpoint(), target.endpoint(), source.name, target.name)
    silent = Tenant.objects.create(
        kind="imap",
        endpoint="127.0.0.1",
        port=silent_server,
        security="plain",
        username="ann",
        secret="x",
        options={"timeout": 60},
    )
    copies = start_worker("copies", args=("-Q", "copies"))
    checks = start_worker("checks", args=("-Q", "checks"))
    try:
        silent.request_check()
        for _ in range(CLICKS):
            check_tenant.delay(silent.pk)
        wait_until(lambda: checks.log().count(RECEIVED) >= 2, 30)  # both slots hang
        (mailbox_pass,) = services.start_passes([mailbox], "full")
        wait_until(
            lambda: MailboxPass.objects.get(pk=mailbox_pass.pk).state == "done",
            timeout=60,
            message=lambda: f"copy not done:\n{copies.log()[-3000:]}",
        )
        silent.refresh_from_db()
        assert silent.last_check_at is None  # the tests are still waiting for a greeting
    finally:
        copies.stop()
        checks.kill()
    assert "Task mailboxes.tasks.copy_folder_batch[" in copies.log()
    assert RECEIVED not in copies.log()
