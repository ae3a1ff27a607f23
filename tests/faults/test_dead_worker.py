"""A killed worker is visible: once no worker has answered for WORKER_SILENT_SECONDS, the
dashboard and the project page say so and what waits for one."""

import pytest
from django.urls import reverse

from mailboxes import services
from mailboxes.models import ACTIVE_STATES, CopiedItem, FolderJob, Mailbox, WorkerHeartbeat
from tests.engine.conftest import make_mailbox
from tests.engine.messages import bulk
from tests.servers.worker import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SILENT = "No worker has answered"
WORKER_ENV = {"COPY_BATCH_ITEMS": "3", "WORKER_HEARTBEAT_SECONDS": "1"}


def pages(client, project) -> list[str]:
    return [
        client.get(reverse("home")).content.decode(),
        client.get(project.get_absolute_url()).content.decode(),
    ]


def test_pages_say_when_no_worker_answers_and_what_waits(
    client, alice, settings, start_worker, dovecot_a, dovecot_b, dovecot_user
):
    settings.WORKER_SILENT_SECONDS = 3
    source, target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
    source.load("INBOX", bulk(300))
    source.load("Archive", bulk(300))
    mailbox = make_mailbox(source.endpoint(), target.endpoint(), source.name, target.name)
    project = mailbox.project
    project.members.add(alice)
    idle = project.mailboxes.create(source_address="idle@a.test", target_address="idle@b.test")
    client.force_login(alice)
    worker = start_worker("worker", env=WORKER_ENV)
    services.start_passes([mailbox], "full")
    wait_until(lambda: CopiedItem.objects.count() >= 10, timeout=60)
    assert WorkerHeartbeat.objects.exists()
    assert all(SILENT not in page for page in pages(client, project))
    worker.kill()

    wait_until(lambda: all(SILENT in page for page in pages(client, project)), timeout=15)
    waiting = Mailbox.objects.filter(state__in=ACTIVE_STATES)
    jobs = FolderJob.objects.filter(mailbox__in=waiting, state__in=("pending", "running"))
    assert list(waiting) == [mailbox] and idle.state == "new" and jobs.exists()
    count = jobs.count()
    said = f"1 mailbox and {count} folder job{'s' if count != 1 else ''} are waiting"
    for page in pages(client, project):
        assert said in page
