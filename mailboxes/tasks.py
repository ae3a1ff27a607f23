"""Celery tasks of the copy engine: thin wrappers that pass ids to ``mailboxes.engine``.

Retries of connection errors are not Celery's ``autoretry_for``: the attempt count and the
back-off live on the job in the database (the embedded broker forgets messages a killed worker
held), and ``copy_mailbox --inline`` must retry the same way without Celery.
"""

import logging
import os

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from . import engine, logins
from .models import FolderJob, MailboxPass

log = logging.getLogger(__name__)

TASK_OPTIONS = {"acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}


class CeleryScheduler:
    """Queues the engine's next steps once the transaction that decided them commits."""

    def plan(self, pass_id: int, countdown: float = 0) -> None:
        unqueued = MailboxPass.objects.filter(pk=pass_id, state=MailboxPass.State.PLANNING)
        transaction.on_commit(lambda: _publish(plan_mailbox_pass, (pass_id,), countdown, unqueued))

    def folder_job(self, job_id: int, token: str, countdown: float = 0) -> None:
        unqueued = FolderJob.objects.filter(pk=job_id, queue_token=token)
        transaction.on_commit(
            lambda: _publish(copy_folder_batch, (job_id, token), countdown, unqueued)
        )


def _publish(task, args: tuple, countdown: float, unqueued) -> None:
    """Send the task; with the broker unreachable, leave the work for the sweep.

    The step is already saved, so the request that decided it must not fail (an HTTP 500 for
    a pass that exists). Its lease is marked expired, so the next sweep after the broker
    returns queues it, rather than the queue grace much later.
    """
    try:
        task.apply_async(args, countdown=countdown or None)
    except OperationalError as exc:
        log.warning("task queue unreachable, %s%s left for the sweep: %s", task.name, args, exc)
        unqueued.update(lease_expires_at=timezone.now())


scheduler = CeleryScheduler()


@shared_task(**TASK_OPTIONS)
def plan_mailbox_pass(pass_id: int) -> None:
    engine.plan_pass(pass_id, scheduler)


@shared_task(bind=True, **TASK_OPTIONS)
def copy_folder_batch(self, job_id: int, token: str) -> None:
    owner = f"{self.request.hostname or 'worker'}:{os.getpid()}"
    with engine.leases_kept(owner):
        engine.run_folder_job(job_id, token, scheduler, owner)


@shared_task(**TASK_OPTIONS)
def requeue_stalled_jobs(node: str = "") -> int:
    return engine.requeue_stalled(scheduler, node)


@worker_ready.connect
def _resume_after_restart(sender, **kwargs):
    # Runs in a pool process, not here: the main process must not open database connections
    # its children would inherit. A worker restarted under a new name cannot tell its old
    # leases from a live worker's: the second sweep, one lease later, finds them expired.
    # A worker of the "checks" queue only never held a copy: it has nothing to resume.
    if settings.CELERY_TASK_DEFAULT_QUEUE not in {q.name for q in sender.task_consumer.queues}:
        return
    requeue_stalled_jobs.delay(sender.hostname)
    lease = settings.COPY_LEASE_SECONDS + 1
    requeue_stalled_jobs.apply_async(countdown=lease)


@shared_task(**TASK_OPTIONS)
def check_mailbox_logins(mailbox_ids: list[int]) -> None:
    """The "Test logins" of a few mailboxes (``logins.PER_TASK``); a rerun only tests again."""
    logins.check_mailboxes(mailbox_ids)


@shared_task(**TASK_OPTIONS)
def verify_mailbox(mailbox_id: int, deep: bool = False) -> None:
    """Verify one mailbox (``mailboxes.verification``): one task per mailbox, bounded by its
    folders; a server that cannot be reached ends it with a message."""
    from .models import Mailbox
    from .verification import verify

    mailbox = Mailbox.objects.filter(pk=mailbox_id).first()
    if mailbox is not None:
        verify(mailbox, deep)


@shared_task(**TASK_OPTIONS)
def discover_mailboxes(mailbox_ids: list[int]) -> None:
    """Discovery of a few mailboxes (``discovery.PER_TASK``); a rerun only discovers again."""
    from . import discovery

    discovery.discover_mailboxes(mailbox_ids)
    from notices.events import discovery_done

    discovery_done(mailbox_ids)
