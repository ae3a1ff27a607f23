"""A task message delivered twice (Redis redelivers what a worker held past the visibility
timeout): the second delivery finds the folder leased to the first and copies nothing."""

import pytest

from mailboxes import engine, services
from mailboxes.models import CopiedItem, FolderJob
from tests.engine.conftest import make_mailbox
from tests.engine.messages import bulk
from tests.engine.snapshots import snapshot

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_second_delivery_of_a_running_job_copies_nothing(dovecot_a, dovecot_b, dovecot_user):
    source, target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
    source.load("INBOX", bulk(12))
    mailbox = make_mailbox(source.endpoint(), target.endpoint(), source.name, target.name)
    scheduler = engine.InlineScheduler("test:1")
    services.start_passes([mailbox], "full", scheduler=scheduler)
    scheduler.run(steps=1)  # planning only: the folder job is queued with its token
    job = FolderJob.objects.get(mailbox=mailbox, source_path="INBOX")
    # The first delivery holds the job, as a worker in the middle of a batch does.
    assert engine._claim(job.pk, job.queue_token, "worker-a:1", scheduler) is not None

    engine.run_folder_job(job.pk, job.queue_token, engine.InlineScheduler("b:2"), "worker-b:2")

    assert CopiedItem.objects.count() == 0
    assert snapshot(target.endpoint(), target.name).get(("INBOX",), {}) == {}
    job.refresh_from_db()
    assert (job.state, job.lease_owner) == ("running", "worker-a:1")

    # The first delivery goes on and copies the folder once.
    engine.run_folder_job(job.pk, job.queue_token, scheduler, "worker-a:1")
    scheduler.run()
    copied = snapshot(target.endpoint(), target.name)[("INBOX",)]
    assert copied == snapshot(source.endpoint(), source.name)[("INBOX",)]
    assert set(copied.values()) == {1} and CopiedItem.objects.count() == 12
