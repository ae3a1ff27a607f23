"""Test each mailbox's source and target login, as "Test logins" does on the project page.

    manage.py test_logins PROJECT_ID [--mailbox ADDRESS ...]

Logs in by the rule (README "Who logs in") in this process, records the result on the mailbox
(the project page shows it) and prints one line per mailbox: ``ADDRESS ok|failed source: …;
target: …``. Exits 1 when any login was refused, 2 on bad input.
"""

from django.core.management.base import BaseCommand, CommandError

from audit import log as audit
from mailboxes import logins
from mailboxes.management import passes


class Command(BaseCommand):
    help = "Log in to each mailbox's source and target and say which logins work."

    def add_arguments(self, parser):
        passes.add_selection_arguments(parser)

    def handle(self, *args, **options):
        mailboxes = passes.selected_mailboxes(options["project_id"], options["mailbox"])
        detail = f"Tested the logins of {len(mailboxes)} mailbox(es)"
        audit.record(None, mailboxes[0].project, audit.Action.LOGINS_TESTED, detail)
        refused = 0
        for mailbox in mailboxes:
            ok, message = logins.check_mailbox(mailbox)
            logins.record(mailbox.pk, ok, message)
            self.stdout.write(f"{mailbox} {'ok' if ok else 'failed'} {message}")
            refused += not ok
        if refused:
            raise CommandError(f"{refused} of {len(mailboxes)} mailbox(es) could not log in.")
