"""Running passes from the command line (``copy_mailbox``, ``run_pass``): start them or take
over one a dead process left, run them through the worker or in this process, show progress,
and report every failure.

A pass is under way while it is planning, running or paused. The database says who holds it:
a planning pass's lease, and each active folder job's lease and ``lease_owner``. When no lease
is held any more (the process that ran it was killed), the command takes the pass over and
finishes it instead of refusing for good.
"""

import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.utils import timezone

from mailboxes import engine, identity, services
from mailboxes.models import FolderJob, ItemError, Mailbox, MailboxPass
from projects.models import Project

# Pass states the waiting ends on: finished, or paused by someone (nothing more will happen).
SETTLED = (MailboxPass.State.DONE, MailboxPass.State.FAILED, MailboxPass.State.PAUSED)
FAILURES_SHOWN = 20
INLINE_PREFIX = "inline-"


def inline_owner() -> str:
    return f"{INLINE_PREFIX}{socket.gethostname()}:{os.getpid()}"


def worker_answers() -> bool:
    from migrator.celery import app

    try:
        return bool(app.control.ping(timeout=1.0))
    except OSError:
        return False


def _worker_scheduler():
    from mailboxes.tasks import scheduler

    return scheduler


def _local_process_gone(owner: str) -> bool:
    """Whether ``owner`` is an in-process run (``copy_mailbox``/``run_pass``) on this machine
    whose process has ended: its lease is then held by no one, whatever its expiry says."""
    name, _, pid = owner.rpartition(":")
    if name != f"{INLINE_PREFIX}{socket.gethostname()}" or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclass
class Hold:
    """Who holds a pass under way, until when."""

    who: str
    until: object  # datetime

    def message(self, mailbox_pass: MailboxPass) -> str:
        until = timezone.localtime(self.until).strftime("%H:%M:%S")
        return (
            f"A {mailbox_pass.get_kind_display().lower()} pass of {mailbox_pass.mailbox} is "
            f"already under way: {self.who} until {until}. Wait for it to finish (the project "
            f"page shows it) or pause it there; if that process has died, run this again after "
            f"{until} to take the pass over."
        )


class Holders:
    """Who holds a pass under way: a live lease, except one of an in-process run on this
    machine whose process has ended, or a queued message when no worker answers (then only a
    command's own queue, perhaps a killed one's, held it). Asks for workers at most once."""

    def __init__(self):
        self._workers = None

    @property
    def workers(self) -> bool:
        if self._workers is None:
            self._workers = worker_answers()
        return self._workers

    def hold(self, mailbox_pass: MailboxPass) -> Hold | None:
        """Who holds ``mailbox_pass``; None when no one does and it may be taken over."""
        now = timezone.now()
        if mailbox_pass.state == MailboxPass.State.PLANNING:
            until = mailbox_pass.lease_expires_at
            if until is None or until <= now:
                return None
            # A planning task that runs holds a lease of COPY_LEASE_SECONDS; a longer one is a
            # queued message, which without a worker only a (perhaps killed) command holds.
            running = until <= now + timedelta(seconds=settings.COPY_LEASE_SECONDS + 5)
            if not running and not self.workers:
                return None
            return Hold(
                "its folders are being listed" if running else "its listing is queued", until
            )
        jobs = mailbox_pass.folder_jobs.filter(
            state__in=engine.ACTIVE_JOB_STATES, lease_expires_at__gt=now
        ).order_by("-lease_expires_at")
        for job in jobs:
            if job.lease_owner:
                if _local_process_gone(job.lease_owner):
                    continue
                return Hold(
                    f"{job.lease_owner} copies folder {job.source_path}", job.lease_expires_at
                )
            if self.workers:
                return Hold(
                    f"folder {job.source_path} is queued for a worker", job.lease_expires_at
                )
        return None


def take_over(mailbox_pass: MailboxPass, scheduler) -> None:
    """Queue the work of a pass no one holds any more with ``scheduler``. Folder jobs get new
    queue tokens, so any message the dead process left behind is a no-op; the ids it was
    storing (``inflight``) are still looked for on the target first."""
    with transaction.atomic():
        current = MailboxPass.objects.select_for_update().get(pk=mailbox_pass.pk)
        if current.state == MailboxPass.State.PLANNING:
            engine.queue_plan(current, scheduler)
            return
        current.folder_jobs.filter(state__in=engine.ACTIVE_JOB_STATES).update(
            state=FolderJob.State.PENDING, lease_owner="", lease_expires_at=None, queue_token=""
        )
        engine.fill_pass(current, scheduler)


class Runner:
    """Starts passes (or takes them over) and runs them to their end, showing progress.

    ``inline``: in this process through ``engine.InlineScheduler``; otherwise through the
    worker when one answers a ping, else in this process too.
    """

    def __init__(self, stderr, inline: bool = False):
        self.stderr = stderr
        self.holders = Holders()
        if not inline and not self.holders.workers:
            self.stderr.write("No worker answered; copying in this process.")
            inline = True
        self.inline = inline
        self.scheduler = engine.InlineScheduler(inline_owner()) if inline else None

    def start(self, mailboxes, kind: str, older_than: int | None = None) -> list[MailboxPass]:
        """A pass per mailbox, in their order: a new one, or the one a dead process left.

        Refuses (CommandError, nothing started) when a live process holds a pass of one of
        them, or when the identity guard refuses them."""
        mailboxes = list(mailboxes)
        under_way = {
            p.mailbox_id: p
            for p in MailboxPass.objects.filter(
                mailbox__in=mailboxes, state__in=services.UNFINISHED_PASS_STATES
            ).select_related("mailbox")
        }
        refusals = []
        for mailbox_pass in under_way.values():
            if mailbox_pass.state == MailboxPass.State.PAUSED:
                refusals.append(
                    f"A {mailbox_pass.get_kind_display().lower()} pass of {mailbox_pass.mailbox} "
                    "is paused: resume it on the project page, or let it be."
                )
                continue
            hold = self.holders.hold(mailbox_pass)
            if hold is not None:
                refusals.append(hold.message(mailbox_pass))
        if refusals:
            raise CommandError("\n".join(refusals))
        try:
            identity.check(mailboxes)
        except identity.IdentityRefused as exc:
            raise CommandError(
                "Refused before any copy:\n" + "\n".join(f"  {m}" for m in exc.messages)
            ) from None
        scheduler = self.scheduler or _worker_scheduler()
        for mailbox_pass in under_way.values():
            started = timezone.localtime(mailbox_pass.started_at)
            self.stderr.write(
                f"Taking over the {mailbox_pass.get_kind_display().lower()} pass of "
                f"{mailbox_pass.mailbox} started {started:%Y-%m-%d %H:%M:%S}: no process "
                "holds it any more."
            )
            take_over(mailbox_pass, scheduler)
        fresh = [m for m in mailboxes if m.pk not in under_way]
        created = (
            services.start_passes(fresh, kind, older_than, scheduler=scheduler) if fresh else []
        )
        by_mailbox = {**under_way, **{p.mailbox_id: p for p in created}}
        return [by_mailbox[m.pk] for m in mailboxes if m.pk in by_mailbox]

    def run(self, passes: list[MailboxPass]) -> None:
        """Run (or wait for) ``passes`` until each is done, failed or paused."""
        ids = [p.pk for p in passes]
        stop = threading.Event()
        progress = threading.Thread(target=self._show_progress, args=(ids, stop))
        progress.start()
        try:
            if self.inline:
                self.scheduler.run()
            else:
                while MailboxPass.objects.filter(pk__in=ids).exclude(state__in=SETTLED).exists():
                    time.sleep(0.2)
        finally:
            stop.set()
            progress.join()
        for mailbox_pass in passes:
            mailbox_pass.refresh_from_db()

    # -- progress on stderr --------------------------------------------------------------

    def _show_progress(self, ids: list[int], stop: threading.Event) -> None:
        self._width = 0
        try:
            while not stop.wait(0.5):
                self._draw(ids)
            self._draw(ids)
            self.stderr.write("")
        finally:
            connection.close()

    def _draw(self, ids: list[int]) -> None:
        passes = list(MailboxPass.objects.filter(pk__in=ids).select_related("mailbox"))
        line = progress_line(passes)
        padding = " " * max(0, self._width - len(line))
        self._width = len(line)
        self.stderr.write(f"\r{line}{padding}", ending="")
        self.stderr.flush()


def progress_line(passes: list[MailboxPass], width: int = 30) -> str:
    """One line: a bar, done/to do of these passes, and what is happening (a planning
    retry's note rather than a silent "Planning")."""
    done = sum(p.items_done for p in passes)
    total = sum(p.items_total for p in passes)
    copied = sum(p.bytes_copied for p in passes)
    percent = None
    if total and all(p.listing_complete for p in passes):
        percent = min(100, 100 * done // total)
    elif all(p.state == MailboxPass.State.DONE for p in passes):
        percent = 100  # nothing to do, and done (a failed pass with nothing done is no 100 %)
    filled = width * (percent or 0) // 100
    bar = "#" * filled + "-" * (width - filled)
    shown = "  —" if percent is None else f"{percent:3d}"
    notes = [p for p in passes if p.state == MailboxPass.State.PLANNING and p.error]
    if len(passes) == 1:
        status = notes[0].error if notes else passes[0].get_state_display()
    else:
        settled = sum(p.state in SETTLED for p in passes)
        status = f"{settled} of {len(passes)} mailboxes finished"
        if notes:
            status += f"; {notes[0].mailbox}: {notes[0].error}"
    return f"[{bar}] {shown}% {done}/{total} items {copied / 1e6:.1f} MB {status}"


# -- the report ----------------------------------------------------------------------------


def failures(mailbox_pass: MailboxPass, cap: int | None = None) -> list[str]:
    """Every failure of a pass, one line each (at most ``cap``, then a count of the rest):
    the mailbox's when it stopped as a whole, each folder that failed as a whole, each item
    with its folder and the server's reason."""
    cap = FAILURES_SHOWN if cap is None else cap
    lines = []
    failed_jobs = list(
        mailbox_pass.folder_jobs.filter(state=FolderJob.State.FAILED).order_by("source_path")
    )
    # A mailbox stopped as a whole (refused login, unreachable server, unreadable secret)
    # gives its pass and every unfinished folder the same message: say it once.
    stopped = mailbox_pass.state == MailboxPass.State.FAILED and (
        not failed_jobs or any(job.error == mailbox_pass.error for job in failed_jobs)
    )
    if stopped and mailbox_pass.error:
        lines.append(f"mailbox: {mailbox_pass.error}")
    with_items = set(
        ItemError.objects.filter(folder_job__mailbox_pass=mailbox_pass).values_list(
            "folder_job_id", flat=True
        )
    )
    for job in failed_jobs:
        if stopped and job.error == mailbox_pass.error:
            continue
        count = (
            f" ({job.items_failed} items)" if job.items_failed and job.pk not in with_items else ""
        )
        lines.append(f"folder {job.source_path}{count}: {job.error or 'failed'}")
    errors = ItemError.objects.filter(folder_job__mailbox_pass=mailbox_pass).select_related(
        "folder_job"
    )
    total = len(lines) + errors.count()
    room = max(0, cap - len(lines))
    for error in errors.order_by("folder_job__source_path", "id")[:room]:
        lines.append(
            f"folder {error.folder_job.source_path}, item {error.source_id}: {error.reason}"
        )
    shown = lines[:cap]
    if total > len(shown):
        shown.append(f"… and {total - len(shown)} more")
    return shown


def succeeded(mailbox_pass: MailboxPass) -> bool:
    """Done with nothing failed: the only outcome a command exits 0 on."""
    mailbox = Mailbox.objects.get(pk=mailbox_pass.mailbox_id)
    return (
        mailbox_pass.state == MailboxPass.State.DONE
        and not mailbox_pass.items_failed
        and mailbox.state == Mailbox.State.DONE
    )


def add_selection_arguments(parser) -> None:
    """PROJECT_ID and ``--mailbox ADDRESS ...``: which mailboxes a command works on."""
    parser.add_argument("project_id", type=int)
    parser.add_argument(
        "--mailbox",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="only this mailbox (its source address; repeatable); default: all",
    )


def selected_mailboxes(project_id: int, addresses: list[str]) -> list[Mailbox]:
    """The project's mailboxes (or the named ones), sources and targets loaded; an unknown
    project or address is bad input (exit 2)."""
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        raise CommandError(f"There is no project {project_id}.", returncode=2)
    mailboxes = project.mailboxes.select_related("project__source", "project__target")
    mailboxes = list(mailboxes.order_by("source_address"))
    if not mailboxes:
        raise CommandError(f"Project {project.pk} has no mailboxes.", returncode=2)
    if not addresses:
        return mailboxes
    wanted = {address.strip().lower() for address in addresses}
    found = [m for m in mailboxes if m.source_address.lower() in wanted]
    unknown = sorted(wanted - {m.source_address.lower() for m in found})
    if unknown:
        raise CommandError(
            f"Project {project.pk} has no mailbox {', '.join(unknown)}.", returncode=2
        )
    return found
