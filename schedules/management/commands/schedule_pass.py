from django.core.management.base import BaseCommand, CommandError

from audit import log as audit
from projects.models import Project
from schedules.forms import ScheduleForm
from schedules.templatetags.schedules import describe


class Command(BaseCommand):
    help = "Schedule a pass for a project's mailboxes at a time in the project's time zone."

    def add_arguments(self, parser):
        parser.add_argument("project_id", type=int)
        parser.add_argument("--kind", required=True, help="prestage, full, delta or verify")
        parser.add_argument("--at", required=True, help='"2026-12-05 22:00", project time')
        parser.add_argument("--daily", action="store_true", help="deltas: daily until cutover")
        parser.add_argument("--state", default="", help="only mailboxes in this state group")

    def handle(self, project_id, kind, at, daily, state, **options):
        project = Project.objects.filter(pk=project_id).first()
        if project is None:
            raise CommandError(f"No project {project_id}.", returncode=2)
        data = {"kind": kind, "at": at, "scope": "state" if state else "all", "state": state}
        form = ScheduleForm({**data, "daily": daily or ""}, project=project)
        if not form.is_valid():
            problems = [f"{field}: {' '.join(errors)}" for field, errors in form.errors.items()]
            raise CommandError("; ".join(problems), returncode=2)
        schedule = form.save(user=None)
        audit.record(None, project, audit.Action.SCHEDULE_ADDED, f"Scheduled: {schedule}")
        counts = {}
        for mailbox in project.mailboxes.values_list("state", flat=True):
            counts[mailbox] = counts.get(mailbox, 0) + 1
        repeat = " (daily until cutover)" if schedule.daily else ""
        self.stdout.write(
            f"schedule {schedule.pk}: next {describe(schedule, counts)} {project.time_zone}{repeat}"
        )
