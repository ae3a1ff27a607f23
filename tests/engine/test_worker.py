"""Real worker processes: a worker killed with SIGKILL in the middle of a folder, restarted,
leaves every message on the target exactly once; the command goes through a running worker."""

import os
import re
import subprocess
import sys

import pytest

from mailboxes import services
from mailboxes.models import CopiedItem, FolderJob, MailboxPass
from tests.servers.worker import ROOT, database_url, wait_until

from .conftest import make_mailbox
from .messages import bulk
from .snapshots import snapshot

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Tiny batches so a folder takes many; a short lease so the restarted worker's sweep soon
# finds the dead worker's lease expired.
WORKER_ENV = {"COPY_BATCH_ITEMS": "3", "COPY_LEASE_SECONDS": "2", "COPY_TASK_SECONDS": "1"}
COUNT = 300


def test_sigkill_in_the_middle_of_a_folder_loses_and_duplicates_nothing(
    start_worker, dovecot_a, dovecot_b, dovecot_user
):
    source, target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
    source.load("INBOX", bulk(COUNT))
    mailbox = make_mailbox(source.endpoint(), target.endpoint(), source.name, target.name)
    first = start_worker("first", env=WORKER_ENV)
    (mailbox_pass,) = services.start_passes([mailbox], "full")
    wait_until(lambda: CopiedItem.objects.count() >= 30, timeout=60)
    first.kill()
    inbox = FolderJob.objects.get(mailbox_pass=mailbox_pass, source_path="INBOX")
    assert inbox.state == "running" and CopiedItem.objects.count() < COUNT

    start_worker("second", env=WORKER_ENV)
    finished = ("done", "failed")
    wait_until(lambda: MailboxPass.objects.get(pk=mailbox_pass.pk).state in finished, timeout=90)
    mailbox_pass.refresh_from_db()
    assert mailbox_pass.state == "done", mailbox_pass.error
    copied = snapshot(target.endpoint(), target.name)[("INBOX",)]
    assert copied == snapshot(source.endpoint(), source.name)[("INBOX",)]
    assert sum(copied.values()) == COUNT and set(copied.values()) == {1}
    assert CopiedItem.objects.count() == COUNT


def test_copy_mailbox_command_runs_through_a_running_worker(
    start_worker, dovecot_a, dovecot_b, dovecot_user
):
    source, target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
    source.load("INBOX", bulk(20))
    source.load("Archive/2014", bulk(5))
    urls = [
        f"imap://{source.name}:{source.password}@127.0.0.1:{dovecot_a.port}",
        f"imaps://{target.name}:{target.password}@127.0.0.1:{dovecot_b.tls_port}?insecure=1",
    ]
    env = {**os.environ, "DATABASE_URL": database_url()}
    worker = start_worker("worker")
    run = subprocess.run(
        [sys.executable, "manage.py", "copy_mailbox", *urls],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert re.fullmatch(r"copied=25 skipped=0 failed=0 bytes=\d+ seconds=[\d.]+\n", run.stdout)
    assert "copying in this process" not in run.stderr
    assert "copy_folder_batch" in worker.log()
    assert snapshot(target.endpoint(security="tls"), target.name) == snapshot(
        source.endpoint(), source.name
    )
