"""Mailbox figures rolled up to a project with one aggregate query, never by scanning items.

The figures mean the same as a mailbox's own (``Counters``, ``Mailbox``): what the source holds,
what is on the target from mailferry across all passes, and the latest pass of each mailbox.
"""

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, Max, Q, Sum
from django.db.models.functions import Coalesce

from .charts import Rate
from .models import ACTIVE_STATES, UNLISTED_STATES, Counters, Mailbox

SUMMED = (*Counters.COUNTER_FIELDS, "items_on_target", "bytes_on_target", "source_items")
# Mailbox counts by state, as the project summary shows them.
STATE_COUNTS = {
    "mailboxes_new": (Mailbox.State.NEW,),
    "mailboxes_queued": (Mailbox.State.QUEUED,),
    "mailboxes_running": (Mailbox.State.LISTING, Mailbox.State.COPYING),
    "mailboxes_copying": (Mailbox.State.COPYING,),
    "mailboxes_paused": (Mailbox.State.PAUSED,),
    "mailboxes_done": (Mailbox.State.DONE,),
    "mailboxes_done_with_errors": (Mailbox.State.DONE_WITH_ERRORS,),
    "mailboxes_failed": (Mailbox.State.FAILED,),
    "mailboxes_active": ACTIVE_STATES,
    # Started, but the pass does not know its whole to do yet.
    "mailboxes_unlisted": tuple(state for state in UNLISTED_STATES if state != Mailbox.State.NEW),
}


def rollup_annotations(prefix: str = "") -> dict:
    """Aggregates over mailboxes; ``prefix`` leads from the annotated model ("mailboxes__")."""

    def count_state(states):
        return Count(f"{prefix}pk", filter=Q(**{f"{prefix}state__in": states}))

    return {
        **{name: Coalesce(Sum(f"{prefix}{name}"), 0) for name in SUMMED},
        # Aliases apart from the field names: the counts below filter on those fields.
        "source_size": Sum(f"{prefix}source_bytes"),
        # Listed, but the server gave no folder sizes (never listed is counted apart).
        "source_unsized": Count(
            f"{prefix}pk",
            filter=Q(
                **{
                    f"{prefix}source_bytes__isnull": True,
                    f"{prefix}source_listed_at__isnull": False,
                }
            ),
        ),
        "source_last_listed": Max(f"{prefix}source_listed_at"),
        "mailboxes_unlisted_source": Count(
            f"{prefix}pk", filter=Q(**{f"{prefix}source_listed_at__isnull": True})
        ),
        "mailboxes_total": Count(f"{prefix}pk"),
        **{name: count_state(states) for name, states in STATE_COUNTS.items()},
    }


@dataclass
class Totals:
    items_total: int = 0
    items_copied: int = 0
    items_skipped: int = 0
    items_failed: int = 0
    bytes_total: int = 0
    bytes_copied: int = 0
    bytes_skipped: int = 0
    bytes_failed: int = 0
    items_updated: int = 0
    items_on_target: int = 0
    bytes_on_target: int = 0
    source_items: int = 0
    source_bytes: int | None = None
    source_unsized: int = 0
    source_listed_at: datetime | None = None
    mailboxes_unlisted_source: int = 0
    mailboxes_total: int = 0
    mailboxes_new: int = 0
    mailboxes_queued: int = 0
    mailboxes_running: int = 0
    mailboxes_copying: int = 0
    mailboxes_paused: int = 0
    mailboxes_done: int = 0
    mailboxes_done_with_errors: int = 0
    mailboxes_failed: int = 0
    mailboxes_active: int = 0
    mailboxes_unlisted: int = 0
    rate: Rate = field(default_factory=Rate)

    NOT_SUMMED = ("rate", "source_bytes", "source_listed_at")

    @classmethod
    def from_row(cls, row, rate: Rate | None = None) -> "Totals":
        """From an ``aggregate()`` dict or an object annotated with ``rollup_annotations``."""
        get = row.get if isinstance(row, dict) else lambda name: getattr(row, name)
        names = [name for name in cls.__dataclass_fields__ if name not in cls.NOT_SUMMED]
        totals = cls(**{name: get(name) or 0 for name in names}, rate=rate or Rate())
        totals.source_bytes = get("source_size")
        totals.source_listed_at = get("source_last_listed")
        if totals.source_unsized:
            totals.source_bytes = None  # some server did not say; a partial sum would mislead
        return totals

    # The same arithmetic as one mailbox's figures.
    items_done = Counters.items_done
    bytes_done = Counters.bytes_done
    percent = Counters.percent
    bytes_percent = Counters.bytes_percent
    _percent = Counters._percent

    @property
    def has_pass(self) -> bool:
        return self.mailboxes_total > self.mailboxes_new

    @property
    def listing_complete(self) -> bool:
        return not self.mailboxes_unlisted and self.has_pass

    @property
    def is_finished(self) -> bool:
        finished = self.mailboxes_done + self.mailboxes_done_with_errors + self.mailboxes_failed
        return bool(self.mailboxes_total) and finished == self.mailboxes_total

    @property
    def state(self) -> tuple[str, str]:
        """(state, label) of the project's mailboxes as one badge: it follows them."""
        if self.mailboxes_failed:
            return "failed", f"{self.mailboxes_failed} failed"
        if self.mailboxes_running:
            return "copying", "listing or copying" if self.mailboxes_unlisted else "copying"
        if self.mailboxes_queued:
            return "queued", "queued"
        if self.mailboxes_paused:
            return "paused", "paused"
        if not self.has_pass:
            return "new", "not started"
        if self.mailboxes_new:
            return "new", f"{self.mailboxes_new} not started"
        if self.mailboxes_done_with_errors:
            return "done_with_errors", "done with errors"
        return "done", "done"

    @property
    def errors(self) -> int:
        return self.items_failed + self.mailboxes_failed

    @property
    def is_live(self) -> bool:
        return self.mailboxes_active > 0

    @property
    def throughput(self) -> Rate:
        """The recent rate while something copies; zero the moment nothing does."""
        return self.rate if self.mailboxes_running else Rate()

    @property
    def eta(self):
        if not self.mailboxes_copying or not self.listing_complete:
            return None
        return self.rate.eta(self.bytes_total - self.bytes_done, self.items_total - self.items_done)


def mailbox_totals(mailboxes, rate: Rate | None = None) -> Totals:
    return Totals.from_row(mailboxes.aggregate(**rollup_annotations()), rate)
