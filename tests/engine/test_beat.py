"""The embedded beat as production runs it (``celery worker --beat``): a folder job whose
worker died comes back through the periodic sweep alone and finishes, nothing else asks."""

from datetime import timedelta

import pytest
from django.utils import timezone

from mailboxes import engine, services
from mailboxes.models import FolderJob, MailboxPass
from tests.servers.worker import wait_until

from .conftest import make_mailbox
from .messages import bulk

pytestmark = pytest.mark.django_db(transaction=True)

DEAD_WORKER = "lost-worker@nowhere:4242"
# A long lease in the worker keeps its own start-up sweeps (now, and one lease later) away:
# only beat's sweep every second can find the dead worker's job.
WORKER_ENV = {"COPY_SWEEP_SECONDS": "1", "COPY_LEASE_SECONDS": "120", "COPY_BATCH_ITEMS": "5"}


def stalled_pass(source, target):
    """A planned pass whose folder jobs a dead worker holds; their messages are lost."""
    mailbox = make_mailbox(source.endpoint(), target.endpoint(), source.name, target.name)
    lost = engine.InlineScheduler(DEAD_WORKER)
    (mailbox_pass,) = services.start_passes([mailbox], "full", scheduler=lost)
    lost.run(steps=1)  # the plan only: the folder jobs it queued are never run
    mailbox_pass.refresh_from_db()
    assert mailbox_pass.state == MailboxPass.State.RUNNING
    return mailbox_pass


@pytest.mark.slow
def test_beat_requeues_a_dead_workers_job_and_it_finishes(
    start_worker, dovecot_a, dovecot_b, dovecot_user
):
    source, target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
    source.load("INBOX", bulk(40, owner=source.name))
    mailbox_pass = stalled_pass(source, target)
    jobs = FolderJob.objects.filter(mailbox_pass=mailbox_pass)
    jobs.update(
        state=FolderJob.State.RUNNING,
        lease_owner=DEAD_WORKER,
        lease_expires_at=timezone.now() + timedelta(hours=1),
    )
    worker = start_worker("worker", env=WORKER_ENV, beat=True)
    # Past the worker's start-up sweep (not its jobs, not expired), the lease runs out.
    jobs.update(lease_expires_at=timezone.now() + timedelta(seconds=3))
    wait_until(
        lambda: MailboxPass.objects.get(pk=mailbox_pass.pk).state == "done",
        timeout=60,
        message=lambda: (
            f"the stalled pass never finished: "
            f"{list(FolderJob.objects.values_list('state', 'lease_owner', 'error'))}"
            f"\n{worker.log()[-3000:]}"
        ),
    )
    assert "requeue-stalled-copy-jobs" in worker.log()
    assert target.holdings().folders["INBOX"] == source.holdings().folders["INBOX"]
