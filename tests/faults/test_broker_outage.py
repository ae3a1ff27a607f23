"""The Redis broker goes away and comes back: a running worker carries on by itself, and a
pass started meanwhile is saved, said to wait, and starts once the broker is back."""

import pytest
from django.urls import reverse

from mailboxes import services
from mailboxes.models import CopiedItem, MailboxPass
from tests.engine.conftest import make_mailbox
from tests.engine.messages import bulk
from tests.engine.snapshots import snapshot
from tests.rendered import messages
from tests.servers.worker import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

COUNT = 300
# Tiny batches and tasks so the outage falls mid-copy; a sweep every second, and a short
# grace, because a broker without persistence forgets the messages it held.
WORKER_ENV = {
    "COPY_BATCH_ITEMS": "3",
    "COPY_TASK_SECONDS": "1",
    "COPY_LEASE_SECONDS": "3",
    "COPY_SWEEP_SECONDS": "1",
    "COPY_QUEUE_GRACE_SECONDS": "4",
}


def finished(mailbox_pass, worker, timeout=120):
    wait_until(
        lambda: MailboxPass.objects.get(pk=mailbox_pass.pk).state in ("done", "failed"),
        timeout=timeout,
        message=lambda: f"pass not finished:\n{worker.log()[-4000:]}",
    )
    mailbox_pass.refresh_from_db()
    assert mailbox_pass.state == "done", mailbox_pass.error


def assert_copied_once(source, target, count):
    copied = snapshot(target.endpoint(), target.name)[("INBOX",)]
    assert copied == snapshot(source.endpoint(), source.name)[("INBOX",)]
    assert sum(copied.values()) == count and set(copied.values()) == {1}
    assert CopiedItem.objects.count() == count


def test_worker_survives_a_redis_restart_mid_copy(
    redis_broker, start_worker, dovecot_a, dovecot_b, dovecot_user
):
    source, target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
    source.load("INBOX", bulk(COUNT))
    mailbox = make_mailbox(source.endpoint(), target.endpoint(), source.name, target.name)
    # Asked for after redis_broker, the worker stops before Redis does.
    worker = start_worker("worker", broker_url=redis_broker.url, env=WORKER_ENV, beat=True)
    (mailbox_pass,) = services.start_passes([mailbox], "full")
    wait_until(lambda: CopiedItem.objects.count() >= 30, timeout=60)
    redis_broker.stop()
    assert CopiedItem.objects.count() < COUNT
    wait_until(  # the worker notices its connection is gone before Redis is back
        lambda: "Connection to broker lost" in worker.log(),
        timeout=60,
        message=lambda: worker.log()[-3000:],
    )
    redis_broker.start()
    finished(mailbox_pass, worker)
    assert worker.proc.poll() is None, worker.log()[-4000:]
    assert_copied_once(source, target, COUNT)


def test_pass_started_while_the_broker_is_down_starts_when_it_is_back(
    client, alice, redis_broker, start_worker, dovecot_a, dovecot_b, dovecot_user
):
    source, target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
    source.load("INBOX", bulk(20))
    mailbox = make_mailbox(source.endpoint(), target.endpoint(), source.name, target.name)
    mailbox.project.members.add(alice)
    worker = start_worker("worker", broker_url=redis_broker.url, env=WORKER_ENV, beat=True)
    redis_broker.stop()
    client.force_login(alice)
    response = client.post(
        reverse("mailbox_bulk_action", args=[mailbox.project_id]),
        {"action": "full", "scope": "selected", "selected": [mailbox.pk]},
        follow=True,
    )
    said = [text for _, text in messages(response)]
    assert any(services.QUEUE_DOWN in message for message in said), said
    (mailbox_pass,) = MailboxPass.objects.filter(mailbox=mailbox)
    assert mailbox_pass.state == "planning"

    redis_broker.start()
    finished(mailbox_pass, worker, timeout=90)
    assert_copied_once(source, target, 20)
