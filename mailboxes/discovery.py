"""Discovery, before copying: what each mailbox's source holds and what its target can take.

Per mailbox the source is read without copying anything (every folder's items and bytes, the
oldest and newest item, the largest items) and the target is asked what the protocol tells
(does the login work and the mailbox exist, free quota, the largest item it takes, which
folders it cannot hold). The report is stored in ``Mailbox.discovery`` with its problems, each
``{"text", "blocking"}``; ``discovery_blocking`` marks a mailbox that cannot be copied as is.

Discovery runs in the worker, one task per mailbox (``tasks.discover_mailboxes``); the page
sets ``discovery_requested_at`` and polls until ``discovered_at`` has caught up. A discovery
that crashes still ends with a recorded problem, never a mailbox left "discovering…".
"""

from __future__ import annotations

import heapq
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .connectors import AuthError, ConnectorError, open_connector
from .connectors.base import Folder, TargetLimits
from .connectors.folders import Override, join_path, place_folders, split_path
from .models import Mailbox, MailboxPass

log = logging.getLogger(__name__)

# Mailboxes per worker task: one, since a big mailbox takes a while to list.
PER_TASK = 1
# The largest items shown per mailbox, and the items over the target's limit kept by name.
LARGEST_SHOWN = 10
OVER_LIMIT_KEPT = 100
# A discovery lists every item of the mailbox once; far longer than this and it is not coming.
PENDING_FOR = timedelta(minutes=30)
NO_ANSWER = "No answer from the worker: is one running? Discover again."
MB = 1024 * 1024
# Throughput of one mailbox before any pass has measured one: 2 MB/s and 20 items/s, what a
# single IMAP connection to a hosted server usually gives (the copy benchmark between two local
# Dovecot servers is far faster, so this errs on the long side).
DEFAULT_BYTES_PER_SECOND = 2 * MB
DEFAULT_ITEMS_PER_SECOND = 20.0
# Throughput is measured over the project's latest finished passes that copied something.
PASSES_MEASURED = 200


# --- pending / requested -------------------------------------------------------------------


def is_pending(mailbox: Mailbox, now=None) -> bool:
    requested = mailbox.discovery_requested_at
    if requested is None:
        return False
    answered = mailbox.discovered_at is not None and mailbox.discovered_at >= requested
    return not answered and requested > (now or timezone.now()) - PENDING_FOR


def never_answered(mailbox: Mailbox, now=None) -> bool:
    requested = mailbox.discovery_requested_at
    if requested is None or is_pending(mailbox, now):
        return False
    return mailbox.discovered_at is None or mailbox.discovered_at < requested


def request_discovery(mailboxes) -> int:
    """Mark ``mailboxes`` as being discovered and queue the work once this transaction
    commits; returns how many."""
    from .tasks import discover_mailboxes

    if hasattr(mailboxes, "values_list"):
        ids = list(mailboxes.values_list("pk", flat=True))
    else:
        ids = [mailbox.pk for mailbox in mailboxes]
    Mailbox.objects.filter(pk__in=ids).update(discovery_requested_at=timezone.now())
    for start in range(0, len(ids), PER_TASK):
        chunk = ids[start : start + PER_TASK]
        transaction.on_commit(lambda chunk=chunk: discover_mailboxes.delay(chunk))
    return len(ids)


# --- the work ------------------------------------------------------------------------------


def _problem(text: str, blocking: bool) -> dict:
    return {"text": text, "blocking": blocking}


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def _megabytes(size: int) -> str:
    return f"{math.ceil(size / MB):,} MB"


def survey_source(source) -> dict:
    """Every folder of the source with its items, bytes, oldest and newest item, and the
    largest items: one listing per folder (IMAP: one UID FETCH of sizes and dates)."""
    folders, largest, every_size = [], [], []
    for folder in source.folders():
        listed = source.changes(folder, {}).items
        dates = [ref.received for ref in listed if ref.received]
        folders.append(
            {
                "path": join_path(folder.path),
                "kind": folder.kind,
                "role": folder.role or "",
                "items": len(listed),
                "bytes": sum(ref.size for ref in listed),
                "oldest": _iso(min(dates, default=None)),
                "newest": _iso(max(dates, default=None)),
            }
        )
        top = heapq.nlargest(LARGEST_SHOWN, listed, key=lambda ref: ref.size)
        largest.extend((ref.size, folder, ref.source_id) for ref in top)
        every_size.extend((ref.size, folder, ref.source_id) for ref in listed)
    largest = heapq.nlargest(LARGEST_SHOWN, largest, key=lambda entry: entry[0])
    subjects = _subjects(source, largest)
    shown = [
        {
            "folder": join_path(folder.path),
            "id": source_id,
            "size": size,
            "subject": subjects.get((folder.native_id, source_id), ""),
        }
        for size, folder, source_id in largest
    ]
    return {"folders": folders, "largest": shown, "_sizes": every_size}


def _subjects(source, entries) -> dict:
    """(folder, id) -> subject of the largest items: one request per folder, where cheap."""
    by_folder: dict = {}
    for _size, folder, source_id in entries:
        by_folder.setdefault(folder.native_id, (folder, []))[1].append(source_id)
    found = {}
    for native_id, (folder, ids) in by_folder.items():
        try:
            subjects = source.subjects(folder, ids)
        except ConnectorError:
            continue  # only a nicety: the sizes stand without it
        found.update(((native_id, key), value) for key, value in subjects.items())
    return found


def _totals(report: dict) -> None:
    folders = report["folders"]
    report["items"] = sum(f["items"] for f in folders)
    report["bytes"] = sum(f["bytes"] for f in folders)
    oldest = [f["oldest"] for f in folders if f["oldest"]]
    newest = [f["newest"] for f in folders if f["newest"]]
    # ISO 8601 with offsets does not sort as text across zones: compare as instants.
    report["oldest"] = min(oldest, key=datetime.fromisoformat, default=None)
    report["newest"] = max(newest, key=datetime.fromisoformat, default=None)


def _check_folders(mailbox: Mailbox, target, report: dict) -> set[str]:
    """Where each source folder lands (the project's overrides apply) and whether the target
    can hold it; returns the paths that will be copied (not left out by an override)."""
    problems = report["problems"]
    overrides = [
        Override(split_path(m.source_path), split_path(m.target_path), m.exclude)
        for m in mailbox.project.folder_mappings.all()
    ]
    kinds = {f["path"]: f for f in report["folders"]}
    placed = place_folders(
        [Folder(split_path(f["path"]), f["kind"], f["role"] or None) for f in report["folders"]],
        overrides,
    )
    placed_paths = set()
    for placement in placed:
        path = join_path(placement.folder.path)
        placed_paths.add(path)
        entry = kinds[path]
        entry["target"] = join_path(placement.target)
        reason = target.folder_problem(placement.target, placement.folder.kind)
        entry["problem"] = reason
        if reason:
            problems.append(
                _problem(
                    f"Folder {path} cannot be created on the target ({reason}): its "
                    f"{entry['items']:,} items will fail",
                    False,
                )
            )
    for entry in report["folders"]:
        entry["excluded"] = entry["path"] not in placed_paths
    return placed_paths


def check_target(mailbox: Mailbox, target, report: dict, sizes: list) -> None:
    """The target's side: mailbox exists, quota, largest item, folders it cannot hold."""
    problems = report["problems"]
    target.check_target()
    limits: TargetLimits = target.limits()
    placed_paths = _check_folders(mailbox, target, report)
    copied = [f for f in report["folders"] if f["path"] in placed_paths]
    report["items_to_copy"] = max(0, sum(f["items"] for f in copied) - mailbox.items_on_target)
    report["bytes_to_copy"] = max(0, sum(f["bytes"] for f in copied) - mailbox.bytes_on_target)
    report["max_item_size"] = limits.max_item_size
    report["max_item_source"] = limits.size_source
    over = []
    if limits.max_item_size:
        # Items of folders an override leaves out are not copied: they cannot fail.
        over = [
            entry
            for entry in sizes
            if entry[0] > limits.max_item_size and join_path(entry[1].path) in placed_paths
        ]
    over.sort(key=lambda entry: -entry[0])
    report["over_limit_count"] = len(over)
    report["over_limit"] = [
        {"folder": join_path(folder.path), "id": source_id, "size": size}
        for size, folder, source_id in over[:OVER_LIMIT_KEPT]
    ]
    if over:
        problems.append(
            _problem(
                f"{len(over):,} item{'s' if len(over) != 1 else ''} over the target's size limit "
                f"of {_megabytes(limits.max_item_size)} ({limits.size_source}): "
                f"{'they' if len(over) != 1 else 'it'} will fail",
                False,
            )
        )
    to_copy = report["bytes_to_copy"]
    report["quota"] = None
    if limits.quota_limit is not None:
        free = limits.quota_free
        report["quota"] = {"limit": limits.quota_limit, "used": limits.quota_used, "free": free}
        if to_copy > free:
            problems.append(
                _problem(
                    f"Quota short by {_megabytes(to_copy - free)}: the target has "
                    f"{_megabytes(free)} free of {_megabytes(limits.quota_limit)} for "
                    f"{_megabytes(to_copy)} to copy",
                    True,
                )
            )


def discover(mailbox: Mailbox) -> dict:
    """The discovery report of one mailbox; connector failures become problems."""
    report = {"folders": [], "largest": [], "problems": []}
    sizes = []
    try:
        with open_connector(mailbox.endpoint("source"), mailbox.source_address) as source:
            surveyed = survey_source(source)
    except AuthError as exc:
        report["problems"].append(_problem(f"Source login refused: {exc}", True))
    except ConnectorError as exc:
        report["problems"].append(_problem(f"Source cannot be read: {exc}", True))
    else:
        sizes = surveyed.pop("_sizes")
        report.update(surveyed)
    _totals(report)
    # What is left to copy: what the source holds beyond what mailferry put on the target
    # (less the folders an override leaves out, once the target side is known).
    report["items_to_copy"] = max(0, report["items"] - mailbox.items_on_target)
    report["bytes_to_copy"] = max(0, report["bytes"] - mailbox.bytes_on_target)
    try:
        with open_connector(mailbox.endpoint("target"), mailbox.target_address) as target:
            check_target(mailbox, target, report, sizes)
    except AuthError as exc:
        report["problems"].append(_problem(f"Target login refused: {exc}", True))
    except ConnectorError as exc:
        report["problems"].append(_problem(f"Target cannot be used: {exc}", True))
    report.setdefault("over_limit_count", 0)
    report.setdefault("over_limit", [])
    return report


def record(mailbox: Mailbox, report: dict) -> None:
    """Store the report; the source figures agree with it (``record_source_listing``)."""
    now = timezone.now()
    report["discovered_at"] = now.isoformat()
    blocking = any(p["blocking"] for p in report["problems"])
    if report["folders"]:
        mailbox.record_source_listing(report["items"], report["bytes"])
    # Only these fields: a copy worker may be updating the same row's counters right now.
    Mailbox.objects.filter(pk=mailbox.pk).update(
        discovery=report, discovered_at=now, discovery_blocking=blocking
    )
    mailbox.discovery, mailbox.discovered_at, mailbox.discovery_blocking = report, now, blocking


def discover_mailbox(mailbox: Mailbox) -> dict:
    """Discover and record one mailbox; never raises, never leaves it "discovering…"."""
    try:
        report = discover(mailbox)
    except Exception:
        log.exception("discovery of mailbox %s crashed", mailbox.pk)
        report = {
            "folders": [],
            "largest": [],
            "over_limit": [],
            "over_limit_count": 0,
            "problems": [_problem("Discovery failed unexpectedly; see the worker log.", True)],
        }
        _totals(report)
    record(mailbox, report)
    log.info("discovery of mailbox %s: %s problems", mailbox.pk, len(report["problems"]))
    return report


def discover_mailboxes(mailbox_ids) -> None:
    """Discover each mailbox; one deleted meanwhile is skipped."""
    mailboxes = Mailbox.objects.filter(pk__in=mailbox_ids).select_related(
        "project__source", "project__target"
    )
    for mailbox in mailboxes:
        discover_mailbox(mailbox)


# --- estimates -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Throughput:
    """One mailbox's copy speed: measured on the project's finished passes, or the default."""

    bytes_per_second: float
    items_per_second: float
    measured: bool

    def seconds(self, items: int, size: int) -> int:
        """Bytes and per-item round trips both cost time; the slower of the two decides."""
        return math.ceil(max(size / self.bytes_per_second, items / self.items_per_second))


def measured_throughput(project) -> Throughput:
    """Bytes and items per second of one mailbox over the project's finished passes that
    copied something (their copied figures over their durations), else the stated default."""
    finished = MailboxPass.objects.filter(
        mailbox__project=project, finished_at__isnull=False, items_copied__gt=0
    ).order_by("-finished_at")[:PASSES_MEASURED]
    size = items = seconds = 0
    for copied, count, started, ended in finished.values_list(
        "bytes_copied", "items_copied", "started_at", "finished_at"
    ):
        size, items = size + copied, items + count
        seconds += max((ended - started).total_seconds(), 0.0)
    if seconds <= 0:
        return Throughput(DEFAULT_BYTES_PER_SECOND, DEFAULT_ITEMS_PER_SECOND, False)
    return Throughput(max(size / seconds, 1.0), max(items / seconds, 0.1), True)


def concurrency(project) -> int:
    """Mailboxes copied at once: the tenant connection limit, or a lower ``concurrency``
    option of either tenant."""
    limit = settings.TENANT_CONNECTION_LIMIT
    for tenant in (project.source, project.target):
        value = (tenant.options or {}).get("concurrency")
        if isinstance(value, int) and value > 0:
            limit = min(limit, value)
    return max(1, limit)


@dataclass
class Readiness:
    """The readiness page's figures: each discovered mailbox with its estimate, and totals."""

    rows: list
    throughput: Throughput
    concurrency: int
    discovered: int
    total: int
    pending: list

    @property
    def items(self) -> int:
        return sum(row.report.get("items", 0) for row in self.rows)

    @property
    def bytes(self) -> int:
        return sum(row.report.get("bytes", 0) for row in self.rows)

    @property
    def blocked(self) -> int:
        return sum(1 for row in self.rows if row.mailbox.discovery_blocking)

    @property
    def estimate(self) -> timedelta:
        return timedelta(seconds=self.estimate_seconds)

    @property
    def estimate_seconds(self) -> int:
        """Mailboxes run ``concurrency`` at once: the longest of the lanes when the largest
        mailboxes are handed out first."""
        lanes = [0] * self.concurrency
        for row in sorted(self.rows, key=lambda r: -r.estimate_seconds):
            lanes[lanes.index(min(lanes))] += row.estimate_seconds
        return max(lanes, default=0)


@dataclass
class Row:
    mailbox: Mailbox
    report: dict
    estimate_seconds: int

    @property
    def problems(self) -> list:
        return self.report.get("problems", [])

    @property
    def estimate(self) -> timedelta:
        return timedelta(seconds=self.estimate_seconds)


def readiness(project) -> Readiness:
    mailboxes = list(project.mailboxes.all())
    throughput = measured_throughput(project)
    rows = []
    now = timezone.now()
    for mailbox in mailboxes:
        mailbox.project = project
        if mailbox.discovered_at is None:
            continue
        report = mailbox.discovery or {}
        items = report.get("items_to_copy", 0)
        rows.append(Row(mailbox, report, throughput.seconds(items, report.get("bytes_to_copy", 0))))
    rows.sort(key=lambda row: (-row.report.get("bytes", 0), row.mailbox.source_address))
    pending = [m for m in mailboxes if is_pending(m, now)]
    return Readiness(rows, throughput, concurrency(project), len(rows), len(mailboxes), pending)


def problems_text(report: dict) -> str:
    """The problems on one line: blocking ones marked."""
    return "; ".join(
        ("BLOCKING: " if p["blocking"] else "") + p["text"] for p in report.get("problems", [])
    )


def summary_line(mailbox: Mailbox) -> str:
    """``ADDRESS items=N bytes=N folders=N largest=N over_limit=N problems=…``"""
    report = mailbox.discovery or {}
    largest = max((item["size"] for item in report.get("largest", [])), default=0)
    return (
        f"{mailbox.source_address} items={report.get('items', 0)} "
        f"bytes={report.get('bytes', 0)} folders={len(report.get('folders', []))} "
        f"largest={largest} over_limit={report.get('over_limit_count', 0)} "
        f"problems={problems_text(report) or 'none'}"
    )
