"""An error no connector foresaw (here a Tenant option the IMAP connector cannot read) fails
the mailbox with its message, once, instead of leaving the pass planning for ever."""

import logging

import pytest

from mailboxes import engine, services
from mailboxes.models import FolderJob
from projects.models import Tenant
from tests.engine.conftest import make_mailbox, run_pass
from tests.engine.test_worker import bulk

pytestmark = pytest.mark.django_db(transaction=True)


def test_unexpected_error_in_planning_fails_the_mailbox(dovecot_a, dovecot_b, dovecot_user, caplog):
    source, target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
    source.load("INBOX", bulk(3))
    mailbox = make_mailbox(source.endpoint(), target.endpoint(), source.name, target.name)
    Tenant.objects.filter(pk=mailbox.project.source_id).update(options={"timeout": "soon"})

    with caplog.at_level(logging.ERROR):
        mailbox_pass = run_pass(mailbox)

    assert mailbox_pass.state == "failed" and mailbox.state == "failed"
    assert "could not convert string to float: 'soon'" in mailbox.error
    assert mailbox_pass.error == mailbox.error
    logged = [record for record in caplog.records if record.exc_info]
    assert len(logged) == 1 and "planning" in logged[0].getMessage()


def test_unexpected_error_while_copying_fails_the_folder_with_its_message(
    dovecot_a, dovecot_b, dovecot_user
):
    source, target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
    source.load("INBOX", bulk(3))
    mailbox = make_mailbox(source.endpoint(), target.endpoint(), source.name, target.name)
    scheduler = engine.InlineScheduler("test:1")
    services.start_passes([mailbox], "full", scheduler=scheduler)
    scheduler.run(steps=1)  # planned with good options; the copy opens a fresh connection
    Tenant.objects.filter(pk=mailbox.project.target_id).update(options={"timeout": "soon"})
    scheduler.run()

    job = FolderJob.objects.get(mailbox=mailbox, source_path="INBOX")
    assert job.state == "failed" and "could not convert string to float" in job.error
    mailbox.refresh_from_db()
    assert mailbox.state in ("failed", "done_with_errors") and "soon" in mailbox.error
