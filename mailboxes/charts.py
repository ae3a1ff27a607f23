"""Throughput from ``ProgressSample`` rows: the current rate, the ETA and a small SVG chart.

Every function here reads with one aggregate query whatever the number of samples, so the pages
cost the same for ten mailboxes or ten thousand.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Min, Sum
from django.db.models.functions import Trunc
from django.utils import timezone

# The rate is what the last few minutes copied: long enough to smooth out batch boundaries,
# short enough that a stalled migration shows zero quickly.
RATE_WINDOW = timedelta(minutes=5)
# A pass that started seconds ago would otherwise show a wildly inflated rate.
MIN_RATE_SPAN = timedelta(seconds=10)
CHART_WINDOW = timedelta(hours=1)
CHART_BUCKET = "minute"


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


def current_rate(samples) -> Rate:
    """The rate over ``RATE_WINDOW`` of a ``ProgressSample`` queryset (one query)."""
    now = timezone.now()
    window = samples.filter(at__gte=rate_window_start(now)).aggregate(
        items=Sum("items"), bytes=Sum("bytes"), first_at=Min("at")
    )
    return Rate.from_window(window["items"], window["bytes"], window["first_at"], now)


def rates_by(samples, field: str) -> dict[int, Rate]:
    """Rates of many mailboxes or projects at once, keyed by ``field`` (one query)."""
    now = timezone.now()
    rows = (
        samples.filter(at__gte=rate_window_start(now))
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


@dataclass(frozen=True)
class Chart:
    """Bytes per second per minute over the last hour, laid out for an SVG viewBox."""

    bars: list[Bar]
    peak_bytes_per_second: float
    width: int = 600
    height: int = 80
    bar_width: int = 9  # one minute is 10 units wide; 1 unit of gap

    @property
    def is_empty(self) -> bool:
        return not self.bars


def throughput_chart(samples) -> Chart:
    now = timezone.now()
    start = now - CHART_WINDOW
    rows = (
        samples.filter(at__gte=start)
        .annotate(bucket=Trunc("at", CHART_BUCKET))
        .order_by()
        .values("bucket")
        .annotate(bytes=Sum("bytes"))
        .order_by("bucket")
    )
    per_second = [(row["bucket"], (row["bytes"] or 0) / 60) for row in rows]
    peak = max((rate for _, rate in per_second), default=0)
    if not peak:
        return Chart(bars=[], peak_bytes_per_second=0)
    chart = Chart(bars=[], peak_bytes_per_second=peak)
    span = CHART_WINDOW.total_seconds()
    for bucket, rate in per_second:
        height = max(1.0, chart.height * rate / peak)
        x = chart.width * max(0.0, (bucket - start).total_seconds()) / span
        label = f"{timezone.localtime(bucket):%H:%M}"
        chart.bars.append(
            Bar(
                x=round(x, 1),
                y=round(chart.height - height, 1),
                height=round(height, 1),
                label=label,
                bytes_per_second=rate,
            )
        )
    return chart
