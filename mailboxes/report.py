"""The final report of a project: per user, what the source holds, what is on the target from
mailferry across all passes, what the passes copied, and what never arrived, with the servers'
reasons, and how many copies the target server altered. Built in a few queries whatever the
project's size."""

import re
from collections import defaultdict

from django.db.models import Count, Exists, OuterRef, Sum

from . import csvsafe
from .models import CopiedItem, ItemError, MailboxPass

# An IMAP item id is "UIDVALIDITY:UID"; other connectors' ids never have this form.
_IMAP_ID = re.compile(r"\d+:(\d+)")

COLUMNS = (
    "source_address",
    "target_address",
    "display_name",
    "state",
    "passes",
    "last_pass",
    "source_items",
    "source_bytes",
    "items_on_target",
    "bytes_on_target",
    "items_copied",
    "bytes_copied",
    "items_failed",
    "failure_reasons",
    # Copied, but the target server stored something else (CopiedItem.altered says what).
    "items_altered",
    "error",
    # The last verification (``mailboxes.verification``); empty until one ran.
    "target_items",
    "items_excluded",
    "items_missing",
    "verified",
    "verified_at",
)


def _totals(project) -> dict[int, dict]:
    passes = MailboxPass.objects.filter(mailbox__project=project).values("mailbox_id")
    return {
        row["mailbox_id"]: row
        for row in passes.annotate(
            passes=Count("id"), copied=Sum("items_copied"), bytes=Sum("bytes_copied")
        )
    }


def _last_pass(project) -> dict[int, str]:
    latest = {}
    for mailbox_id, kind, state in (
        MailboxPass.objects.filter(mailbox__project=project)
        .order_by("mailbox_id", "started_at", "id")
        .values_list("mailbox_id", "kind", "state")
    ):
        latest[mailbox_id] = f"{kind} ({state})"
    return latest


def _failures(project) -> dict[int, dict[str, set]]:
    """Items that failed and were never copied by a later pass, grouped by reason. A message
    that failed again after its folder's UIDVALIDITY changed is one failure, not two: it is
    known by its folder, UID and size, whatever the UIDVALIDITY."""
    copied_later = CopiedItem.objects.filter(
        mailbox_id=OuterRef("folder_job__mailbox_id"),
        source_path=OuterRef("folder_job__source_path"),
        source_id=OuterRef("source_id"),
    )
    errors = (
        ItemError.objects.filter(folder_job__mailbox__project=project)
        .exclude(Exists(copied_later))
        .values_list(
            "folder_job__mailbox_id", "folder_job__source_path", "source_id", "size", "reason"
        )
    )
    failures = defaultdict(lambda: defaultdict(set))
    for mailbox_id, path, source_id, size, reason in errors:
        failures[mailbox_id][reason].add(_failed_message(path, source_id, size))
    return failures


def _failed_message(path: str, source_id: str, size: int) -> tuple:
    imap = _IMAP_ID.fullmatch(source_id)
    return (path, imap.group(1), size) if imap else (path, source_id)


def _altered(project) -> dict[int, int]:
    altered = CopiedItem.objects.filter(mailbox__project=project).exclude(altered="")
    return dict(altered.values("mailbox_id").annotate(n=Count("id")).values_list("mailbox_id", "n"))


def _reasons(by_reason: dict[str, set]) -> str:
    ordered = sorted(by_reason.items(), key=lambda item: (-len(item[1]), item[0]))
    return "; ".join(f"{len(items)} × {reason}" for reason, items in ordered)


def write_report(project, out) -> None:
    totals, last_pass, failures = _totals(project), _last_pass(project), _failures(project)
    altered = _altered(project)
    writer = csvsafe.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for mailbox in project.mailboxes.order_by("source_address"):
        total = totals.get(mailbox.pk, {})
        failed = failures.get(mailbox.pk, {})
        writer.writerow(
            [
                mailbox.source_address,
                mailbox.target_address,
                mailbox.display_name,
                mailbox.state,
                total.get("passes", 0),
                last_pass.get(mailbox.pk, ""),
                "" if mailbox.source_items is None else mailbox.source_items,
                "" if mailbox.source_bytes is None else mailbox.source_bytes,
                mailbox.items_on_target,
                mailbox.bytes_on_target,
                total.get("copied") or 0,
                total.get("bytes") or 0,
                len(set().union(*failed.values())) if failed else 0,
                _reasons(failed),
                altered.get(mailbox.pk, 0),
                mailbox.error,
                *_verification_columns(mailbox),
            ]
        )


def _verification_columns(mailbox) -> list:
    """What the target holds, excluded and missing items, and when it was verified."""
    if mailbox.verified is None:
        return ["", "", "", "", ""]
    totals = (mailbox.verification or {}).get("totals", {})
    return [
        totals.get("target_items", ""),
        totals.get("excluded", ""),
        mailbox.items_missing,
        "yes" if mailbox.verified else "no",
        mailbox.verified_at.isoformat() if mailbox.verified_at else "",
    ]
