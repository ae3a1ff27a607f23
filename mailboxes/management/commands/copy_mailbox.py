"""Copy one mailbox from the command line, through the same engine the workers run.

    manage.py copy_mailbox imaps://ann:secret@old.example imap://ann:pw@127.0.0.1:1143
    manage.py copy_mailbox imap+starttls://ann:pw@old.example maildir:///srv/archive/ann --inline

URLs: ``imap://`` (plain, port 143), ``imaps://`` (TLS, 993), ``imap+starttls://`` (STARTTLS,
143), ``maildir:///path`` (the path is the mailbox's maildir; created when it is the target).
User and password are percent-decoded (``%40`` for ``@``). ``?insecure=1`` skips TLS certificate
checks. The project, tenants and mailbox are created the first time and reused after, so a
second run copies only what is new. Ends with one summary line on stdout:
``copied=N skipped=N failed=N bytes=N seconds=S``.
"""

import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from mailboxes import engine, services
from mailboxes.models import Mailbox, MailboxPass, PassKind
from projects.models import Project, Tenant

SCHEMES = {"imap": ("plain", 143), "imaps": ("tls", 993), "imap+starttls": ("starttls", 143)}
FINISHED = (MailboxPass.State.DONE, MailboxPass.State.FAILED)


@dataclass
class Side:
    """One end of the copy, from its URL."""

    kind: str
    host: str
    port: int | None
    security: str
    username: str
    password: str
    verify_tls: bool

    @property
    def address(self) -> str:
        return self.username if self.kind == "imap" else self.host

    def matches(self, tenant: Tenant) -> bool:
        return (tenant.kind, tenant.endpoint, tenant.port, tenant.username) == (
            self.kind,
            self.host,
            self.port,
            self.username,
        )

    def apply(self, tenant: Tenant) -> Tenant:
        tenant.kind, tenant.endpoint, tenant.port = self.kind, self.host, self.port
        tenant.security, tenant.username, tenant.secret = (
            self.security,
            self.username,
            self.password,
        )
        tenant.verify_tls = self.verify_tls
        tenant.save()
        return tenant


def parse_url(url: str, role: str) -> Side:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise CommandError(f"The {role} URL is not valid: {exc}.", returncode=2) from exc
    scheme = parts.scheme.lower()
    if scheme == "maildir":
        if not parts.path or parts.netloc:
            raise CommandError(f"The {role} URL must look like maildir:///path.", returncode=2)
        return Side("maildir", parts.path, None, "plain", "", "", True)
    if scheme not in SCHEMES:
        known = ", ".join([*SCHEMES, "maildir"])
        raise CommandError(
            f"The {role} URL must start with one of {known} (got {url.split(':')[0]!r}).",
            returncode=2,
        )
    if not parts.hostname or not parts.username:
        raise CommandError(
            f"The {role} URL needs a user and a host: {scheme}://user:password@host[:port].",
            returncode=2,
        )
    security, default_port = SCHEMES[scheme]
    insecure = parse_qs(parts.query).get("insecure", ["0"])[0] in ("1", "true", "yes")
    return Side(
        "imap",
        parts.hostname,
        port or default_port,
        security,
        unquote(parts.username),
        unquote(parts.password or ""),
        not insecure,
    )


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
        parser.add_argument("--project", type=int, help="record the copy in this project")
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
        inline = options["inline"] or not self._worker_running()
        scheduler = engine.InlineScheduler(f"inline-{socket.gethostname()}:{os.getpid()}")
        passes = services.start_passes(
            [mailbox],
            options["kind"],
            options["older_than"],
            scheduler=scheduler if inline else None,
        )
        if not passes:
            raise CommandError(f"A pass of {mailbox} is already under way.")
        mailbox_pass = passes[0]
        stop = threading.Event()
        progress = threading.Thread(target=self._show_progress, args=(mailbox_pass.pk, stop))
        progress.start()
        try:
            if inline:
                scheduler.run()
            else:
                self._wait(mailbox_pass.pk)
        finally:
            stop.set()
            progress.join()
        mailbox_pass.refresh_from_db()
        seconds = time.monotonic() - started
        self.stdout.write(
            f"copied={mailbox_pass.items_copied} skipped={mailbox_pass.items_skipped} "
            f"failed={mailbox_pass.items_failed} bytes={mailbox_pass.bytes_copied} "
            f"seconds={seconds:.2f}"
        )
        if mailbox_pass.state != MailboxPass.State.DONE:
            raise CommandError(mailbox_pass.error or "The copy did not finish.")

    def _prepare_maildirs(self, source: Side, target: Side) -> None:
        if source.kind == "maildir" and not (Path(source.host) / "cur").is_dir():
            raise CommandError(f"There is no maildir at {source.host}.", returncode=2)
        if target.kind == "maildir":
            for sub in ("cur", "new", "tmp"):
                (Path(target.host) / sub).mkdir(parents=True, exist_ok=True)

    def _mailbox(self, source: Side, target: Side, project_id: int | None) -> Mailbox:
        with transaction.atomic():
            if project_id is not None:
                project = Project.objects.filter(pk=project_id).first()
                if project is None:
                    raise CommandError(f"There is no project {project_id}.", returncode=2)
            else:
                project = next(
                    (
                        p
                        for p in Project.objects.select_related("source", "target")
                        if source.matches(p.source) and target.matches(p.target)
                    ),
                    None,
                )
            if project is None:
                project = Project.objects.create(
                    client_name=f"copy_mailbox {source.address} -> {target.address}"[:200],
                    source=source.apply(Tenant()),
                    target=target.apply(Tenant()),
                )
            else:
                source.apply(project.source)
                target.apply(project.target)
            mailbox, _ = Mailbox.objects.get_or_create(
                project=project,
                source_address=source.address,
                defaults={"target_address": target.address},
            )
            if mailbox.target_address != target.address:
                mailbox.target_address = target.address
                mailbox.save(update_fields=["target_address"])
            return mailbox

    def _worker_running(self) -> bool:
        from migrator.celery import app

        try:
            replies = app.control.ping(timeout=1.0)
        except OSError:
            replies = []
        if not replies:
            self.stderr.write("No worker answered; copying in this process.")
        return bool(replies)

    def _wait(self, pass_id: int) -> None:
        while MailboxPass.objects.get(pk=pass_id).state not in FINISHED:
            time.sleep(0.1)

    def _show_progress(self, pass_id: int, stop: threading.Event) -> None:
        try:
            while not stop.wait(0.5):
                self._draw(MailboxPass.objects.get(pk=pass_id))
            self._draw(MailboxPass.objects.get(pk=pass_id))
            self.stderr.write("")
        finally:
            connection.close()

    def _draw(self, mailbox_pass: MailboxPass) -> None:
        width = 30
        percent = mailbox_pass.percent
        filled = width * (percent or 0) // 100
        bar = "#" * filled + "-" * (width - filled)
        shown = "  —" if percent is None else f"{percent:3d}"
        self.stderr.write(
            f"\r[{bar}] {shown}% {mailbox_pass.items_done}/"
            f"{mailbox_pass.items_total} items {mailbox_pass.bytes_copied / 1e6:.1f} MB "
            f"{mailbox_pass.get_state_display()}  ",
            ending="",
        )
        self.stderr.flush()
