"""Google Workspace mailboxes copied by a real worker whose pool processes run label folders of
one mailbox side by side: a message in several of those folders is still downloaded once."""

import pytest

from mailboxes import services
from mailboxes.connectors.base import Endpoint
from mailboxes.connectors.maildir import MaildirConnector
from mailboxes.models import FolderJob, MailboxPass
from projects.models import Project
from tests.engine.conftest import tenant_for
from tests.servers.worker import wait_until

from .seed import USERS, expected, holdings, seed

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def one_mailbox_in_two_processes() -> bool:
    """Two pool processes each hold a running folder job of the same mailbox, right now."""
    running = FolderJob.objects.filter(state=FolderJob.State.RUNNING).exclude(lease_owner="")
    owners: dict = {}
    for mailbox_id, owner in running.values_list("mailbox_id", "lease_owner"):
        owners.setdefault(mailbox_id, set()).add(owner)
    return any(len(found) >= 2 for found in owners.values())


def test_label_folders_copied_in_parallel_processes_download_each_message_once(
    gmail, google_tenant, tmp_path, start_worker
):
    boxes = seed(gmail, per_user=27)
    gmail.latency = 0.03  # folder jobs last long enough to overlap
    (tmp_path / "target").mkdir()
    target = Endpoint(kind="maildir", host=str(tmp_path / "target"))
    project = Project.objects.create(
        client_name="Fabrikam", source=tenant_for(google_tenant), target=tenant_for(target)
    )
    for user in USERS:
        project.mailboxes.create(source_address=user, target_address=user)
    env = {"COPY_BATCH_ITEMS": "3", "COPY_FOLDERS_IN_PARALLEL": "4"}
    worker = start_worker("worker", env=env, concurrency=3)
    services.start_passes(project.mailboxes.all(), "full")
    wait_until(one_mailbox_in_two_processes, timeout=120, interval=0.02, message=worker.log)
    wait_until(
        lambda: MailboxPass.objects.filter(state="done").count() == len(USERS),
        timeout=240,
        message=lambda: (
            f"{list(MailboxPass.objects.values_list('state', 'error'))}\n" + worker.log()[-3000:]
        ),
    )
    for user in USERS:
        target_box = MaildirConnector(target, user)
        assert holdings(target_box) == expected(boxes[user])
        downloads = {m: gmail.gets[(user, m)] for m in boxes[user].messages}
        assert set(downloads.values()) == {1}, user
