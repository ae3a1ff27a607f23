from contextlib import suppress

from django.core.management.base import BaseCommand, CommandError

from audit import log as audit
from projects.models import Project

from ...models import END_USER_KINDS
from ...services import TransientDelivery, deliver, missing_values, queue_for


class Command(BaseCommand):
    help = "Send an end-user message to a project's mailboxes (their current, source address)."

    def add_arguments(self, parser):
        parser.add_argument("project_id", type=int)
        parser.add_argument("--template", required=True, choices=[k.value for k in END_USER_KINDS])
        parser.add_argument("--mailbox", action="append", default=[], metavar="ADDRESS")
        parser.add_argument("--again", action="store_true", help="send even if sent before")

    def handle(self, project_id, template, mailbox, again, **options):
        project = Project.objects.filter(pk=project_id).first()
        if project is None:
            raise CommandError(f"No project {project_id}.")
        problem = missing_values(project, template)
        if problem:
            raise CommandError(problem, returncode=2)
        mailboxes = project.mailboxes.select_related("project").order_by("source_address")
        if mailbox:
            mailboxes = mailboxes.filter(source_address__in=mailbox)
            missing = set(mailbox) - {m.source_address for m in mailboxes}
            if missing:
                raise CommandError(f"Not in project {project_id}: {', '.join(sorted(missing))}")
        queued = queue_for(mailboxes, template, again=again)
        # Each message's line below says what became of it, transient trouble included.
        with suppress(TransientDelivery):
            deliver([notice for _, notice, new in queued if new])
        failed = 0
        for box, notice, new in queued:
            notice.refresh_from_db()
            if not new and notice.delivered:
                line = f"skipped (already sent at {notice.sent_at:%Y-%m-%d %H:%M} UTC)"
            elif notice.delivered:
                line = "sent" if notice.state == notice.State.SENT else "kept in the outbox"
            else:
                failed += 1
                line = f"failed: {notice.error}"
            self.stdout.write(f"{box.source_address} {line}")
        sent = sum(new for _, _, new in queued)
        detail = f"Sent the “{template}” message to {sent} mailbox(es)"
        audit.record(None, project, audit.Action.NOTICE_SENT, detail)
        if failed:
            raise CommandError(f"{failed} message(s) failed.")
