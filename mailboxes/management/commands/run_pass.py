"""Start a pass for a project's mailboxes from the command line, and wait for it if asked.

    manage.py run_pass PROJECT_ID --kind full [--mailbox ann@old.example ...] --wait

Through the worker when one answers, otherwise (or with ``--inline``) in this process, which
then always waits. With ``--wait``: progress on stderr, then one line per mailbox on stdout,
``ADDRESS state=STATE copied=N failed=N``, each followed by its failures (folder, item and
the server's reason). Exits 1 when a mailbox failed, is done with errors or did not finish, or
when the passes were refused (the identity guard, or a pass held by a running process: nothing
is started then); 2 on bad arguments.

``--kind missing`` ("Copy what is missing") copies exactly what each mailbox's last
verification found missing on the target (and what is new on the source); run ``verify``
first. A full, delta or missing pass is followed by a verification: queued for the worker, or,
when this process copied, run here once the passes end.
"""

from django.core.management.base import BaseCommand, CommandError

from audit import log as audit
from mailboxes import verification
from mailboxes.management import passes
from mailboxes.models import Mailbox, PassKind
from projects.models import Project


class Command(BaseCommand):
    help = (
        "Start a pre-stage, full, delta or 'copy what is missing' pass for a project's mailboxes."
    )

    def add_arguments(self, parser):
        passes.add_selection_arguments(parser)
        parser.add_argument("--kind", required=True, choices=[k.value for k in PassKind])
        parser.add_argument(
            "--older-than", type=int, default=None, help="pre-stage: items older than DAYS"
        )
        parser.add_argument("--wait", action="store_true", help="wait for the passes to end")
        parser.add_argument(
            "--inline", action="store_true", help="copy in this process instead of the worker"
        )

    def handle(self, *args, **options):
        if options["kind"] == PassKind.PRESTAGE and options["older_than"] is None:
            raise CommandError("--kind prestage needs --older-than DAYS.", returncode=2)
        mailboxes = passes.selected_mailboxes(options["project_id"], options["mailbox"])
        runner = passes.Runner(self.stderr, inline=options["inline"])
        started = runner.start(mailboxes, options["kind"], options["older_than"])
        kind = PassKind(options["kind"]).label.lower()
        detail = f"Started a {kind} pass for {len(started)} mailbox(es)"
        project = Project.objects.get(pk=options["project_id"])
        audit.record(None, project, audit.Action.PASS_STARTED, detail)
        if not (options["wait"] or runner.inline):
            for mailbox_pass in started:
                self.stdout.write(f"{mailbox_pass.mailbox} queued")
            return
        runner.run(started)
        if runner.inline:
            # No worker runs the verification the passes queued: this process does.
            for mailbox_pass in started:
                if mailbox_pass.kind in verification.VERIFIED_AFTER and mailbox_pass.finished_at:
                    verification.verify(mailbox_pass.mailbox)
        failed = 0
        for mailbox_pass in started:
            mailbox = Mailbox.objects.get(pk=mailbox_pass.mailbox_id)
            self.stdout.write(
                f"{mailbox} state={mailbox.state} copied={mailbox_pass.items_copied} "
                f"failed={mailbox_pass.items_failed}"
            )
            for line in passes.failures(mailbox_pass):
                self.stdout.write(f"  {line}")
            failed += not passes.succeeded(mailbox_pass)
        if failed:
            raise CommandError(f"{failed} of {len(started)} mailbox(es) did not finish cleanly.")
