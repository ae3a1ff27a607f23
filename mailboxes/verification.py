"""Verification: what the source holds now, compared folder by folder with what the target
holds now, every difference explained.

Per source folder, each item the source lists is one of:

- **on the target**: mailferry copied it (a ``CopiedItem``) and the target still lists that id;
- **missing**: copied, but the target no longer lists its id (deleted, a reset mailbox, the
  wrong account), or ``--deep`` found other content under it;
- **new**: on the source, never copied and never failed (arrived since the last pass);
- **failed**: a recorded reason (an ``ItemError`` of an item no later pass copied, or the
  folder's own error when the target cannot hold the folder);

a folder left out by an override is **excluded** (its items counted, not listed), and what the
target holds that mailferry did not put there is **extra** (informational). A mailbox is
**verified** when nothing is missing or new: every source item is on the target or has a reason.

Cheap by default: one listing per folder on each side (IMAP ``UID FETCH 1:* (UID RFC822.SIZE
INTERNALDATE)``, RFC 3501 §6.4.8, through the connectors' ``changes`` from an empty state; EWS
SyncFolderItems; Graph items delta) compared with the ``CopiedItem`` rows: ids and sizes, no
message bodies. ``deep`` also checks each copy against its source item: the target's content
fingerprint (``Connector.fingerprints``: IMAP bodies hashed with SHA-256, EWS/Graph the
fingerprint stamped at import) against ``CopiedItem.fingerprint``, or, where the target keeps a
key from the source item (``Connector.recovery_keys``: Exchange's PR_SEARCH_KEY on a copy of
an item exported from Exchange), that key against the source item's own.

The result lives on the mailbox (``Mailbox.verification``, ``verified``, ``verified_at``,
``items_missing``); ``missing_rows`` (the ``CopiedItem`` ids found missing, capped) is what
"Copy what is missing" forgets before its pass (``forget_missing``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from . import engine
from .connectors import ConnectorError
from .connectors.folders import Override, join_path, place_folders, split_path
from .models import CopiedItem, FolderJob, ItemError, Mailbox, PassKind

log = logging.getLogger(__name__)

# Ids kept per folder for the pages (the counts are always whole).
IDS_SHOWN = 20
# ``CopiedItem`` ids of missing items kept for "Copy what is missing"; beyond it, the pass
# copies these and the next verification finds the rest.
MISSING_ROWS_KEPT = 5000
# Passes after which the worker verifies the mailbox.
VERIFIED_AFTER = (PassKind.FULL, PassKind.DELTA, PassKind.MISSING)
COUNTS = ("missing", "new", "changed", "failed", "excluded", "extra", "altered")


# --- running ------------------------------------------------------------------------------


def request(mailboxes) -> list[int]:
    """Mark these mailboxes as waiting for a verification; returns their ids."""
    ids = [mailbox.pk for mailbox in mailboxes]
    Mailbox.objects.filter(pk__in=ids).update(verify_requested_at=timezone.now())
    return ids


def queue(mailboxes, deep: bool = False) -> int:
    """Verify these mailboxes in the worker, one task each, once the transaction commits."""
    from .tasks import verify_mailbox

    ids = request(mailboxes)
    for mailbox_id in ids:
        transaction.on_commit(lambda pk=mailbox_id: verify_mailbox.delay(pk, deep))
    return len(ids)


def after_pass(mailbox_pass) -> None:
    """The engine's hook when a pass ends: full, delta and "copy what is missing" passes are
    followed by a verification in the worker."""
    if mailbox_pass.kind not in VERIFIED_AFTER:
        return
    try:
        queue([Mailbox(pk=mailbox_pass.mailbox_id)])
    except Exception:  # a broker hiccup must never fail the pass that just ended
        log.exception("could not queue the verification of mailbox %s", mailbox_pass.mailbox_id)


def verify(mailbox: Mailbox, deep: bool = False) -> dict:
    """Verify one mailbox now, in this process; store and return the result. A server that
    cannot be reached ends the verification with its message (``verified`` False)."""
    mailbox = Mailbox.objects.select_related("project__source", "project__target").get(
        pk=mailbox.pk
    )
    now = timezone.now()
    try:
        # The engine's connections (kept open a few seconds after a pass: the verification
        # queued when a pass ends logs in no more), whose errors name their side.
        with engine._connectors(mailbox) as (source, target):
            result = compare(mailbox, source, target, deep)
    except ConnectorError as exc:
        result = {"error": engine.describe(exc), "deep": deep, "folders": [], "totals": {}}
    except Exception:
        log.exception("verification of mailbox %s crashed", mailbox.pk)
        error = "The verification failed unexpectedly; see the worker log."
        result = {"error": error, "deep": deep, "folders": [], "totals": {}}
    result["at"] = now.isoformat()
    missing = result["totals"].get("missing_all", 0)
    Mailbox.objects.filter(pk=mailbox.pk).update(
        verification=result,
        verified=not result.get("error") and missing == 0,
        verified_at=now,
        items_missing=missing,
        verify_requested_at=None,
    )
    return result


# --- comparing ----------------------------------------------------------------------------


def _latest_jobs(mailbox: Mailbox) -> dict[str, FolderJob]:
    """The latest job per source folder, and where it put the folder on the target."""
    jobs = FolderJob.objects.filter(mailbox=mailbox).order_by("id")
    latest: dict[str, FolderJob] = {}
    for job in jobs.only(
        "source_path", "target_path", "target_native_id", "kind", "role", "state", "error"
    ):
        previous = latest.get(job.source_path)
        if not job.target_path and previous is not None and previous.target_path:
            # A later job that never reached the target keeps the earlier placement.
            job.target_path, job.target_native_id = previous.target_path, previous.target_native_id
        latest[job.source_path] = job
    return latest


def _failures(mailbox: Mailbox) -> dict[tuple[str, str], str]:
    errors = ItemError.objects.filter(folder_job__mailbox=mailbox).order_by("id")
    return {
        (path, source_id): reason
        for path, source_id, reason in errors.values_list(
            "folder_job__source_path", "source_id", "reason"
        )
    }


def compare(mailbox: Mailbox, source, target, deep: bool = False) -> dict:
    overrides = [
        Override(split_path(m.source_path), split_path(m.target_path), m.exclude)
        for m in mailbox.project.folder_mappings.all()
    ]
    jobs = _latest_jobs(mailbox)
    failures = _failures(mailbox)
    copied: dict[str, dict[str, tuple]] = defaultdict(dict)
    for row in CopiedItem.objects.filter(mailbox=mailbox).values_list(
        "pk", "source_path", "source_id", "target_id", "size", "fingerprint", "altered"
    ):
        copied[row[1]][row[2]] = row
    source_folders = source.folders()
    placed = {join_path(p.folder.path) for p in place_folders(source_folders, overrides)}
    target_folders = {join_path(folder.path): folder for folder in target.folders()}
    # Every folder listed up front, one ``inventory`` call a side (pipelined where it can be).
    listed = sorted(
        (f for f in source_folders if join_path(f.path) in placed), key=lambda f: f.path
    )
    wanted = sorted(
        {
            jobs[path].target_path
            for path in map(join_path, (f.path for f in listed))
            if path in jobs and jobs[path].target_path in target_folders
        }
    )
    folders_held = [target_folders[path] for path in wanted]
    # The two sides are two servers (or two connections): list them at the same time, which
    # halves the wait. Each connector stays on one thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        source_listing = pool.submit(source.inventory, listed)
        held_listing = target.inventory(folders_held)
        on_source = dict(zip(listed, source_listing.result(), strict=True))
    # target path -> target id -> size
    listings = dict(zip(wanted, held_listing, strict=True))
    fingerprints: dict[str, dict[str, str]] = {}
    keys: dict[str, dict[str, str]] = {}  # target path -> target id -> key kept from its source
    if deep:
        for path in wanted:
            found = target.fingerprints(target_folders[path])
            fingerprints[path] = {t: fp for fp, ids in found.items() for t in ids}
            keys[path] = target.recovery_keys(target_folders[path])
    claimed: dict[str, set[str]] = defaultdict(set)  # target path -> ids mailferry put there
    folders, missing_rows = [], []

    for folder in sorted(source_folders, key=lambda f: f.path):
        path = join_path(folder.path)
        record = _empty(path)
        folders.append(record)
        if path not in placed:
            record.update(excluded=folder.count, source_items=folder.count)
            record["source_bytes"] = folder.size
            continue
        refs = on_source[folder]
        record["source_items"] = len(refs)
        record["source_bytes"] = sum(refs.values())
        job = jobs.get(path)
        held = listings.get(job.target_path, {}) if job is not None else {}
        if job is not None:
            record["target"] = job.target_path
        rows = copied.get(path, {})
        if job is not None and job.target_path:
            claimed[job.target_path].update(row[3] for row in rows.values() if row[3])
        unnamed = _unnamed_sizes(rows, held)
        kept = keys.get(record["target"], {})
        source_keys = source.recovery_keys(folder) if kept else {}
        for source_id in refs:
            row = rows.get(source_id)
            if row is not None:
                present = row[3] in held if row[3] else unnamed.take(row[4])
                stored = fingerprints.get(record["target"], {}).get(row[3])
                key = kept.get(row[3])
                same = stored == row[5] or (key is not None and key == source_keys.get(source_id))
                if not present:
                    _count(record, "missing", source_id)
                    missing_rows.append(row[0])
                elif deep and row[3] and not same and not row[6]:
                    # Other content under the id mailferry stored (an altered copy is flagged
                    # when stored, and counted as altered instead).
                    _count(record, "changed", source_id)
                    missing_rows.append(row[0])
                else:
                    record["copied"] += 1
                    record["altered"] += bool(row[6])
            elif (path, source_id) in failures:
                record["failed"] += 1
                record["reason"] = record["reason"] or failures[(path, source_id)]
            elif job is not None and job.state == FolderJob.State.FAILED and not job.target_path:
                record["failed"] += 1  # the target could not hold the folder
                record["reason"] = record["reason"] or job.error
            else:
                _count(record, "new", source_id)
        record["gone_from_source"] = sum(1 for sid in rows if sid not in refs)

    # What the target holds that mailferry did not put there.
    by_target = {record["target"]: record for record in folders if record["target"]}
    extra_folders = []
    for path, folder in sorted(target_folders.items()):
        if path in listings:
            held = listings[path]
            extra = [tid for tid in held if tid not in claimed[path]]
            record = by_target[path]
            record["target_items"] = len(held)
            record["target_bytes"] = sum(held.values())
            record["extra"] = len(extra)
            record["extra_ids"] = extra[:IDS_SHOWN]
        elif folder.count:
            record = _empty("")
            record.update(target=path, target_items=folder.count, extra=folder.count)
            record["target_bytes"] = folder.size
            extra_folders.append(record)
    for record in folders:
        if record["target"] and record["target"] not in target_folders:
            record["note"] = f"the target has no folder {record['target']}"
    folders.extend(extra_folders)
    totals = {
        name: sum(record[name] for record in folders)
        for name in (
            "source_items",
            "source_bytes",
            "target_items",
            "target_bytes",
            "copied",
            *COUNTS,
        )
    }
    # What keeps the mailbox from being verified: every source item not on the target.
    totals["missing_all"] = totals["missing"] + totals["new"] + totals["changed"]
    return {
        "deep": deep,
        "error": "",
        "folders": folders,
        "totals": totals,
        "missing_rows": missing_rows[:MISSING_ROWS_KEPT],
        "missing_rows_capped": len(missing_rows) > MISSING_ROWS_KEPT,
    }


def _empty(path: str) -> dict:
    return {
        "folder": path,
        "target": "",
        "source_items": 0,
        "source_bytes": 0,
        "target_items": 0,
        "target_bytes": 0,
        "copied": 0,
        **{name: 0 for name in COUNTS},
        "gone_from_source": 0,
        "missing_ids": [],
        "new_ids": [],
        "extra_ids": [],
        "reason": "",
    }


def _count(record: dict, name: str, source_id: str) -> None:
    record[name] += 1
    key = "new_ids" if name == "new" else "missing_ids"
    if len(record[key]) < IDS_SHOWN:
        record[key].append(source_id)


class _unnamed_sizes:  # noqa: N801 - used like a function
    """Copies recorded without a target id (an IMAP server without UIDPLUS): one target item
    of the same size, not claimed by a named copy, stands for each."""

    def __init__(self, rows, held: dict[str, int]):
        named = {row[3] for row in rows.values() if row[3]}
        self.sizes: dict[int, int] = defaultdict(int)
        if any(not row[3] for row in rows.values()):
            for target_id, size in held.items():
                if target_id not in named:
                    self.sizes[size] += 1

    def take(self, size: int) -> bool:
        if self.sizes.get(size, 0) > 0:
            self.sizes[size] -= 1
            return True
        return False


def differences(mailbox: Mailbox) -> list[dict]:
    """The folders of the last verification with something to say, for the pages."""
    return [
        record
        for record in (mailbox.verification or {}).get("folders", [])
        if any(record.get(name) for name in COUNTS) or record.get("note")
    ]


def summary_line(mailbox: Mailbox) -> str:
    """``ADDRESS verified=yes|no missing=N failed=N excluded=N extra=N`` (the command's)."""
    totals = (mailbox.verification or {}).get("totals", {})
    verified = "yes" if mailbox.verified else "no"
    counts = " ".join(
        f"{name}={totals.get('missing_all' if name == 'missing' else name, 0)}"
        for name in ("missing", "failed", "excluded", "extra")
    )
    return f"{mailbox.source_address} verified={verified} {counts}"


def folder_lines(mailbox: Mailbox) -> list[str]:
    result = mailbox.verification or {}
    lines = []
    if result.get("error"):
        lines.append(f"  error: {result['error']}")
    for record in differences(mailbox):
        parts = []
        missing = record["missing"] + record["new"] + record["changed"]
        if missing:
            why = [
                f"{record[name]} {label}"
                for name, label in (
                    ("missing", "gone from the target"),
                    ("new", "new on the source"),
                    ("changed", "changed on the target"),
                )
                if record[name]
            ]
            parts.append(f"missing={missing} ({', '.join(why)})")
        for name in ("failed", "excluded", "extra", "altered"):
            if record[name]:
                parts.append(f"{name}={record[name]}")
        if record.get("reason"):
            parts.append(f"reason: {record['reason']}")
        if record.get("note"):
            parts.append(record["note"])
        name = record["folder"] or f"(target only) {record['target']}"
        lines.append(f"  folder {name}: {' '.join(parts)}")
    return lines


# --- "Copy what is missing" ---------------------------------------------------------------


def forget_missing(mailbox_ids) -> int:
    """Before a "Copy what is missing" pass: drop the records of the items the last
    verification found missing on the target (they prove nothing any more), so the pass,
    which plans like a full one, copies exactly those again (and what is new). The lifetime
    figures of what is on the target lose them too. Returns how many records were dropped."""
    dropped = 0
    mailboxes = Mailbox.objects.filter(pk__in=list(mailbox_ids)).only("pk", "verification")
    for mailbox in mailboxes:
        rows = (mailbox.verification or {}).get("missing_rows") or []
        if not rows:
            continue
        records = CopiedItem.objects.filter(mailbox_id=mailbox.pk, pk__in=rows)
        items = records.count()
        size = sum(records.values_list("size", flat=True))
        records.delete()
        verification = {**mailbox.verification, "missing_rows": []}
        Mailbox.objects.filter(pk=mailbox.pk).update(
            verification=verification,
            items_on_target=F("items_on_target") - items,
            bytes_on_target=F("bytes_on_target") - size,
        )
        dropped += items
    return dropped
