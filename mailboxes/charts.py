"""Throughput from ``ProgressSample`` rows: the current rate, the ETA and a small SVG chart.

Every function here reads with one aggregate query whatever the number of samples, so the pages
cost the same for ten mailboxes or ten thousand.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Min, Sum
from django.db.models.functions import Trunc
from django.utils import timezone

from .models import MailboxPass

# The rate is what the last few minutes copied: long enough to smooth out batch boundaries,
# short enough that a stalled migration shows zero quickly.
RATE_WINDOW = timedelta(minutes=5)
# A pass that started seconds ago would otherwise show a wildly inflated rate.
MIN_RATE_SPAN = timedelta(seconds=10)
# The chart spans the recent activity, from its first sample: at least a few minutes (a short
# pass is not a sliver of an hour), at most an hour, in at most CHART_BARS bars of the smallest
# of these sizes that fits (a 5-minute window has 5-second bars, an hour one-minute bars).
CHART_MAX_WINDOW = timedelta(hours=1)
CHART_MIN_WINDOW = timedelta(minutes=5)
CHART_BARS = 60
BUCKET_SECONDS = (5, 10, 15, 20, 30, 60)


@dataclass(frozen=True)
class Rate:
    items_per_second: float = 0.0
    bytes_per_second: float = 0.0

    @classmethod
    def from_window(cls, items, bytes_, first_at: datetime | None, now: datetime) -> "Rate":
        if not first_at:
            return cls()
        span = max(now - first_at, MIN_RATE_SPAN).total_seconds()
        return cls((items or 0) / span, (bytes_ or 0) / span)

    def eta(self, bytes_left: int, items_left: int) -> timedelta | None:
        """Time left at the current rate; None when nothing moves (no estimate is honest).

        Items first: items found already on the target count as done but add no copied bytes,
        so after a re-run the bytes left never reach zero.
        """
        if items_left > 0 and self.items_per_second > 0:
            return timedelta(seconds=items_left / self.items_per_second)
        if bytes_left > 0 and self.bytes_per_second > 0:
            return timedelta(seconds=bytes_left / self.bytes_per_second)
        return None


def rate_window_start(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - RATE_WINDOW


# Only the samples of passes under way are throughput now.
UNDER_WAY = (MailboxPass.State.PLANNING, MailboxPass.State.RUNNING)


def _recent(samples, now: datetime):
    """The samples of the rate window copied by passes still under way: the speed of a pass that
    ended minutes ago is no throughput now (a new pass still listing showed it)."""
    return samples.filter(at__gte=rate_window_start(now), mailbox_pass__state__in=UNDER_WAY)


def current_rate(samples) -> Rate:
    """The rate over ``RATE_WINDOW`` of a ``ProgressSample`` queryset (one query)."""
    now = timezone.now()
    window = _recent(samples, now).aggregate(
        items=Sum("items"), bytes=Sum("bytes"), first_at=Min("at")
    )
    return Rate.from_window(window["items"], window["bytes"], window["first_at"], now)


def rates_by(samples, field: str) -> dict[int, Rate]:
    """Rates of many mailboxes or projects at once, keyed by ``field`` (one query)."""
    now = timezone.now()
    rows = (
        _recent(samples, now)
        .order_by()
        .values(field)
        .annotate(items=Sum("items"), bytes=Sum("bytes"), first_at=Min("at"))
    )
    return {
        row[field]: Rate.from_window(row["items"], row["bytes"], row["first_at"], now)
        for row in rows
    }


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    height: float
    label: str
    bytes_per_second: float


@dataclass
class Chart:
    """Bytes per second per bucket from ``start`` to ``end``, laid out for an SVG viewBox."""

    bars: list[Bar]
    peak_bytes_per_second: float
    start: datetime | None = None
    end: datetime | None = None
    bucket_seconds: int = 60
    width: int = 600
    height: int = 80

    @property
    def is_empty(self) -> bool:
        return not self.bars

    @property
    def span_seconds(self) -> float:
        return (self.end - self.start).total_seconds() if self.start and self.end else 0.0

    @property
    def bar_width(self) -> float:
        """One bucket wide, less a tenth for the gap between bars."""
        if not self.span_seconds:
            return 0.0
        return round(0.9 * self.width * self.bucket_seconds / self.span_seconds, 1)

    @property
    def start_label(self) -> str:
        return f"{timezone.localtime(self.start):%H:%M}" if self.start else ""

    @property
    def end_label(self) -> str:
        return f"{timezone.localtime(self.end):%H:%M}" if self.end else ""

    @property
    def bucket_label(self) -> str:
        return "minute" if self.bucket_seconds == 60 else f"{self.bucket_seconds} s"


def _bucket_size(span_seconds: float) -> int:
    return next((b for b in BUCKET_SECONDS if span_seconds / b <= CHART_BARS), BUCKET_SECONDS[-1])


def _floor(moment: datetime, seconds: int) -> datetime:
    """``moment`` down to a multiple of ``seconds`` since the epoch: bars keep their place
    from one poll to the next while the window's ends move."""
    epoch = moment.timestamp()
    return moment - timedelta(seconds=epoch % seconds)


def throughput_chart(samples) -> Chart:
    """The chart of a ``ProgressSample`` queryset, from one aggregate query (per second over
    at most an hour, so at most 3,600 rows whatever the number of samples)."""
    now = timezone.now()
    rows = (
        samples.filter(at__gte=now - CHART_MAX_WINDOW)
        .annotate(second=Trunc("at", "second"))
        .order_by()
        .values("second")
        .annotate(bytes=Sum("bytes"))
        .order_by("second")
    )
    per_second = [(row["second"], row["bytes"] or 0) for row in rows if row["bytes"]]
    if not per_second:
        return Chart(bars=[], peak_bytes_per_second=0)
    first, last = per_second[0][0], per_second[-1][0]
    # Still copying (a sample within the rate window): the chart ends now. A pass that ended
    # earlier is shown whole, ending at its last sample, instead of shrinking to the left.
    end = now if now - last <= RATE_WINDOW else last + timedelta(seconds=1)
    start = min(first, end - CHART_MIN_WINDOW)
    bucket = _bucket_size((end - start).total_seconds())
    totals: dict[datetime, int] = {}
    for second, size in per_second:
        key = _floor(second, bucket)
        totals[key] = totals.get(key, 0) + size
    rates = {key: size / bucket for key, size in totals.items()}
    chart = Chart(
        bars=[],
        peak_bytes_per_second=max(rates.values()),
        start=start,
        end=end,
        bucket_seconds=bucket,
    )
    span = chart.span_seconds
    label_format = "%H:%M" if bucket == 60 else "%H:%M:%S"
    for key in sorted(rates):
        rate = rates[key]
        height = max(1.0, chart.height * rate / chart.peak_bytes_per_second)
        x = chart.width * max(0.0, (key - start).total_seconds()) / span
        chart.bars.append(
            Bar(
                x=round(min(x, chart.width - chart.bar_width), 1),
                y=round(chart.height - height, 1),
                height=round(height, 1),
                label=f"{timezone.localtime(key):{label_format}}",
                bytes_per_second=rate,
            )
        )
    return chart
