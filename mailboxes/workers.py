"""Is a copy worker there? Each one writes a heartbeat to the database from its main process;
the pages say so when none has answered for WORKER_SILENT_SECONDS while work is waiting.

The database, not the broker, answers: a page must not block on a Celery ping, and a worker
that died (SIGKILL, out of memory, a host gone) cannot say so itself.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import bootsteps
from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Count, Max, Q
from django.utils import timezone

from .models import ACTIVE_STATES, FolderJob, MailboxPass, WorkerHeartbeat

log = logging.getLogger(__name__)


@dataclass
class Silence:
    """No worker has answered since ``since`` (None: never) while this much waits for one."""

    since: datetime | None
    mailboxes: int
    folder_jobs: int


def silence(mailboxes) -> Silence | None:
    """The silence that holds up ``mailboxes``, or None when a worker answered lately or
    nothing among them waits for one."""
    since = WorkerHeartbeat.objects.aggregate(last=Max("seen_at"))["last"]
    quiet = timezone.now() - timedelta(seconds=settings.WORKER_SILENT_SECONDS)
    if since is not None and since >= quiet:
        return None
    unfinished = Q(
        folder_jobs__state__in=(FolderJob.State.PENDING, FolderJob.State.RUNNING),
        folder_jobs__mailbox_pass__state=MailboxPass.State.RUNNING,
    )
    waiting = mailboxes.filter(state__in=ACTIVE_STATES).aggregate(
        mailboxes=Count("pk", distinct=True), jobs=Count("folder_jobs", filter=unfinished)
    )
    if not waiting["mailboxes"]:
        return None
    return Silence(since, waiting["mailboxes"], waiting["jobs"])


def beat(hostname: str) -> None:
    try:
        WorkerHeartbeat.beat(hostname)
    except DatabaseError as exc:
        log.warning("could not record the heartbeat of %s: %s", hostname, exc)
    finally:
        # The main process keeps no connection between beats: pool processes it forks later
        # must not inherit one, and a database restart must not leave a dead one here.
        connection.close()


class HeartbeatStep(bootsteps.StartStopStep):
    """Records a copy worker every WORKER_HEARTBEAT_SECONDS on the worker's own timer, in the
    main process's event loop. Not a thread: a thread holding a lock while the pool forks
    leaves that lock held for ever in the child. A "checks"-only worker copies nothing, so it
    does not beat: its answer would hide a dead copy worker."""

    requires = ("celery.worker.components:Timer",)

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.entry = None

    def include_if(self, worker):
        return settings.CELERY_TASK_DEFAULT_QUEUE in worker.app.amqp.queues.consume_from

    def start(self, worker):
        beat(worker.hostname)
        self.entry = worker.timer.call_repeatedly(
            settings.WORKER_HEARTBEAT_SECONDS, beat, (worker.hostname,)
        )

    def stop(self, worker):
        if self.entry is not None:
            self.entry.cancel()
