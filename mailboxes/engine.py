"""The copy engine: plan a pass, copy a folder in bounded batches, recover from dead workers.

Plain functions taking ids, driven by the Celery tasks (``mailboxes.tasks``) and, in-process,
by ``copy_mailbox --inline`` through the same calls. What to run next is handed to a
*scheduler* (``plan(pass_id, countdown)``, ``folder_job(job_id, token, countdown)``): Celery's
queues on commit, the inline one runs the steps in order.

The database, not the broker, is the source of truth: a folder job holds a lease while a worker
copies it and a queue token naming the one task message allowed to work on it. A worker that
dies leaves an expired lease; ``requeue_stalled`` queues the job again with a new token, and the
ids it was storing (``FolderJob.inflight``) are looked for on the target by fingerprint first.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import logging
import random
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from projects.models import Project

from .budget import default_store
from .connectors import AuthError, ConnectorError, Folder, TransientError, open_connector
from .connectors.base import RFC822, ThrottleNote, header_block, munged_fingerprint
from .connectors.folders import Override, join_path, place_folders, rebase, split_path
from .models import (
    SIDES,
    CopiedItem,
    Counters,
    FolderJob,
    ItemError,
    Mailbox,
    MailboxPass,
    PassKind,
    Throttling,
)

log = logging.getLogger(__name__)

ACTIVE_JOB_STATES = (FolderJob.State.PENDING, FolderJob.State.RUNNING)
# Source ids per query when looking up copies whose flags changed (SQLite's variable limit).
FLAG_LOOKUP_CHUNK = 500


def batch_limits() -> tuple[int, int]:
    return settings.COPY_BATCH_ITEMS, settings.COPY_BATCH_BYTES


def _lease() -> timedelta:
    return timedelta(seconds=settings.COPY_LEASE_SECONDS)


# --- connectors ---------------------------------------------------------------------------


class _Side:
    """A connector whose errors say which side (source or target) they came from."""

    def __init__(self, connector, name: str):
        self._connector = connector
        self.name = name

    def __getattr__(self, attr):
        value = getattr(self._connector, attr)
        if not callable(value):
            return value

        def call(*args, **kwargs):
            try:
                return value(*args, **kwargs)
            except ConnectorError as exc:
                exc.side = getattr(exc, "side", self.name)
                raise
            except OSError as exc:
                # A socket or disk error the connector did not translate is still a connection
                # problem worth retrying, never a crash.
                error = TransientError(exc.strerror or str(exc) or type(exc).__name__)
                error.side = self.name
                raise error from exc

        return call


class _Pool:
    """Connectors left open between the tasks of one process, so a mailbox's next batch or
    folder does not log in again (a login costs more than a small folder's copy). Idle ones
    are closed after a few seconds: they must not hold the tenant's connections for long."""

    IDLE_SECONDS = 5.0

    def __init__(self):
        self._idle: dict[tuple, tuple[_Side, float]] = {}

    def take(self, key: tuple) -> _Side | None:
        now = time.monotonic()
        for stale in [k for k, (_, since) in self._idle.items() if now - since > self.IDLE_SECONDS]:
            _close_quietly(self._idle.pop(stale)[0])
        entry = self._idle.pop(key, None)
        return entry[0] if entry else None

    def give(self, key: tuple, side: _Side) -> None:
        previous = self._idle.pop(key, None)
        if previous:
            _close_quietly(previous[0])
        self._idle[key] = (side, time.monotonic())


_pool = _Pool()


def _pool_key(name: str, endpoint, address: str) -> tuple:
    # The secret is part of the identity (a changed password must log in again), hashed so
    # the key never holds it in clear.
    secret = hashlib.sha256(endpoint.secret.encode()).hexdigest()
    return (name, address, repr(endpoint), secret)


@contextmanager
def _connectors(mailbox: Mailbox):
    opened: list[tuple[tuple, _Side]] = []
    try:
        for name in SIDES:
            address = mailbox.address(name)
            try:
                endpoint = mailbox.endpoint(name)
            except ConnectorError as exc:
                exc.side = name
                raise
            key = _pool_key(name, endpoint, address)
            side = _pool.take(key)
            if side is None:
                connector = open_connector(endpoint, address)
                connector.budget_store = default_store()
                side = _Side(connector, name)
                opened.append((key, side))
                side.open()
            else:
                opened.append((key, side))
        yield [side for _, side in opened]
    except BaseException as exc:
        _record_throttling(mailbox, [side for _, side in opened], exc)
        for _, side in opened:
            _close_quietly(side)
        raise
    _record_throttling(mailbox, [side for _, side in opened])
    for key, side in opened:
        _pool.give(key, side)


def _record_throttling(mailbox: Mailbox, sides: list[_Side], exc=None) -> None:
    """Record on the mailbox every throttling its connectors waited out, and the one handed
    back to the engine: a TransientError carrying the service's retry_after (connectors raise
    it with a hint only when the service said how long to wait)."""
    notes = [note for side in sides for note in side.take_throttled()]
    if isinstance(exc, TransientError) and exc.retry_after:
        side = next((s for s in sides if s.name == getattr(exc, "side", None)), None)
        if side is not None:
            notes.append(ThrottleNote(side.service, str(exc), exc.retry_after, timezone.now()))
    if not notes:
        return
    try:
        Throttling.record(mailbox.pk, notes)
    except DatabaseError:
        if exc is None:
            raise
        # The database failing is what went wrong: that error, not this record, must go on.
        log.warning("throttling of %s not recorded: the database failed", mailbox)


def _close_quietly(side: _Side) -> None:
    try:
        side.close()
    except (ConnectorError, OSError):
        log.info("closing the %s connection failed; it is dropped", side.name)


def describe(exc: ConnectorError) -> str:
    """The message a consultant sees: which server, and what it said."""
    side = getattr(exc, "side", "")
    if isinstance(exc, AuthError):
        return f"The {side} server refused the credentials: {exc}"
    return f"{side.capitalize()} server: {exc}" if side else str(exc)


def unexpected(exc: Exception) -> str:
    """The message for an error no connector foresaw; the traceback (and any SQL a database
    error quotes) is in the worker log, the page gets the first line."""
    first = next(iter(str(exc).splitlines()), "")[:300]
    return f"Stopped by an unexpected error ({type(exc).__name__}: {first}); see the worker log."


# --- scheduling ---------------------------------------------------------------------------


def queued_lease(countdown: float = 0):
    """Until when a queued step may wait before the sweep counts its message as lost."""
    grace = settings.COPY_QUEUE_GRACE_SECONDS
    return timezone.now() + timedelta(seconds=countdown + grace)


def queue_plan(mailbox_pass: MailboxPass, scheduler, countdown: float = 0) -> None:
    mailbox_pass.lease_expires_at = queued_lease(countdown)
    mailbox_pass.save(update_fields=["lease_expires_at"])
    scheduler.plan(mailbox_pass.pk, countdown)


def _reserve(job: FolderJob, countdown: float = 0) -> str:
    """A new token for the job: any older task message for it becomes a no-op."""
    job.queue_token = uuid.uuid4().hex
    job.lease_owner = ""
    job.lease_expires_at = queued_lease(countdown)
    job.save(update_fields=["queue_token", "lease_owner", "lease_expires_at"])
    return job.queue_token


def _queue_job(job: FolderJob, scheduler, countdown: float = 0) -> None:
    scheduler.folder_job(job.pk, _reserve(job, countdown), countdown)


def fill_pass(mailbox_pass: MailboxPass, scheduler, take: bool = False):
    """Queue pending folders up to the per-mailbox parallelism; close the pass when all ended.

    With ``take``, the first of them is reserved for the caller instead, returned as
    ``(job id, token)``: a task that finished a folder goes on with the next one without a
    round trip through the broker.
    """
    # Two folders ending at once must not hand out the same free slot twice.
    MailboxPass.objects.select_for_update().filter(pk=mailbox_pass.pk).first()
    jobs = mailbox_pass.folder_jobs
    active = jobs.filter(state__in=ACTIVE_JOB_STATES, lease_expires_at__isnull=False).count()
    slots = settings.COPY_FOLDERS_IN_PARALLEL - active
    taken = None
    if slots > 0:
        waiting = jobs.filter(state=FolderJob.State.PENDING, lease_expires_at__isnull=True)
        for job in waiting.order_by("id")[:slots]:
            if take and taken is None:
                taken = (job.pk, _reserve(job))
            else:
                _queue_job(job, scheduler)
    if not jobs.exclude(state__in=(FolderJob.State.DONE, FolderJob.State.FAILED)).exists():
        _finish_pass(mailbox_pass)
    return taken


def _finish_pass(mailbox_pass: MailboxPass) -> None:
    failed = mailbox_pass.folder_jobs.filter(state=FolderJob.State.FAILED)
    first = failed.exclude(error="").first()
    error = ""
    if first is not None:
        error = f"{failed.count()} folder(s) failed; {first.source_path}: {first.error}"
    MailboxPass.objects.filter(pk=mailbox_pass.pk).finish(error)
    items_failed = MailboxPass.objects.filter(pk=mailbox_pass.pk, items_failed__gt=0).exists()
    Mailbox.objects.filter(pk=mailbox_pass.mailbox_id).finish(error, with_errors=items_failed)
    from .verification import after_pass  # verification reads the engine's record

    after_pass(mailbox_pass)
    from notices.events import pass_finished  # notices read the engine's record too

    pass_finished(mailbox_pass)


def fail_mailbox(mailbox_pass: MailboxPass, message: str) -> None:
    """Stop the mailbox: its pass and every unfinished folder fail with ``message``."""
    with transaction.atomic():
        mailbox_pass.folder_jobs.fail(message)
        MailboxPass.objects.filter(pk=mailbox_pass.pk).fail(message)
        Mailbox.objects.filter(pk=mailbox_pass.mailbox_id).fail(message)
    from notices.events import mailbox_failed

    mailbox_failed(mailbox_pass, message)


def backoff(retries: int, retry_after: float | None) -> float:
    """Exponential backoff with jitter, never shorter than the server's own hint."""
    base = settings.COPY_RETRY_BASE_SECONDS
    delay = min(base * 2 ** (retries - 1), settings.COPY_RETRY_MAX_SECONDS)
    return max(delay * random.uniform(1.0, 1.25), retry_after or 0)


def _max_retries() -> int:
    return settings.COPY_MAX_RETRIES


# --- planning -----------------------------------------------------------------------------


def plan_pass(pass_id: int, scheduler) -> None:
    """Discover the source folders, place them on the target, create the folder jobs."""
    with transaction.atomic():
        mailbox_pass = (
            MailboxPass.objects.select_for_update()
            .select_related("mailbox__project__source", "mailbox__project__target")
            .filter(pk=pass_id, state=MailboxPass.State.PLANNING)
            .first()
        )
        if mailbox_pass is None or mailbox_pass.mailbox.state == Mailbox.State.PAUSED:
            return
        mailbox_pass.lease_expires_at = timezone.now() + _lease()
        mailbox_pass.save(update_fields=["lease_expires_at"])
        Mailbox.objects.filter(pk=mailbox_pass.mailbox_id).listing()
    try:
        with _connectors(mailbox_pass.mailbox) as (source, target):
            jobs = _plan_jobs(mailbox_pass, source, target)
    except AuthError as exc:
        fail_mailbox(mailbox_pass, describe(exc))
        return
    except TransientError as exc:
        _retry_plan(mailbox_pass, exc, scheduler)
        return
    except ConnectorError as exc:
        fail_mailbox(mailbox_pass, describe(exc))
        return
    except Exception as exc:
        # Not a server's answer but a fault (a bad option, a connector bug): planning again
        # would fail the same way, so the sweep must not find this pass still planning.
        log.exception("planning %s crashed", mailbox_pass)
        fail_mailbox(mailbox_pass, unexpected(exc))
        return
    with transaction.atomic():
        current = MailboxPass.objects.select_for_update().get(pk=pass_id)
        if current.state != MailboxPass.State.PLANNING:
            return  # another run of this plan got there first
        FolderJob.objects.bulk_create(jobs)
        for job in jobs:
            job.records.forget_stale()
        # The new jobs look for what interrupted earlier jobs were storing: theirs is done.
        carried = [pk for job in jobs for pk in job.carried]
        FolderJob.objects.filter(pk__in=carried).update(inflight=[])
        totals = {name: sum(getattr(job, name) for job in jobs) for name in Counters.COUNTER_FIELDS}
        increments = Counters.increments(**totals)
        current.state = MailboxPass.State.RUNNING
        current.lease_expires_at = None
        current.retries = 0
        current.error = ""
        current.save(update_fields=["state", "lease_expires_at", "retries", "error"])
        if increments:
            MailboxPass.objects.filter(pk=current.pk).update(**increments)
            Mailbox.objects.filter(pk=current.mailbox_id).update(**increments)
        Mailbox.objects.filter(pk=current.mailbox_id).copying()
        fill_pass(current, scheduler)


def _retry_plan(mailbox_pass: MailboxPass, exc: TransientError, scheduler) -> None:
    retries = mailbox_pass.retries + 1
    if retries > _max_retries():
        fail_mailbox(mailbox_pass, f"{describe(exc)} (gave up after {retries} attempts)")
        return
    delay = backoff(retries, exc.retry_after)
    # Said on the pass and in the log: a consultant must not stare at "Listing" for minutes.
    note = f"{describe(exc)}; retry {retries} of {_max_retries()} in {delay:.0f} s"
    log.warning("planning %s: %s", mailbox_pass, note)
    with transaction.atomic():
        mailbox_pass.retries = retries
        mailbox_pass.error = note
        mailbox_pass.save(update_fields=["retries", "error"])
        queue_plan(mailbox_pass, scheduler, delay)


def _previous_jobs(mailbox: Mailbox, kinds=(PassKind.FULL, PassKind.DELTA)) -> dict[str, FolderJob]:
    """The last finished job per source folder of a full or delta pass (a pre-stage skipped
    recent items, so its watermark would hide them from the next delta; for flags, whose
    watermark covers every item, any kind will do)."""
    jobs = FolderJob.objects.filter(
        mailbox=mailbox, state=FolderJob.State.DONE, mailbox_pass__kind__in=kinds
    ).order_by("finished_at", "id")
    return {job.source_path: job for job in jobs}


def _plan_jobs(mailbox_pass: MailboxPass, source, target) -> list[FolderJob]:
    """A job per source folder, each already listed: the pass knows its whole to do before the
    first copy, so its percent and ETA mean something from the start."""
    mailbox = mailbox_pass.mailbox
    overrides = [
        Override(split_path(m.source_path), split_path(m.target_path), m.exclude)
        for m in mailbox.project.folder_mappings.all()
    ]
    previous = _previous_jobs(mailbox) if mailbox_pass.kind == PassKind.DELTA else {}
    flagged = _previous_jobs(mailbox, PassKind.values) if previous else {}
    moved: dict[tuple, tuple] = {}
    jobs = []
    now = timezone.now()
    folders = source.folders()
    _record_source_holds(mailbox, folders)
    first_copy = not CopiedItem.objects.filter(mailbox=mailbox).exists()
    generations = {} if first_copy else _target_generations(mailbox, target)
    unrecorded = _unrecorded_inflight(mailbox_pass)
    for placement in place_folders(folders, overrides):
        folder = placement.folder
        job = FolderJob(
            mailbox_pass=mailbox_pass,
            mailbox=mailbox,
            source_path=join_path(folder.path),
            kind=folder.kind,
            role=placement.role or "",
            source_native_id=folder.native_id,
            listed_at=now,
        )
        prior = previous.get(job.source_path)
        records = _Records(job, generations.get(job.source_path))
        if prior is not None:
            job.target_path, job.target_native_id = prior.target_path, prior.target_native_id
            if not records.stale:
                job.start_state = prior.sync_state
        changes = source.changes(folder, job.start_state, mailbox_pass.before)
        if prior is not None and not records.stale:
            flag_state = flagged.get(job.source_path, prior).sync_state
            if (
                not changes.items
                and not changes.reset
                and not source.flag_changes(folder, flag_state)
            ):
                # Nothing new, no flag changed: done without a task or a look at the target.
                job.state, job.sync_state = FolderJob.State.DONE, changes.state
                job.started_at = job.finished_at = now
        _count_listing(job, changes, first_copy, records)
        job.carried = unrecorded.get(job.source_path, {})
        listed = {ref.source_id for ref in changes.items}
        job.inflight = sorted(set().union(*job.carried.values()) & listed - records.done)
        if job.state != FolderJob.State.DONE:
            path = placement.target
            if placement.role is None and path == folder.path:
                path = rebase(path, moved)
            try:
                landed = target.ensure_folder(path, folder.kind, placement.role)
            except (AuthError, TransientError):
                raise
            except ConnectorError as exc:
                # The target cannot hold this folder (an IMAP server and a calendar): this
                # folder fails with the reason and its items count as failed; the others are
                # still copied.
                job.state, job.error, job.finished_at = FolderJob.State.FAILED, describe(exc), now
                job.items_failed = job.items_total - job.items_skipped
                job.bytes_failed = job.bytes_total - job.bytes_skipped
                jobs.append(job)
                continue
            job.target_path, job.target_native_id = join_path(landed.path), landed.native_id
        if placement.role and split_path(job.target_path) != folder.path:
            moved[folder.path] = split_path(job.target_path)
        jobs.append(job)
    return jobs


def _record_source_holds(mailbox: Mailbox, folders) -> None:
    """What the source holds, from its folder list; bytes only where every folder says."""
    items = sum(folder.count for folder in folders)
    sized = all(folder.size or not folder.count for folder in folders)
    mailbox.record_source_listing(items, sum(f.size for f in folders) if sized else None)


def _target_generations(mailbox: Mailbox, target) -> dict[str, str | None]:
    """source path -> the identity its target folder has now (``target_generations``), for
    the folders an earlier job placed on the target: one round trip for all of them."""
    landed = dict(
        FolderJob.objects.filter(mailbox=mailbox)
        .exclude(target_native_id="")
        .order_by("id")
        .values_list("source_path", "target_native_id")
    )
    if not landed:
        return {}
    folders = {path: Folder(split_path(path), native_id=native) for path, native in landed.items()}
    found = target.target_generations(list(folders.values()))
    return {path: found.get(folder.native_id) for path, folder in folders.items()}


class _Records:
    """A folder's copy records, judged against the target folder's identity now: when the
    target folder was deleted, emptied and created again, or its ids reset (a new IMAP
    UIDVALIDITY), records naming ids of its old identity prove nothing any more. Such a folder
    is listed whole and matched by fingerprint on the target; the stale records are forgotten
    when the pass's jobs are created."""

    def __init__(self, job: FolderJob, generation: str | None):
        self.mailbox_id = job.mailbox_id
        self.copied = CopiedItem.objects.filter(
            mailbox_id=job.mailbox_id, source_path=job.source_path
        )
        self.generation = generation
        self.stale = False
        self.done: set[str] = set()
        if generation is None:  # unknown (the connector cannot tell): the records stand
            return
        judged = self.copied.exclude(target_id="")
        if generation:  # ids of this identity start with "generation:"
            judged = judged.exclude(target_id__startswith=f"{generation}:")
        self.stale = judged.exists()  # "": the target folder is gone

    @property
    def valid(self):
        if not self.stale:
            return self.copied
        if not self.generation:
            return self.copied.none()
        return self.copied.filter(target_id__startswith=f"{self.generation}:")

    def forget_stale(self) -> None:
        """Delete the stale records, and take them off the mailbox's lifetime figures."""
        if not self.stale:
            return
        stale = self.copied.exclude(pk__in=self.valid.values("pk"))
        totals = stale.aggregate(items=Count("id"), size=Sum("size"))
        stale.delete()
        Mailbox.objects.filter(pk=self.mailbox_id).update(
            items_on_target=F("items_on_target") - totals["items"],
            bytes_on_target=F("bytes_on_target") - (totals["size"] or 0),
        )


def _unrecorded_inflight(mailbox_pass: MailboxPass) -> dict[str, dict[int, set[str]]]:
    """source path -> {earlier job id: ids it was storing when it stopped}: an interrupted or
    failed pass may have stored them on the target without recording them. The new job
    matches them by fingerprint before storing."""
    earlier = (
        FolderJob.objects.filter(mailbox_id=mailbox_pass.mailbox_id)
        .exclude(mailbox_pass=mailbox_pass)
        .exclude(inflight=[])
    )
    found: dict[str, dict[int, set[str]]] = {}
    for pk, path, ids in earlier.values_list("pk", "source_path", "inflight"):
        if ids:
            found.setdefault(path, {})[pk] = set(ids)
    return found


def _count_listing(job: FolderJob, changes, first_copy: bool, records: _Records) -> None:
    """This job's to do, and what of it an earlier pass already put on the target.

    A mailbox's first copy looks on the target before storing (a mailbox deleted and added
    again, or one another tool half-copied, must not get its mail twice): cheap on an empty
    target folder, which is the usual case. So does a folder whose target was reset."""
    job.verify_target = changes.reset or first_copy or records.stale
    job.items_total = len(changes.items)
    job.bytes_total = sum(ref.size for ref in changes.items)
    valid = records.valid
    done = set(valid.values_list("source_id", flat=True)) if changes.items else set()
    records.done = done
    job.records = records
    already = [ref for ref in changes.items if ref.source_id in done]
    job.items_skipped = len(already)
    job.bytes_skipped = sum(ref.size for ref in already)


# --- copying ------------------------------------------------------------------------------


def run_folder_job(job_id: int, token: str, scheduler, owner: str) -> None:
    """Copy batches for a bounded time: this folder, then the mailbox's next ones while time
    remains; then queue what is left."""
    deadline = time.monotonic() + settings.COPY_TASK_SECONDS
    following = (job_id, token)
    while following is not None:
        following = _run_job(*following, scheduler, owner, deadline)


def _run_job(job_id: int, token: str, scheduler, owner: str, deadline: float):
    job = _claim(job_id, token, owner, scheduler)
    if job is None:
        return None
    try:
        with _connectors(job.mailbox) as (source, target):
            state = _copy_until(job, token, source, target, deadline)
    except AuthError as exc:
        fail_mailbox(job.mailbox_pass, describe(exc))
        return None
    except TransientError as exc:
        _retry_job(job, token, exc, scheduler)
        return None
    except ConnectorError as exc:
        return _end_job(job, token, scheduler, FolderJob.State.FAILED, error=describe(exc))
    except Exception as exc:
        log.exception("folder job %s crashed", job_id)
        return _end_job(job, token, scheduler, FolderJob.State.FAILED, error=unexpected(exc))
    if state is None:
        _continue_job(job, token, scheduler)
        return None
    take = time.monotonic() < deadline
    return _end_job(job, token, scheduler, FolderJob.State.DONE, sync_state=state, take=take)


def _claim(job_id: int, token: str, owner: str, scheduler) -> FolderJob | None:
    with transaction.atomic():
        job = (
            FolderJob.objects.select_for_update()
            .select_related("mailbox_pass", "mailbox__project__source", "mailbox__project__target")
            .filter(pk=job_id, queue_token=token, state__in=ACTIVE_JOB_STATES)
            .first()
        )
        if job is None or job.mailbox_pass.state != MailboxPass.State.RUNNING:
            return None
        now = timezone.now()
        held = job.lease_expires_at is not None and job.lease_expires_at > now
        if held and job.lease_owner not in ("", owner):
            # The broker delivered this message again (Redis does once the visibility timeout
            # passes) while the first delivery still holds the folder: copying it here too
            # would store its messages twice.
            log.info("folder job %s is held by %s; this delivery ends", job_id, job.lease_owner)
            return None
        # Serialises claims per project so the connection limit below is exact.
        Project.objects.select_for_update().filter(pk=job.mailbox.project_id).first()
        busy = (
            FolderJob.objects.filter(mailbox__project_id=job.mailbox.project_id)
            .filter(lease_owner__gt="", lease_expires_at__gt=now)
            .exclude(pk=job.pk)
            .count()
        )
        if busy >= settings.TENANT_CONNECTION_LIMIT:
            _queue_job(job, scheduler, countdown=random.uniform(0.5, 2.0))
            return None
        job.lease_owner, job.lease_expires_at = owner, now + _lease()
        job.state, job.started_at = FolderJob.State.RUNNING, job.started_at or now
        job.save(update_fields=["lease_owner", "lease_expires_at", "state", "started_at"])
    return job


def _renew_lease(job: FolderJob, token: str, **fields) -> bool:
    """Extend the lease (and save ``fields``); False when the job was paused or handed to
    another, and nothing is saved."""
    renewed = FolderJob.objects.filter(
        pk=job.pk,
        queue_token=token,
        state=FolderJob.State.RUNNING,
        mailbox_pass__state=MailboxPass.State.RUNNING,
    ).update(lease_expires_at=timezone.now() + _lease(), **fields)
    return renewed == 1


@contextmanager
def leases_kept(owner: str):
    """Keep renewing the leases ``owner`` holds while it works, from a thread of its own.

    A batch may wait on a server longer than a lease lasts (a budget turn of up to
    BUDGET_PATIENCE, a large upload); a lease that ran out meanwhile would hand the folder to
    a second run, which would store the same items again. A dead worker renews nothing, so
    its leases still run out. For worker processes: in-process runs have no rival claimant.
    """
    stop = threading.Event()

    def renew():
        try:
            while not stop.wait(settings.COPY_LEASE_SECONDS / 3):
                held = FolderJob.objects.filter(lease_owner=owner, state=FolderJob.State.RUNNING)
                held.update(lease_expires_at=timezone.now() + _lease())
        except DatabaseError:
            log.warning("renewing the leases of %s failed; they may run out", owner)
        finally:
            connection.close()

    keeper = threading.Thread(target=renew, name=f"leases of {owner}", daemon=True)
    keeper.start()
    try:
        yield
    finally:
        stop.set()
        keeper.join()


def _copy_until(job: FolderJob, token: str, source, target, deadline: float) -> dict | None:
    """Copy batches until the folder is done (returns its new watermark) or the time budget
    is spent or the job was paused or taken away (returns None)."""
    source_folder = _folder(job, job.source_path, job.source_native_id)
    target_folder = _folder(job, job.target_path, job.target_native_id)
    changes = source.changes(source_folder, job.start_state, job.mailbox_pass.before)
    copied = CopiedItem.objects.filter(mailbox_id=job.mailbox_id, source_path=job.source_path)
    done = dict(copied.values_list("source_id", "target_id"))
    # Items this job already failed are counted; a later pass tries them again.
    failed = set(job.item_errors.values_list("source_id", flat=True))
    pending = [
        ref for ref in changes.items if ref.source_id not in done and ref.source_id not in failed
    ]
    _note_arrivals(job, len(pending), sum(ref.size for ref in pending))
    listed = {ref.source_id for ref in changes.items}
    claimed = [target_id for source_id, target_id in done.items() if source_id in listed]
    matcher = _TargetMatcher(target, target_folder, claimed, source, source_folder)
    format = source.native_format if target.accepts(source.native_format) else RFC822
    for batch in _batches(pending):
        batch_ids = [ref.source_id for ref in batch]
        fetched = source.fetch(source_folder, batch_ids, format)
        items = [item for item in fetched if not item.error]
        unreadable = [item for item in fetched if item.error]
        suspect = None if job.verify_target else set(job.inflight)
        matched, to_store = matcher.split(items, suspect)
        remaining = set(job.inflight) - set(batch_ids)
        results = []
        if to_store:
            # Written before the APPEND: a worker dying now leaves these ids to be matched by
            # fingerprint on the target next time, instead of stored twice.
            inflight = sorted(remaining | {item.source_id for item in to_store})
            if not _renew_lease(job, token, inflight=inflight):
                return None
            results = target.store(target_folder, to_store)
        altered = _altered(target, target_folder, to_store, results)
        fetched_ids = {item.source_id for item in fetched}
        gone = [ref.size for ref in batch if ref.source_id not in fetched_ids]
        sizes = {ref.source_id: ref.size for ref in batch}
        recorded = _record(
            job,
            token,
            to_store,
            results,
            matched,
            (len(gone), sum(gone)),
            remaining,
            unreadable,
            sizes,
            altered,
        )
        if not recorded or not _renew_lease(job, token):
            return None
        if time.monotonic() > deadline:
            return None
    if not _sync_flags(job, token, source, target, (source_folder, target_folder), deadline):
        return None
    return changes.state


def _sync_flags(job: FolderJob, token: str, source, target, folders, deadline: float) -> bool:
    """Give the items copied by earlier passes the flags they have on the source now (read,
    flagged, answered, tagged since). False when the time budget ran out or the job was taken
    away: the watermark is then not stored, so the next run asks again (setting flags twice is
    harmless)."""
    previous = _flag_state(job)
    changed = source.flag_changes(folders[0], previous) if previous else {}
    stale = _stale_flags(job, changed)
    max_items, _ = batch_limits()
    for start in range(0, len(stale), max_items):
        if start and time.monotonic() > deadline:
            return False
        batch = stale[start : start + max_items]
        target.set_flags(
            folders[1], {target_id: changed[source_id] for _, source_id, target_id in batch}
        )
        _record_flags(job, batch, changed)
        if not _renew_lease(job, token):
            return False
    return True


def _flag_state(job: FolderJob) -> dict:
    """The watermark of the folder's last finished job, whatever its pass."""
    finished = FolderJob.objects.filter(
        mailbox_id=job.mailbox_id, source_path=job.source_path, state=FolderJob.State.DONE
    ).exclude(pk=job.pk)
    latest = finished.order_by("-finished_at", "-id").values_list("sync_state", flat=True).first()
    return latest or {}


def _stale_flags(job: FolderJob, changed: dict) -> list[tuple[int, str, str]]:
    """(CopiedItem id, source id, target id) of the copies whose recorded flags differ; read in
    chunks of ids, so the cost follows the number of changes, not the folder's size."""
    copied = CopiedItem.objects.filter(mailbox_id=job.mailbox_id, source_path=job.source_path)
    copied = copied.exclude(target_id="")
    ids = sorted(changed)
    stale = []
    for start in range(0, len(ids), FLAG_LOOKUP_CHUNK):
        rows = copied.filter(source_id__in=ids[start : start + FLAG_LOOKUP_CHUNK])
        for pk, source_id, target_id, flags in rows.values_list(
            "pk", "source_id", "target_id", "flags"
        ):
            if flags != flag_list(changed[source_id]):
                stale.append((pk, source_id, target_id))
    return stale


def _record_flags(job: FolderJob, batch, changed: dict) -> None:
    by_flags: dict[tuple, list[int]] = {}
    for pk, source_id, _ in batch:
        by_flags.setdefault(tuple(flag_list(changed[source_id])), []).append(pk)
    with transaction.atomic():
        for flags, pks in by_flags.items():
            CopiedItem.objects.filter(pk__in=pks).update(flags=list(flags))
        job.add_counters(items_updated=len(batch))


def flag_list(flags) -> list[str]:
    """How ``CopiedItem.flags`` records a flag set."""
    return sorted(flag for flag in flags if flag != "\\Recent")


def _folder(job: FolderJob, path: str, native_id: str) -> Folder:
    return Folder(split_path(path), job.kind, job.role or None, native_id=native_id)


def _batches(pending):
    """Bounded batches: at most N items or B bytes (a single larger item goes alone)."""
    max_items, max_bytes = batch_limits()
    batch, size = [], 0
    for ref in pending:
        if batch and (len(batch) >= max_items or size + ref.size > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(ref)
        size += ref.size
    if batch:
        yield batch


class _TargetMatcher:
    """Recognises items already on the target (crash or UIDVALIDITY recovery), by three keys in
    turn: the fingerprint of the bytes; the bytes a server that rewrites 8-bit header bytes to
    "X" on APPEND (Cyrus) would have stored, so a message it altered is not stored a second
    time; and a key the server keeps on a copy (Exchange's PR_SEARCH_KEY), for an item stored
    by a worker that died before it could be marked with its fingerprint.

    What the target holds is read once, and only when some item needs checking; each target
    copy matches one source item, so byte-identical duplicates each keep their own copy.
    """

    def __init__(self, target, folder: Folder, claimed, source, source_folder: Folder):
        self.target, self.folder, self.claimed = target, folder, set(claimed)
        self.source, self.source_folder = source, source_folder
        self.by_fingerprint: dict[str, list[str]] | None = None
        self.by_key: dict[str, list[str]] | None = None  # recovery key -> target ids
        self.source_keys: dict[str, str] = {}

    def split(self, items, suspect: set | None):
        """(matched CopiedItem-ready pairs, items to store); ``suspect`` None means all."""
        if suspect is not None and not suspect.intersection(item.source_id for item in items):
            return [], items
        if self.by_fingerprint is None:
            self.by_fingerprint = self.target.fingerprints(self.folder)
        eligible = [item for item in items if suspect is None or item.source_id in suspect]
        taken: dict[str, str] = {}
        fingerprinted = self.by_fingerprint
        self._match(eligible, taken, fingerprinted, lambda item: item.fingerprint)
        self._match(eligible, taken, fingerprinted, lambda item: munged_fingerprint(item.data))
        if any(item.source_id not in taken for item in eligible):
            keyed = self._recovery_keys()
            self._match(eligible, taken, keyed, lambda item: self.source_keys.get(item.source_id))
        matched = [(item, taken[item.source_id]) for item in items if item.source_id in taken]
        return matched, [item for item in items if item.source_id not in taken]

    def _recovery_keys(self) -> dict[str, list[str]]:
        """Recovery key -> unclaimed target ids, read once; the source's keys are read only
        when the target holds some."""
        if self.by_key is None:
            self.by_key = {}
            for target_id, key in self.target.recovery_keys(self.folder).items():
                if target_id not in self.claimed:
                    self.by_key.setdefault(key, []).append(target_id)
            if self.by_key:
                self.source_keys = self.source.recovery_keys(self.source_folder)
        return self.by_key

    def _match(self, items, taken: dict[str, str], pool: dict[str, list[str]], key_of) -> None:
        for item in items:
            if pool and item.source_id not in taken:
                target_id = self._take(pool, key_of(item))
                if target_id:
                    taken[item.source_id] = target_id

    def _take(self, pool: dict[str, list[str]], key: str | None) -> str | None:
        """An unclaimed target id under ``key``, claimed now; None when there is none."""
        candidates = pool.get(key, []) if key else []
        while candidates:
            target_id = candidates.pop(0)
            if target_id not in self.claimed:
                self.claimed.add(target_id)
                return target_id
        return None


# The most of an alteration note kept on a copied item: the header lines that differ.
ALTERED_NOTE_CHARS = 500


def _altered(target, folder: Folder, items, results) -> dict[str, str]:
    """source id -> what the target server changed in the copy it stored, read back in one
    request per batch (header block and size); empty when it stored what it was sent or the
    connector cannot read it back cheaply."""
    target_ids = {r.source_id: r.target_id for r in results if r.target_id}
    if not target_ids:
        return {}
    try:
        stored = target.stored(folder, list(target_ids.values()))
    except TransientError:
        raise  # the batch is retried; what was stored is matched by fingerprint then
    except ConnectorError as exc:
        # Stored and answered OK: a refused read-back must not fail the copy.
        log.warning("reading back %s on the target failed: %s", folder.display, exc)
        return {}
    notes = {}
    for item in items:
        back = stored.get(target_ids.get(item.source_id, ""))
        if back is None:
            continue
        sent, kept = header_block(item.data), header_block(back[0])
        if sent == kept and back[1] == len(item.data):
            continue
        notes[item.source_id] = _alteration(sent, kept, len(item.data), back[1])
    return notes


def _alteration(sent: bytes, kept: bytes, sent_size: int, kept_size: int) -> str:
    """ "changed by the target server: " and the header lines that differ, sent -> stored."""
    before = sent.decode("utf-8", "replace").splitlines()
    after = kept.decode("utf-8", "replace").splitlines()
    kept_lines = set(after)
    sent_lines = set(before)
    gone = [line for line in before if line not in kept_lines]
    added = [line for line in after if line not in sent_lines]
    changes = [f"{a!r} -> {b!r}" for a, b in zip(gone, added, strict=False)]
    changes += [f"{a!r} removed" for a in gone[len(added) :]]
    changes += [f"{b!r} added" for b in added[len(gone) :]]
    if not changes:
        changes = [f"body changed, {sent_size} -> {kept_size} bytes"]
    note = "changed by the target server: " + "; ".join(changes)
    if len(note) > ALTERED_NOTE_CHARS:
        note = note[: ALTERED_NOTE_CHARS - 1] + "…"
    return note


def _note_arrivals(job: FolderJob, pending: int, pending_bytes: int) -> None:
    """Items that reached the source folder after it was listed join this pass's to do."""
    items = pending - (job.items_total - job.items_done)
    if items > 0:
        size = max(0, pending_bytes - (job.bytes_total - job.bytes_done))
        with transaction.atomic():
            job.add_counters(items_total=items, bytes_total=size)
        job.items_total, job.bytes_total = job.items_total + items, job.bytes_total + size


def _record(
    job, token, to_store, results, matched, vanished, inflight, unreadable, sizes, altered
) -> bool:
    """Record a batch; False when the job was handed to another run meanwhile."""
    by_id = {item.source_id: item for item in to_store}
    stored = []
    errors = [
        ItemError(
            folder_job=job,
            source_id=item.source_id,
            size=sizes.get(item.source_id, 0),
            code=item.error_code[:100],
            reason=f"The source could not hand the item over: {item.error}",
        )
        for item in unreadable
    ]
    for result in results:
        item = by_id[result.source_id]
        if result.target_id is not None:  # "" is stored, but the server names no id
            copy = _copied_item(job, item, result.target_id, flag_list(item.flags))
            copy.altered = altered.get(item.source_id, "")
            stored.append(copy)
        else:
            errors.append(
                ItemError(
                    folder_job=job,
                    source_id=item.source_id,
                    size=len(item.data),
                    code=result.error_code[:100],
                    reason=result.error or "The target refused the item without a reason.",
                )
            )
    found = [_copied_item(job, item, target_id) for item, target_id in matched]
    return job.record_batch(token, stored, found, errors, vanished, inflight)


def _copied_item(job: FolderJob, item, target_id: str, flags: list | None = None) -> CopiedItem:
    return CopiedItem(
        mailbox_id=job.mailbox_id,
        source_path=job.source_path,
        source_id=item.source_id,
        target_id=target_id,
        fingerprint=item.fingerprint,
        size=len(item.data),
        flags=flags,
    )


def _end_job(job, token, scheduler, state, error: str = "", sync_state=None, take=False):
    """Close the job; returns the next folder reserved for the caller when ``take``."""
    with transaction.atomic():
        current = FolderJob.objects.select_for_update().filter(pk=job.pk, queue_token=token)
        current = current.first()
        if current is None or current.state != FolderJob.State.RUNNING:
            return None
        current.state, current.error, current.finished_at = state, error, timezone.now()
        current.lease_owner, current.lease_expires_at = "", None
        if sync_state is not None:
            current.sync_state = sync_state
        current.save()
        if state == FolderJob.State.DONE:
            _settle(current)
        return fill_pass(current.mailbox_pass, scheduler, take=take)


def _settle(job: FolderJob) -> None:
    """A finished folder's done equals its to do: what left the source before it was copied
    counts as skipped, what arrived beyond the listing joins the to do."""
    items, size = job.items_total - job.items_done, job.bytes_total - job.bytes_done
    job.add_counters(
        items_skipped=max(items, 0),
        bytes_skipped=max(size, 0),
        items_total=max(-items, 0),
        bytes_total=max(-size, 0),
    )


def _continue_job(job: FolderJob, token: str, scheduler) -> None:
    with transaction.atomic():
        current = FolderJob.objects.select_for_update().filter(pk=job.pk, queue_token=token)
        current = current.filter(state=FolderJob.State.RUNNING).first()
        if current is not None:
            _queue_job(current, scheduler)


def _retry_job(job: FolderJob, token: str, exc: TransientError, scheduler) -> None:
    retries = FolderJob.objects.get(pk=job.pk).retries + 1
    if retries > _max_retries():
        error = f"{describe(exc)} (gave up after {retries} attempts)"
        _end_job(job, token, scheduler, FolderJob.State.FAILED, error=error)
        return
    log.info("folder job %s: %s; retry %s", job.pk, describe(exc), retries)
    with transaction.atomic():
        current = FolderJob.objects.select_for_update().filter(pk=job.pk, queue_token=token)
        current = current.filter(state=FolderJob.State.RUNNING).first()
        if current is not None:
            current.retries, current.error = retries, describe(exc)
            current.save(update_fields=["retries", "error"])
            _queue_job(current, scheduler, backoff(retries, exc.retry_after))


# --- recovery -----------------------------------------------------------------------------


def requeue_stalled(scheduler, node: str = "") -> int:
    """Queue again the work whose worker died or whose message the broker lost.

    Periodically: jobs and plans whose lease expired. With ``node`` (a worker that just
    started under that name): also what that node held before it died, and what was queued but
    never claimed, since the embedded broker drops the messages a killed worker had taken.
    """
    now = timezone.now()
    stale = Q(lease_expires_at__lt=now)
    if node:
        stale |= Q(lease_owner__startswith=f"{node}:") | Q(
            lease_owner="", lease_expires_at__isnull=False
        )
    jobs = FolderJob.objects.filter(
        stale, state__in=ACTIVE_JOB_STATES, mailbox_pass__state=MailboxPass.State.RUNNING
    )
    count = 0
    for job_id in jobs.values_list("pk", flat=True):
        with transaction.atomic():
            job = FolderJob.objects.select_for_update().filter(stale, pk=job_id).first()
            if job is not None and job.state in ACTIVE_JOB_STATES:
                _queue_job(job, scheduler)
                count += 1
    plans = MailboxPass.objects.filter(state=MailboxPass.State.PLANNING)
    plans = plans.exclude(mailbox__state=Mailbox.State.PAUSED)
    if not node:
        plans = plans.filter(lease_expires_at__lt=now)
    for mailbox_pass in plans:
        with transaction.atomic():
            queue_plan(mailbox_pass, scheduler)
            count += 1
    for mailbox_pass in MailboxPass.objects.filter(state=MailboxPass.State.RUNNING):
        with transaction.atomic():
            fill_pass(mailbox_pass, scheduler)
    return count


# --- in-process runs ----------------------------------------------------------------------


class InlineScheduler:
    """Runs the steps in this process, in due order: what ``copy_mailbox --inline`` uses."""

    def __init__(self, owner: str):
        self.owner = owner
        self._queue: list = []
        self._order = itertools.count()

    def plan(self, pass_id: int, countdown: float = 0) -> None:
        self._push(countdown, plan_pass, pass_id, self)

    def folder_job(self, job_id: int, token: str, countdown: float = 0) -> None:
        self._push(countdown, run_folder_job, job_id, token, self, self.owner)

    def _push(self, countdown, function, *args) -> None:
        due = time.monotonic() + countdown
        heapq.heappush(self._queue, (due, next(self._order), function, args))

    def run(self, steps: int | None = None) -> None:
        """Run the queued steps (and those they queue) in due order; at most ``steps``."""
        while self._queue and (steps is None or steps > 0):
            due, _, function, args = heapq.heappop(self._queue)
            time.sleep(max(0.0, due - time.monotonic()))
            function(*args)
            steps = None if steps is None else steps - 1
