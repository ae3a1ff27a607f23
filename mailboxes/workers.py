"""Is a copy worker there? Each one writes a heartbeat to the database from its main process;
the pages say so when none has answered for WORKER_SILENT_SECONDS while work is waiting.

The database, not the broker, answers: a page must not block on a Celery ping, and a worker
that died (SIGKILL, out of memory, a host gone) cannot say so itself.
"""

import logging
import threading
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


class Heartbeat:
    """A thread of the worker's main process that records the worker every
    WORKER_HEARTBEAT_SECONDS. A thread, not the main thread: Django's connections belong to
    their thread, so pool processes forked later never share this one."""

    def __init__(self, hostname: str):
        self.hostname = hostname
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(5)

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                WorkerHeartbeat.beat(self.hostname)
            except DatabaseError as exc:
                log.warning("could not record the heartbeat of %s: %s", self.hostname, exc)
            finally:
                connection.close()  # a database restart must not leave a dead connection here
            self.stopping.wait(settings.WORKER_HEARTBEAT_SECONDS)


class HeartbeatStep(bootsteps.StartStopStep):
    """Starts the heartbeat with a worker that takes copies (a "checks"-only worker copies
    nothing, so its answer would hide a dead copy worker)."""

    def create(self, worker):
        consumed = worker.app.amqp.queues.consume_from
        if settings.CELERY_TASK_DEFAULT_QUEUE not in consumed:
            return None
        return Heartbeat(worker.hostname)
