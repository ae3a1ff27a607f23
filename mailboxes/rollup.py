"""Mailbox counters rolled up to a project with one aggregate query, never by scanning items."""

from dataclasses import dataclass, field

from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce

from .charts import Rate
from .models import Counters, Mailbox

ACTIVE_STATES = (Mailbox.State.QUEUED, Mailbox.State.RUNNING)


def rollup_annotations(prefix: str = "") -> dict:
    """Aggregates over mailboxes; ``prefix`` leads from the annotated model ("mailboxes__")."""

    def total(name):
        return Coalesce(Sum(f"{prefix}{name}"), 0)

    def count_state(*states):
        return Count(f"{prefix}pk", filter=Q(**{f"{prefix}state__in": states}))

    return {
        "items_total": total("items_total"),
        "items_copied": total("items_copied"),
        "items_skipped": total("items_skipped"),
        "items_failed": total("items_failed"),
        "bytes_total": total("bytes_total"),
        "bytes_copied": total("bytes_copied"),
        "mailboxes_total": Count(f"{prefix}pk"),
        "mailboxes_done": count_state(Mailbox.State.DONE),
        "mailboxes_active": count_state(*ACTIVE_STATES),
        "mailboxes_failed": count_state(Mailbox.State.FAILED),
        "mailboxes_new": count_state(Mailbox.State.NEW),
    }


@dataclass
class Totals:
    items_total: int = 0
    items_copied: int = 0
    items_skipped: int = 0
    items_failed: int = 0
    bytes_total: int = 0
    bytes_copied: int = 0
    mailboxes_total: int = 0
    mailboxes_done: int = 0
    mailboxes_active: int = 0
    mailboxes_failed: int = 0
    mailboxes_new: int = 0
    rate: Rate = field(default_factory=Rate)

    @classmethod
    def from_row(cls, row, rate: Rate | None = None) -> "Totals":
        """From an ``aggregate()`` dict or an object annotated with ``rollup_annotations``."""
        get = row.get if isinstance(row, dict) else lambda name: getattr(row, name)
        names = [name for name in cls.__dataclass_fields__ if name != "rate"]
        return cls(**{name: get(name) or 0 for name in names}, rate=rate or Rate())

    # The same arithmetic as one row's counters.
    items_done = Counters.items_done
    percent = Counters.percent

    @property
    def is_finished(self) -> bool:
        return bool(self.mailboxes_total) and self.mailboxes_done == self.mailboxes_total

    @property
    def bytes_percent(self) -> int:
        if not self.bytes_total:
            return self.percent
        return min(100, int(100 * self.bytes_copied / self.bytes_total))

    @property
    def errors(self) -> int:
        return self.items_failed + self.mailboxes_failed

    @property
    def is_live(self) -> bool:
        return self.mailboxes_active > 0

    @property
    def eta(self):
        return self.rate.eta(
            self.bytes_total - self.bytes_copied, self.items_total - self.items_done
        )


def mailbox_totals(mailboxes, rate: Rate | None = None) -> Totals:
    return Totals.from_row(mailboxes.aggregate(**rollup_annotations()), rate)
