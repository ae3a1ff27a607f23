"""Passes that start themselves: at a time in the project's time zone, once or daily until
cutover, and run windows outside which copying pauses (README, "Schedules")."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import models

from mailboxes.filters import STATE_GROUPS, MailboxFilterForm
from mailboxes.models import Mailbox
from projects.models import Project

# The project page filter's state groups and their labels ("" is "All", not a state).
STATE_CHOICES = [c for c in MailboxFilterForm.base_fields["show"].choices if c[0]]


def zone(project: Project) -> ZoneInfo:
    return ZoneInfo(project.time_zone)


class ScheduleQuerySet(models.QuerySet):
    def pending(self):
        return self.filter(run_at__isnull=False)

    def due(self, now: datetime):
        return self.filter(run_at__lte=now)


class Schedule(models.Model):
    """One pass (or verification) for a set of mailboxes at ``run_at``; a daily delta moves
    ``run_at`` on by a day (same wall-clock time) after each run, until the planned cutover.
    ``run_at`` is empty once nothing is left to run."""

    class Kind(models.TextChoices):
        PRESTAGE = "prestage", "Pre-stage"
        FULL = "full", "Full"
        DELTA = "delta", "Delta"
        VERIFY = "verify", "Verification"

    class Scope(models.TextChoices):
        ALL = "all", "All mailboxes"
        STATE = "state", "Mailboxes in a state"
        LISTED = "listed", "Listed mailboxes"

    project = models.ForeignKey(Project, models.CASCADE, related_name="schedules")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    run_at = models.DateTimeField(null=True, blank=True, db_index=True)
    daily = models.BooleanField(default=False)
    # A pre-stage copies items older than this many days at the time it runs (0: everything).
    older_than_days = models.PositiveIntegerField(null=True, blank=True)
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.ALL)
    # Scope "state": a group of the project page's filter (mailboxes.filters.STATE_GROUPS).
    state = models.CharField(max_length=20, blank=True)
    mailbox_ids = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    fired_at = models.DateTimeField(null=True, blank=True)
    times_fired = models.PositiveIntegerField(default=0)
    last_result = models.TextField(blank=True)

    objects = ScheduleQuerySet.as_manager()

    class Meta:
        ordering = [models.F("run_at").asc(nulls_last=True), "id"]

    def __str__(self):
        return f"{self.get_kind_display()} for {self.scope_label()}"

    def mailboxes(self):
        """The mailboxes as they are now: a state scope picks whoever is in it at run time."""
        mailboxes = self.project.mailboxes.all()
        if self.scope == self.Scope.STATE:
            return mailboxes.filter(state__in=STATE_GROUPS[self.state])
        if self.scope == self.Scope.LISTED:
            return mailboxes.filter(pk__in=self.mailbox_ids)
        return mailboxes

    def mailbox_count(self, by_state: dict[str, int]) -> int:
        """How many mailboxes it would run for, from the project's counts per mailbox state."""
        if self.scope == self.Scope.LISTED:
            return len(self.mailbox_ids)
        if self.scope == self.Scope.STATE:
            return sum(by_state.get(state, 0) for state in STATE_GROUPS[self.state])
        return sum(by_state.values())

    def scope_label(self) -> str:
        if self.scope == self.Scope.STATE:
            return f"mailboxes {dict(STATE_CHOICES)[self.state].lower()}"
        if self.scope == self.Scope.LISTED:
            count = len(self.mailbox_ids)
            return f"{count} listed mailbox{'es' if count != 1 else ''}"
        return "all mailboxes"

    def following_run(self, now: datetime) -> datetime | None:
        """The next daily run after ``now`` at the same local time, or None: not daily, or
        the planned cutover comes first. Days missed while beat was down are skipped, not
        caught up: one delta brings a mailbox up to date."""
        if not self.daily or self.run_at is None:
            return None
        tz = zone(self.project)
        local = self.run_at.astimezone(tz)
        wall, day = local.time().replace(tzinfo=None), local.date()
        candidate = self.run_at
        while candidate <= now:
            day += timedelta(days=1)
            candidate = datetime.combine(day, wall, tzinfo=tz)
        cutover = self.project.planned_cutover
        if cutover is None or candidate >= cutover:
            return None
        return candidate


class RunWindow(models.Model):
    """When copying may run, in the project's time zone: between ``starts`` and ``ends``
    (across midnight when ``ends`` is earlier), and all of Saturday and Sunday if
    ``weekends``. A project with no windows runs at any time."""

    project = models.ForeignKey(Project, models.CASCADE, related_name="run_windows")
    starts = models.TimeField(null=True, blank=True)
    ends = models.TimeField(null=True, blank=True)
    weekends = models.BooleanField(default=False)

    class Meta:
        ordering = ["starts", "id"]

    def __str__(self):
        hours = f"{self.starts:%H:%M}–{self.ends:%H:%M}" if self.starts is not None else ""
        return " and ".join(part for part in (hours, "weekends" * self.weekends) if part)

    def contains(self, local: datetime) -> bool:
        if self.weekends and local.weekday() >= 5:
            return True
        if self.starts is None or self.ends is None:
            return False
        moment = local.time().replace(tzinfo=None)
        if self.starts < self.ends:
            return self.starts <= moment < self.ends
        return moment >= self.starts or moment < self.ends


def window_open(windows, project: Project, now: datetime) -> bool:
    local = now.astimezone(zone(project))
    return not windows or any(window.contains(local) for window in windows)


class WindowPause(models.Model):
    """A mailbox paused because its project's run window closed: resumed when it opens,
    unlike one a person paused."""

    mailbox = models.OneToOneField(Mailbox, models.CASCADE, related_name="window_pause")
    paused_at = models.DateTimeField()

    def __str__(self):
        return f"{self.mailbox} paused by its run window at {self.paused_at}"
