"""What the beat task does every minute: start the schedules that are due, and pause or
resume copying at the edges of run windows. ``now`` is a parameter so tests travel in time."""

import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from audit import log as audit
from mailboxes import services, verification
from mailboxes.identity import IdentityRefused
from mailboxes.models import ACTIVE_STATES, Mailbox, PassKind

from .models import RunWindow, Schedule, WindowPause, window_open

log = logging.getLogger(__name__)


def fire_due(now: datetime | None = None, scheduler=None) -> list[int]:
    """Start every due schedule once; returns the ids of those this call fired.

    Each schedule is claimed in its own transaction: the row is locked (PostgreSQL; another
    beat skips it) and ``run_at`` is moved on only if it still holds the value read, so two
    beats, or a rerun after a crash, never start one run twice (SQLite has no row locks but
    serialises writes, and the conditional update does the rest).
    """
    now = now or timezone.now()
    fired = []
    for pk in Schedule.objects.pending().due(now).values_list("pk", flat=True):
        if _fire(pk, now, scheduler):
            fired.append(pk)
    return fired


def _fire(pk: int, now: datetime, scheduler) -> bool:
    with transaction.atomic():
        rows = Schedule.objects.select_for_update(skip_locked=True).select_related("project")
        schedule = rows.pending().due(now).filter(pk=pk).first()
        if schedule is None:
            return False
        claimed = Schedule.objects.filter(pk=pk, run_at=schedule.run_at).update(
            run_at=schedule.following_run(now), fired_at=now, times_fired=schedule.times_fired + 1
        )
        if not claimed:
            return False
        try:
            with transaction.atomic():
                result = _start(schedule, scheduler)
        except IdentityRefused as refused:
            result = "Nothing was started: " + " ".join(refused.messages)
        Schedule.objects.filter(pk=pk).update(last_result=result)
        action = audit.Action.PASS_STARTED
        if schedule.kind == Schedule.Kind.VERIFY:
            action = audit.Action.VERIFICATION_STARTED
        audit.record(None, schedule.project, action, result, actor_label=audit.SCHEDULE)
    log.info("schedule %s (%s) fired: %s", pk, schedule, result)
    return True


def _start(schedule: Schedule, scheduler) -> str:
    mailboxes = list(schedule.mailboxes())
    if not mailboxes:
        return "No mailbox matched."
    if schedule.kind == Schedule.Kind.VERIFY:
        return f"Verification queued for {verification.queue(mailboxes)} mailboxes."
    passes = services.start_passes(
        mailboxes, schedule.kind, older_than_days=schedule.older_than_days, scheduler=scheduler
    )
    busy = len(mailboxes) - len(passes)
    note = f" ({busy} already had a pass under way)" if busy else ""
    return f"{PassKind(schedule.kind).label} pass started for {len(passes)} mailboxes{note}."


def enforce_windows(now: datetime | None = None, scheduler=None) -> None:
    """Outside its project's run windows a running mailbox is paused, whoever started it;
    inside them, the mailboxes a window paused resume. Checked every tick rather than only at
    the edges, so a pass started by hand in a closed window, or a tick missed at an edge, is
    caught up within a minute."""
    now = now or timezone.now()
    windows: dict[int, list[RunWindow]] = {}
    for window in RunWindow.objects.select_related("project"):
        windows.setdefault(window.project_id, []).append(window)
    for project_windows in windows.values():
        project = project_windows[0].project
        if window_open(project_windows, project, now):
            _resume(project, scheduler)
        else:
            _pause(project, now)


def _pause(project, now: datetime) -> None:
    with transaction.atomic():
        running = list(project.mailboxes.filter(state__in=ACTIVE_STATES))
        if not running:
            return
        for mailbox in running:
            WindowPause.objects.update_or_create(mailbox=mailbox, defaults={"paused_at": now})
        services.pause_mailboxes(running)
        detail = f"Run window closed: paused {len(running)} mailbox(es)"
        audit.record(None, project, audit.Action.PASS_PAUSED, detail, actor_label=audit.SCHEDULE)
    log.info("run window closed: paused %d mailboxes of project %s", len(running), project.pk)


def _resume(project, scheduler) -> None:
    with transaction.atomic():
        pauses = WindowPause.objects.filter(mailbox__project=project)
        paused = list(Mailbox.objects.filter(window_pause__in=pauses, state=Mailbox.State.PAUSED))
        if not pauses.exists():
            return
        pauses.delete()
        services.resume_mailboxes(paused, scheduler)
        detail = f"Run window open: resumed {len(paused)} mailbox(es)"
        audit.record(None, project, audit.Action.PASS_RESUMED, detail, actor_label=audit.SCHEDULE)
    log.info("run window open: resumed %d mailboxes of project %s", len(paused), project.pk)


def tick(now: datetime | None = None, scheduler=None) -> list[int]:
    """One beat: windows first, so a schedule due at a window's start finds it open."""
    now = now or timezone.now()
    enforce_windows(now, scheduler)
    return fire_due(now, scheduler)
