from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from mailboxes.csvio import CsvImportError, import_mailboxes
from projects.models import Project


class Command(BaseCommand):
    help = "Import mailboxes from a CSV file (source_address,target_address,display_name)."

    def add_arguments(self, parser):
        parser.add_argument("project_id", type=int)
        parser.add_argument("file", type=Path)

    def handle(self, project_id, file, **options):
        try:
            project = Project.objects.get(pk=project_id)
        except Project.DoesNotExist:
            raise CommandError(f"There is no project {project_id}.") from None
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror}.") from None
        try:
            result = import_mailboxes(project, data)
        except CsvImportError as exc:
            raise CommandError(
                "Nothing was imported:\n" + "\n".join(f"  {p}" for p in exc.problems)
            ) from None
        self.stdout.write(f"{project}: {result}.")
