"""Import mailboxes from a CSV file into a project (the columns: ``mailboxes.csvio``).

    manage.py import_mailboxes PROJECT_ID users.csv

Prints one line per mailbox, ``ADDRESS created|updated|unchanged``. A file with any problem
imports nothing: every problem is printed with its line number and the exit status is 1.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from audit import log as audit
from mailboxes.csvio import CsvImportError, import_mailboxes
from projects.models import Project


class Command(BaseCommand):
    help = (
        "Import mailboxes from a CSV file (source_address,target_address and optionally "
        "display_name,source_login,source_password,target_login,target_password)."
    )

    def add_arguments(self, parser):
        parser.add_argument("project_id", type=int)
        parser.add_argument("file", type=Path)

    def handle(self, project_id, file, **options):
        project = Project.objects.select_related("source", "target").filter(pk=project_id).first()
        if project is None:
            raise CommandError(f"There is no project {project_id}.", returncode=2)
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror}.", returncode=2) from None
        try:
            result = import_mailboxes(project, data)
        except CsvImportError as exc:
            raise CommandError(
                "Nothing was imported:\n" + "\n".join(f"  {p}" for p in exc.problems)
            ) from None
        detail = f"Imported mailboxes from {file.name}: {result}"
        audit.record(None, project, audit.Action.MAILBOXES_IMPORTED, detail)
        for address, outcome in result.outcomes:
            self.stdout.write(f"{address} {outcome}")
        self.stderr.write(f"{project}: {result}.")
