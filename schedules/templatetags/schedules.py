from datetime import datetime

from django import template
from django.db.models import Count
from django.utils import timezone

from mailboxes.models import Mailbox

from ..forms import RunWindowForm, ScheduleForm
from ..models import Schedule, zone

register = template.Library()


def _counts(project_ids) -> dict[int, dict[str, int]]:
    rows = Mailbox.objects.filter(project__in=project_ids).values("project", "state")
    counts: dict[int, dict[str, int]] = {}
    for row in rows.annotate(n=Count("id")):
        counts.setdefault(row["project"], {})[row["state"]] = row["n"]
    return counts


def when(moment: datetime, project, now: datetime | None = None) -> str:
    """'tonight 22:00', 'tomorrow 06:00', 'Sat 5 Dec 22:00': in the project's time zone."""
    tz = zone(project)
    local, today = moment.astimezone(tz), (now or timezone.now()).astimezone(tz).date()
    days = (local.date() - today).days
    if days == 0:
        day = "tonight" if local.hour >= 18 else "today"
    elif days == 1:
        day = "tomorrow"
    else:
        day = f"{local:%a} {local.day} {local:%b}"
    return f"{day} {local:%H:%M}"


def describe(schedule: Schedule, by_state: dict[str, int]) -> str:
    count = schedule.mailbox_count(by_state)
    kind = schedule.get_kind_display().lower()
    noun = "mailbox" if count == 1 else "mailboxes"
    return f"{kind} for {count} {noun}, {when(schedule.run_at, schedule.project)}"


@register.simple_tag
def next_schedules(projects) -> dict[int, str]:
    """Project id -> its next schedule, described: two queries for the whole dashboard."""
    ids = [project.pk for project in projects]
    upcoming = {}
    for schedule in Schedule.objects.pending().filter(project__in=ids).select_related("project"):
        upcoming.setdefault(schedule.project_id, schedule)
    counts = _counts(list(upcoming))
    return {pk: describe(s, counts.get(pk, {})) for pk, s in upcoming.items()}


@register.simple_tag
def next_runs(project, limit: int = 3) -> list[str]:
    """The project's next schedules, described: one query when none, two otherwise."""
    upcoming = list(project.schedules.pending()[:limit])
    counts = _counts([project.pk]).get(project.pk, {}) if upcoming else {}
    for schedule in upcoming:
        schedule.project = project
    return [describe(schedule, counts) for schedule in upcoming]


@register.filter
def for_project(upcoming: dict, project) -> str:
    return upcoming.get(project.pk, "")


def card_context(project, **forms) -> dict:
    """The card's rows and its two forms; ``forms`` carries a refused form back, as typed."""
    schedules = list(project.schedules.select_related("project"))
    counts = _counts([project.pk]).get(project.pk, {})
    for schedule in schedules:
        if schedule.run_at:
            schedule.description = describe(schedule, counts)
    return {
        "project": project,
        "schedules": schedules,
        "windows": list(project.run_windows.all()),
        "schedule_form": ScheduleForm(project=project),
        "window_form": RunWindowForm(),
        **forms,
    }
