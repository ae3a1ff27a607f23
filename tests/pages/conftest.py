"""Rows with progress in them, as the copy engine leaves them, for the page tests."""

from datetime import timedelta

import pytest
from django.utils import timezone

from mailboxes.models import FolderJob, Mailbox, MailboxPass, ProgressSample


def add_mailbox(project, name, state=Mailbox.State.NEW, copied=0, total=0, failed=0, **fields):
    """A mailbox whose counters say ``copied`` of ``total`` items (1 kB each)."""
    return Mailbox.objects.create(
        project=project,
        source_address=f"{name}@{project.client_name.lower()}.example",
        target_address=f"{name}@new.example",
        state=state,
        items_total=total,
        items_copied=copied,
        items_failed=failed,
        bytes_total=total * 1000,
        bytes_copied=copied * 1000,
        **fields,
    )


def add_pass(mailbox, folders=("INBOX", "Sent"), state=MailboxPass.State.RUNNING, **fields):
    fields.setdefault("started_at", timezone.now() - timedelta(hours=1))
    mailbox_pass = MailboxPass.objects.create(
        mailbox=mailbox, kind="prestage", state=state, **fields
    )
    for path in folders:
        FolderJob.objects.create(
            mailbox_pass=mailbox_pass,
            mailbox=mailbox,
            source_path=path,
            target_path=path,
            items_total=10,
            items_copied=4,
            state=FolderJob.State.RUNNING,
        )
    return mailbox_pass


def add_samples(mailbox, count=3, items=10, bytes_=10_000, spacing=timedelta(seconds=20)):
    """Batches copied by the mailbox's latest pass (one running is made if it has none)."""
    now = timezone.now()
    mailbox_pass = mailbox.passes.first() or add_pass(mailbox, folders=())
    ProgressSample.objects.bulk_create(
        ProgressSample(
            mailbox=mailbox,
            project=mailbox.project,
            mailbox_pass=mailbox_pass,
            at=now - i * spacing,
            items=items,
            bytes=bytes_,
        )
        for i in range(count)
    )


@pytest.fixture
def busy_project(project):
    """Contoso mid-migration: one mailbox done, one running, one failed, one not started."""
    add_mailbox(project, "dora", Mailbox.State.DONE, copied=100, total=100)
    running = add_mailbox(project, "rick", Mailbox.State.COPYING, copied=50, total=200)
    add_mailbox(project, "fred", Mailbox.State.FAILED, copied=5, total=10, failed=2, error="Denied")
    add_mailbox(project, "nina")
    add_pass(running)
    add_samples(running)
    return project
