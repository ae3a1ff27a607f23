"""Copy one mailbox from the command line, through the same engine the workers run.

    manage.py copy_mailbox imaps://ann:secret@old.example imap://ann:pw@127.0.0.1:1143
    manage.py copy_mailbox imap+starttls://ann:pw@old.example maildir:///srv/archive/ann --inline

URLs: ``imap://`` (plain, port 143), ``imaps://`` (TLS, 993), ``imap+starttls://`` (STARTTLS,
143), ``maildir:///path`` (the path is the mailbox's maildir; created when it is the target).
User and password are percent-decoded (``%40`` for ``@``). ``?insecure=1`` skips TLS certificate
checks.

The URLs' servers pick the project (``--project ID``, or the first project between those two
servers, or a new one); an existing project's tenants are never changed. The URL's user and
password become the mailbox's own login. A second run copies only what is new; a pass a killed
run left behind is taken over. Ends with one summary line on stdout,
``copied=N skipped=N failed=N bytes=N seconds=S``, then one line per failure; exits 1 when
anything failed, 2 on bad input.
"""

import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Q

from audit import log as audit
from mailboxes.management import passes
from mailboxes.management.servers import Side, describe_server, parse_url, tenant_server
from mailboxes.models import Mailbox, PassKind
from projects.models import Project


class Command(BaseCommand):
    help = "Copy one mailbox (IMAP or maildir) to another and print a summary line."

    def add_arguments(self, parser):
        parser.add_argument("source", help="imap[s]://user:password@host[:port] or maildir:///path")
        parser.add_argument("target", help="same forms as the source")
        parser.add_argument(
            "--pass", dest="kind", choices=[k.value for k in PassKind], default=PassKind.FULL
        )
        parser.add_argument(
            "--older-than", type=int, default=None, help="pre-stage: items older than DAYS"
        )
        parser.add_argument(
            "--project", type=int, help="record the copy in this project (its servers must match)"
        )
        parser.add_argument(
            "--inline", action="store_true", help="copy in this process instead of the worker"
        )

    def handle(self, *args, **options):
        source = parse_url(options["source"], "source")
        target = parse_url(options["target"], "target")
        if options["kind"] == PassKind.PRESTAGE and options["older_than"] is None:
            raise CommandError("--pass prestage needs --older-than DAYS.", returncode=2)
        self._prepare_maildirs(source, target)
        mailbox = self._mailbox(source, target, options["project"])
        started = time.monotonic()
        runner = passes.Runner(self.stderr, inline=options["inline"])
        (mailbox_pass,) = runner.start([mailbox], options["kind"], options["older_than"])
        detail = f"Started a {PassKind(options['kind']).label.lower()} pass for {mailbox}"
        audit.record(None, mailbox.project, audit.Action.PASS_STARTED, detail)
        runner.run([mailbox_pass])
        seconds = time.monotonic() - started
        self.stdout.write(
            f"copied={mailbox_pass.items_copied} skipped={mailbox_pass.items_skipped} "
            f"failed={mailbox_pass.items_failed} bytes={mailbox_pass.bytes_copied} "
            f"seconds={seconds:.2f}"
        )
        for line in passes.failures(mailbox_pass):
            self.stdout.write(f"  {line}")
        if not passes.succeeded(mailbox_pass):
            if mailbox_pass.error:
                raise CommandError(mailbox_pass.error)
            if mailbox_pass.items_failed:
                raise CommandError(f"{mailbox_pass.items_failed} item(s) could not be copied.")
            raise CommandError(
                f"The copy did not finish: the pass is {mailbox_pass.get_state_display().lower()}."
            )

    def _prepare_maildirs(self, source: Side, target: Side) -> None:
        if source.kind == "maildir" and not (Path(source.host) / "cur").is_dir():
            raise CommandError(f"There is no maildir at {source.host}.", returncode=2)
        if target.kind == "maildir":
            for sub in ("cur", "new", "tmp"):
                (Path(target.host) / sub).mkdir(parents=True, exist_ok=True)

    def _mailbox(self, source: Side, target: Side, project_id: int | None) -> Mailbox:
        with transaction.atomic():
            project = self._project(source, target, project_id)
            mailbox = self._find_mailbox(project, source, target)
            changed = []
            for side, url in (("source", source), ("target", target)):
                if not url.has_login:
                    continue  # the project's login rule applies (maildir, or no password given)
                for name, value in (
                    (f"{side}_login", url.username),
                    (f"{side}_password", url.password),
                ):
                    if getattr(mailbox, name) != value:
                        setattr(mailbox, name, value)
                        changed.append(name)
            if changed:
                mailbox.save(update_fields=changed)
            return mailbox

    def _project(self, source: Side, target: Side, project_id: int | None) -> Project:
        """The project whose servers the URLs name; its tenants are never changed."""
        projects = Project.objects.select_related("source", "target")
        if project_id is not None:
            project = projects.filter(pk=project_id).first()
            if project is None:
                raise CommandError(f"There is no project {project_id}.", returncode=2)
            for role, side, tenant in (
                ("source", source, project.source),
                ("target", target, project.target),
            ):
                if not side.serves(tenant):
                    raise CommandError(
                        f"The {role} URL names {side.describe()}, but the {role} of project "
                        f"{project.pk} ({project}) is {describe_server(tenant_server(tenant))}. "
                        "copy_mailbox never changes a project's servers: edit the project, or "
                        "leave out --project.",
                        returncode=2,
                    )
        else:
            project = next(
                (
                    p
                    for p in projects.exclude(state=Project.State.CLOSED).order_by("pk")
                    if source.serves(p.source) and target.serves(p.target)
                ),
                None,
            )
            if project is None:
                project = Project.objects.create(
                    client_name=f"copy_mailbox {source.address} -> {target.address}"[:200],
                    source=source.new_tenant(),
                    target=target.new_tenant(),
                )
                detail = f"Created the project {project}"
                audit.record(None, project, audit.Action.PROJECT_CREATED, detail)
                return project
        for role, side, tenant in (
            ("source", source, project.source),
            ("target", target, project.target),
        ):
            if side.kind == "imap" and side.verify_tls != tenant.verify_tls:
                checks = "checks" if tenant.verify_tls else "does not check"
                self.stderr.write(
                    f"Note: the {role} of project {project.pk} {checks} TLS certificates; the "
                    "URL's ?insecure= is not applied (edit the project to change it)."
                )
        return project

    def _find_mailbox(self, project: Project, source: Side, target: Side) -> Mailbox:
        """The project's mailbox for the source URL (by address or by its login), or a new
        one; a mailbox already copied elsewhere is not silently redirected."""
        found = Q(source_address__iexact=source.address)
        if source.kind == "imap":
            found |= Q(source_login=source.username)
        mailbox = project.mailboxes.filter(found).order_by("pk").first()
        if mailbox is None:
            owner = project.mailboxes.filter(target_address__iexact=target.address).first()
            if owner is not None:
                raise CommandError(
                    f"In project {project.pk} ({project}) the target {target.address} already "
                    f"receives the mailbox {owner.source_address}.",
                    returncode=2,
                )
            return Mailbox.objects.create(
                project=project, source_address=source.address, target_address=target.address
            )
        same_target = mailbox.target_address.lower() == target.address.lower() or (
            target.kind == "imap" and mailbox.target_login == target.username
        )
        if not same_target:
            raise CommandError(
                f"In project {project.pk} ({project}) the mailbox {mailbox.source_address} is "
                f"copied to {mailbox.target_address}, not to {target.address}. Use another "
                "project for another target (create_project, then --project).",
                returncode=2,
            )
        return mailbox
