"""Starting, pausing, resuming and retrying copies: what the pages and commands call.

Each function takes mailboxes (a queryset or a list), changes their state in one transaction
and queues the work once it commits.
"""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from projects.models import Project

from . import engine, identity, verification
from .models import FolderJob, Mailbox, MailboxPass, PassKind

# Mailboxes handled per round of queries: well under every database's limit on parameters.
CHUNK = 500
UNFINISHED_PASS_STATES = (
    MailboxPass.State.PLANNING,
    MailboxPass.State.RUNNING,
    MailboxPass.State.PAUSED,
)


def _scheduler():
    from .tasks import scheduler

    return scheduler


def _chunks(ids: list[int]):
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def start_passes(mailboxes, kind: str, older_than_days: int | None = None, scheduler=None):
    """A new pass per mailbox that has none under way; returns the passes created.

    Set-based, a few queries per chunk of mailboxes, so that "pre-stage all 10,000" answers in
    seconds, within one transaction: either every pass is queued or none is. Mailboxes that
    resolve to one account are refused first (``identity.IdentityRefused``), nothing started.
    """
    kind = PassKind(kind)
    identity.check(mailboxes)
    scheduler = scheduler or _scheduler()
    now = timezone.now()
    before = now - timedelta(days=older_than_days or 0) if kind == PassKind.PRESTAGE else None
    lease = engine.queued_lease()
    created = []
    with transaction.atomic():
        for chunk in _chunks([mailbox.pk for mailbox in mailboxes]):
            busy = set(
                MailboxPass.objects.filter(
                    mailbox_id__in=chunk, state__in=UNFINISHED_PASS_STATES
                ).values_list("mailbox_id", flat=True)
            )
            free = [pk for pk in chunk if pk not in busy]
            if kind == PassKind.MISSING:
                # Plans like a full pass: only items without a record are copied.
                verification.forget_missing(free)
            passes = MailboxPass.objects.bulk_create(
                MailboxPass(mailbox_id=pk, kind=kind, before=before, lease_expires_at=lease)
                for pk in free
            )
            # A mailbox's pass figures show its latest pass.
            Mailbox.objects.filter(pk__in=free).queue_pass()
            for mailbox_pass in passes:
                scheduler.plan(mailbox_pass.pk)
            created.extend(passes)
        if created:  # a project whose copying began is no longer planning
            projects = {mailbox.project_id for mailbox in mailboxes}
            Project.objects.filter(pk__in=projects, state=Project.State.PLANNING).update(
                state=Project.State.PRESTAGE
            )
    return created


QUEUE_DOWN = "The pass is saved and will start when the task queue is reachable again."


def unqueued(passes) -> int:
    """How many of ``passes`` the task queue did not take (``tasks._publish`` marks them)."""
    return MailboxPass.objects.filter(
        pk__in=[mailbox_pass.pk for mailbox_pass in passes],
        state=MailboxPass.State.PLANNING,
        lease_expires_at__lte=timezone.now(),
    ).count()


def pause_mailboxes(mailboxes) -> None:
    """Stop taking new batches; the batch in flight finishes and is recorded."""
    with transaction.atomic():
        for chunk in _chunks([mailbox.pk for mailbox in mailboxes]):
            running = MailboxPass.objects.filter(
                mailbox_id__in=chunk, state=MailboxPass.State.RUNNING
            )
            FolderJob.objects.filter(mailbox_pass__in=running).pause()
            running.pause()
            Mailbox.objects.filter(pk__in=chunk).pause()


def resume_mailboxes(mailboxes, scheduler=None) -> None:
    scheduler = scheduler or _scheduler()
    with transaction.atomic():
        for mailbox in mailboxes:
            if mailbox.state != Mailbox.State.PAUSED:
                continue
            paused = mailbox.passes.filter(state=MailboxPass.State.PAUSED)
            FolderJob.objects.filter(mailbox_pass__in=paused).resume()
            paused.resume()
            latest = mailbox.passes.first()
            listed = latest is not None and latest.state != MailboxPass.State.PLANNING
            Mailbox.objects.filter(pk=mailbox.pk).resume(listed)
            _restart_latest(mailbox, scheduler)


RETRYABLE_STATES = (Mailbox.State.FAILED, Mailbox.State.DONE_WITH_ERRORS)


def retry_failed(mailboxes, scheduler=None) -> int:
    """Run the failed folders of each failed mailbox's latest pass again (or its planning);
    returns how many mailboxes were queued (only those that failed)."""
    scheduler = scheduler or _scheduler()
    queued = 0
    with transaction.atomic():
        for mailbox in mailboxes:
            latest = mailbox.passes.first()
            if mailbox.state not in RETRYABLE_STATES or latest is None:
                continue
            if latest.state != MailboxPass.State.FAILED:
                continue
            latest.folder_jobs.retry()
            has_jobs = latest.folder_jobs.exists()
            MailboxPass.objects.filter(pk=latest.pk).retry(listed=has_jobs)
            Mailbox.objects.filter(pk=mailbox.pk).retry(listed=has_jobs)
            _restart_latest(mailbox, scheduler)
            queued += 1
    return queued


def _restart_latest(mailbox: Mailbox, scheduler) -> None:
    latest = mailbox.passes.first()
    if latest.state == MailboxPass.State.PLANNING:
        engine.queue_plan(latest, scheduler)
    elif latest.state == MailboxPass.State.RUNNING:
        engine.fill_pass(latest, scheduler)
