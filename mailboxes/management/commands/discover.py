"""Discover a project's mailboxes before copying: what each source holds, what each target
can take, and the problems.

    manage.py discover PROJECT_ID [--mailbox ADDRESS ...] [--json] [--inline]

Through the worker when one answers (waiting for it), otherwise (or with ``--inline``) in this
process. Prints one line per mailbox,
``ADDRESS items=N bytes=N folders=N largest=N over_limit=N problems=…`` (blocking problems
start with "BLOCKING:"), or with ``--json`` each mailbox's whole report. Exits 1 when any
mailbox has a blocking problem or the worker did not answer in time, 2 on bad arguments.
"""

import json
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from audit import log as audit
from mailboxes import discovery
from mailboxes.management import passes
from mailboxes.models import Mailbox

POLL_SECONDS = 0.5


class Command(BaseCommand):
    help = "Discover what a project's mailboxes hold and what their targets can take."

    def add_arguments(self, parser):
        passes.add_selection_arguments(parser)
        parser.add_argument("--json", action="store_true", help="print the reports as JSON")
        parser.add_argument(
            "--inline", action="store_true", help="discover in this process, not the worker"
        )

    def handle(self, *args, **options):
        mailboxes = passes.selected_mailboxes(options["project_id"], options["mailbox"])
        detail = f"Started discovering {len(mailboxes)} mailbox(es)"
        audit.record(None, mailboxes[0].project, audit.Action.DISCOVERY_STARTED, detail)
        ids = [mailbox.pk for mailbox in mailboxes]
        if not options["inline"] and passes.worker_answers():
            with transaction.atomic():
                discovery.request_discovery(mailboxes)
            unanswered = self._wait(ids)
        else:
            for mailbox in mailboxes:
                self.stderr.write(f"discovering {mailbox.source_address}…")
                discovery.discover_mailbox(mailbox)
            unanswered = []
        found = {m.pk: m for m in Mailbox.objects.filter(pk__in=ids)}
        mailboxes = [found[pk] for pk in ids if pk in found]
        if options["json"]:
            reports = {m.source_address: m.discovery for m in mailboxes}
            self.stdout.write(json.dumps(reports, indent=2, sort_keys=True))
        else:
            for mailbox in mailboxes:
                self.stdout.write(discovery.summary_line(mailbox))
        if unanswered:
            raise CommandError(
                f"The worker did not finish discovering {len(unanswered)} mailbox(es): "
                + ", ".join(sorted(unanswered))
            )
        blocked = [m for m in mailboxes if m.discovery_blocking]
        if blocked:
            raise CommandError(
                f"{len(blocked)} of {len(mailboxes)} mailbox(es) cannot be copied as is."
            )

    def _wait(self, ids: list[int]) -> list[str]:
        """Until the worker has answered for every mailbox (or given up on it)."""
        while True:
            pending = [m for m in Mailbox.objects.filter(pk__in=ids) if discovery.is_pending(m)]
            if not pending:
                return [
                    m.source_address
                    for m in Mailbox.objects.filter(pk__in=ids)
                    if discovery.never_answered(m)
                ]
            self.stderr.write(f"\r{len(ids) - len(pending)} of {len(ids)} discovered", ending="")
            time.sleep(POLL_SECONDS)
