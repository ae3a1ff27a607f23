"""The per-tenant connection limit: a job waits while other workers hold the tenant's slots."""

import pytest
from django.utils import timezone

from mailboxes import engine, services
from mailboxes.connectors.base import Endpoint, Item
from mailboxes.connectors.maildir import MaildirConnector
from mailboxes.models import FolderJob

from .conftest import make_mailbox

pytestmark = pytest.mark.django_db


class Recorder:
    def __init__(self):
        self.plans, self.jobs = [], []

    def plan(self, pass_id, countdown=0):
        self.plans.append(pass_id)

    def folder_job(self, job_id, token, countdown=0):
        self.jobs.append((job_id, token, countdown))


def test_a_job_waits_while_the_tenant_is_at_its_limit(tmp_path, settings):
    settings.TENANT_CONNECTION_LIMIT = 1
    settings.COPY_FOLDERS_IN_PARALLEL = 2
    source = MaildirConnector(Endpoint(kind="maildir", host=str(tmp_path)), "ann")
    for name in ("INBOX", "Archive"):
        folder = source.ensure_folder((name,), "mail", "inbox" if name == "INBOX" else None)
        source.store(folder, [Item("a", b"Subject: a\r\n\r\na\r\n")])
    target = Endpoint(kind="maildir", host=str(tmp_path / "target"))
    (tmp_path / "target").mkdir()
    mailbox = make_mailbox(source.endpoint, target, "ann", "bob")
    scheduler = Recorder()
    (mailbox_pass,) = services.start_passes([mailbox], "full", scheduler=scheduler)
    engine.plan_pass(mailbox_pass.pk, scheduler)
    (first, token_1, _), (second, token_2, _) = scheduler.jobs

    # Another worker holds the only slot: the job goes back to the queue, a little later.
    FolderJob.objects.filter(pk=first).update(
        lease_owner="elsewhere:1", lease_expires_at=timezone.now() + engine._lease()
    )
    engine.run_folder_job(second, token_2, scheduler, "here:2")
    waiting = FolderJob.objects.get(pk=second)
    assert waiting.items_copied == 0 and waiting.lease_owner == ""
    _, token_3, countdown = scheduler.jobs[-1]
    assert token_3 != token_2 and 0 < countdown <= 2
    engine.run_folder_job(second, token_2, scheduler, "here:2")  # the old message: a no-op
    assert FolderJob.objects.get(pk=second).queue_token == token_3

    FolderJob.objects.filter(pk=first).update(lease_owner="", lease_expires_at=None)
    engine.run_folder_job(second, token_3, scheduler, "here:2")
    assert FolderJob.objects.get(pk=second).items_copied == 1


def test_starting_a_thousand_mailboxes_costs_dozens_of_queries_not_thousands(
    tmp_path, django_assert_max_num_queries
):
    target = Endpoint(kind="maildir", host=str(tmp_path))
    mailbox = make_mailbox(target, target, "u0@old.example", "u0@new.example")
    mailbox.project.mailboxes.bulk_create(
        mailbox.project.mailboxes.model(
            project=mailbox.project,
            source_address=f"u{i}@old.example",
            target_address=f"u{i}@new.example",
        )
        for i in range(1, 1200)
    )
    mailbox.passes.create(kind="full", state="running")  # busy: gets no second pass
    scheduler = Recorder()

    # Four per mailbox before; now a few per chunk of 500 (SQLite splits the bulk inserts).
    with django_assert_max_num_queries(40):
        created = services.start_passes(mailbox.project.mailboxes.all(), "prestage", 30, scheduler)

    assert len(created) == len(scheduler.plans) == 1199
    assert mailbox.pk not in {p.mailbox_id for p in created}
    assert mailbox.project.mailboxes.filter(state="queued").count() == 1199
