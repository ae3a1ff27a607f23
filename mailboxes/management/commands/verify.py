"""Verify a project's mailboxes: what the source holds now against what the target holds now.

    manage.py verify PROJECT_ID [--mailbox ann@old.example ...] [--deep] [--json] [--inline]

One line per mailbox, ``ADDRESS verified=yes|no missing=N failed=N excluded=N extra=N``, each
followed by a line per folder with a difference (why items are missing, the failure reason);
with ``--json``, the stored verification of each mailbox instead. Through the worker when one
answers (one task per mailbox), otherwise (or with ``--inline``) in this process. Exits 1 while
any mailbox is not verified, 2 on bad arguments.
"""

import json
import time

from django.core.management.base import BaseCommand, CommandError

from audit import log as audit
from mailboxes import verification
from mailboxes.management import passes
from mailboxes.models import Mailbox

# How long the command waits for the worker's verifications before it says so.
WAIT_SECONDS = 3600


class Command(BaseCommand):
    help = "Verify that every source item is on the target (or has a recorded reason)."

    def add_arguments(self, parser):
        passes.add_selection_arguments(parser)
        parser.add_argument(
            "--deep",
            action="store_true",
            help="also check each copy against its source item (its content fingerprint, "
            "or the key Exchange keeps on a copy)",
        )
        parser.add_argument("--json", action="store_true", help="print the results as JSON")
        parser.add_argument(
            "--inline", action="store_true", help="verify in this process instead of the worker"
        )

    def handle(self, *args, **options):
        mailboxes = passes.selected_mailboxes(options["project_id"], options["mailbox"])
        detail = f"Started verifying {len(mailboxes)} mailbox(es)"
        audit.record(None, mailboxes[0].project, audit.Action.VERIFICATION_STARTED, detail)
        inline = options["inline"] or not passes.worker_answers()
        if inline:
            for mailbox in mailboxes:
                verification.verify(mailbox, options["deep"])
        else:
            self._through_worker(mailboxes, options["deep"])
        mailboxes = list(Mailbox.objects.filter(pk__in=[m.pk for m in mailboxes]))
        if options["json"]:
            self.stdout.write(json.dumps([_as_json(m) for m in mailboxes], indent=2))
        else:
            for mailbox in mailboxes:
                self.stdout.write(verification.summary_line(mailbox))
                for line in verification.folder_lines(mailbox):
                    self.stdout.write(line)
        unverified = sum(not m.verified for m in mailboxes)
        if unverified:
            raise CommandError(f"{unverified} of {len(mailboxes)} mailbox(es) are not verified.")

    def _through_worker(self, mailboxes, deep: bool) -> None:
        ids = [m.pk for m in mailboxes]
        verification.queue(mailboxes, deep)
        deadline = time.monotonic() + WAIT_SECONDS
        waiting = Mailbox.objects.filter(pk__in=ids, verify_requested_at__isnull=False)
        while waiting.exists():
            if time.monotonic() > deadline:
                raise CommandError("The worker did not finish the verifications in time.")
            time.sleep(0.2)


def _as_json(mailbox: Mailbox) -> dict:
    result = dict(mailbox.verification or {})
    result.pop("missing_rows", None)
    return {
        "address": mailbox.source_address,
        "target_address": mailbox.target_address,
        "verified": mailbox.verified,
        "verified_at": mailbox.verified_at.isoformat() if mailbox.verified_at else None,
        "items_missing": mailbox.items_missing,
        **result,
    }
