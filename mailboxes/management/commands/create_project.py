"""Create a project between two servers from the command line; prints its id alone.

    manage.py create_project "Contoso" --source imaps://old.example \
        --target imap://admin:secret@new.example:143?master=admin

URLs as ``copy_mailbox`` takes them (``imap://``, ``imaps://``, ``imap+starttls://``,
``maildir:///path``, ``?insecure=1``); the credentials are optional. When given they become
the tenant's username and password: the connection test's account, and the password mailboxes
without their own use. ``?master=USER`` makes USER the tenant's master user, who logs in with
the URL's password acting for each mailbox. Then ``import_mailboxes`` and ``run_pass``.
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from audit import log as audit
from mailboxes.management.servers import parse_url
from projects.models import Project


class Command(BaseCommand):
    help = "Create a project from a source and a target URL and print its id."

    def add_arguments(self, parser):
        parser.add_argument("name", help="the client's name")
        parser.add_argument("--source", required=True, help="imap[s]://[user:password@]host[:port]")
        parser.add_argument("--target", required=True, help="same forms as the source")
        parser.add_argument(
            "--member",
            action="append",
            default=[],
            metavar="USERNAME",
            help="a user who may see the project in the web app (repeatable)",
        )

    def handle(self, *args, **options):
        name = options["name"].strip()
        if not name:
            raise CommandError("The project needs a name.", returncode=2)
        source = parse_url(options["source"], "source", need_user=False, allow_master=True)
        target = parse_url(options["target"], "target", need_user=False, allow_master=True)
        users = get_user_model().objects.filter(username__in=options["member"])
        unknown = sorted(set(options["member"]) - {user.username for user in users})
        if unknown:
            raise CommandError(f"There is no user {', '.join(unknown)}.", returncode=2)
        with transaction.atomic():
            project = Project.objects.create(
                client_name=name[:200], source=source.new_tenant(), target=target.new_tenant()
            )
            project.members.set(users)
            detail = f"Created the project {project}"
            audit.record(None, project, audit.Action.PROJECT_CREATED, detail)
        self.stdout.write(str(project.pk))
