from datetime import timedelta

from django import template
from django.template.defaultfilters import filesizeformat
from django.utils.html import format_html
from django.utils.safestring import mark_safe

register = template.Library()


@register.filter
def per_second(bytes_per_second) -> str:
    return f"{filesizeformat(bytes_per_second or 0)}/s"


@register.filter
def duration(value: timedelta | None) -> str:
    """A rough human duration for an ETA: precision beyond two units would be false."""
    if value is None:
        return "—"
    seconds = int(value.total_seconds())
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "min"), (seconds, "s")]
    shown = [f"{n} {unit}" for n, unit in parts if n][:2]
    return " ".join(shown) or "0 s"


@register.filter
def percent_of(part, whole) -> int:
    if not whole:
        return 0
    return min(100, int(100 * (part or 0) / whole))


@register.filter
def count(value, noun: str) -> str:
    """``3 items``, ``1 item``, with thousands separated: "3,040 items"."""
    value = value or 0
    return f"{value:,} {noun}{'' if value == 1 else 's'}"


@register.inclusion_tag("mailboxes/_chart.html")
def throughput_chart(chart, title):
    return {"chart": chart, "title": title}


@register.simple_tag
def progress_bar(counters, label):
    """A labelled <progress> for anything with the ``Counters`` fields (a row or an aggregate).

    A simple tag rather than an included template: it renders once per row of a polled table.
    """
    percent = counters.percent
    failed = ' class="failed"' if getattr(counters, "state", "") == "failed" else ""
    if percent is None and not getattr(counters, "has_pass", True):
        # Nothing started: an empty bar, not a moving one.
        return format_html(
            '<div class="progress-cell"><progress max="100" value="0" aria-label="{0}: not '
            'started"></progress><span class="pct muted">—</span></div>',
            label,
        )
    if percent is None:
        # Until the listing is complete there is no honest percent: an indeterminate bar.
        return format_html(
            '<div class="progress-cell"><progress aria-label="{0}: listing, no percent yet">'
            '</progress><span class="pct muted">—</span></div>',
            label,
        )
    return format_html(
        '<div class="progress-cell"><progress{2} max="100" value="{0}" aria-label="{1}: {0} % '
        'done">{0} %</progress><span class="pct">{0}&nbsp;%</span></div>',
        percent,
        label,
        mark_safe(failed),
    )
