"""Several mailboxes at once through a real worker: its pool processes copy different mailboxes
side by side, and the per-tenant connection limit holds them to one at a time when it is 1."""

import pytest

from mailboxes import services
from mailboxes.models import FolderJob, MailboxPass, ProgressSample
from projects.models import Project
from tests.servers.worker import wait_until

from .conftest import tenant_for
from .messages import bulk

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

MAILBOXES = 3
MESSAGES = 200


def copy_mailboxes(start_worker, dovecot_a, dovecot_b, dovecot_user, during=None, **env):
    """Three users with their own passwords and their own mail, in one project whose tenants
    log in as an account of their own (the connection test's): each mailbox logs in with its
    own login, never the tenant's, and each target account must end up holding exactly its own
    source's mail while the tenants' accounts are left as they were. ``during``, when given,
    must come true while the passes run."""
    admin_source, admin_target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
    admin_source.load("INBOX", bulk(5, owner=admin_source.name))
    project = Project.objects.create(
        client_name="Fabrikam",
        source=tenant_for(admin_source.endpoint()),
        target=tenant_for(admin_target.endpoint()),
    )
    users = []
    for number in range(MAILBOXES):
        source, target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
        source.load("INBOX", bulk(MESSAGES + number, owner=source.name))
        project.mailboxes.create(
            source_address=f"{source.name}@a.test",
            target_address=f"{target.name}@b.test",
            source_login=source.name,
            source_password=source.password,
            target_login=target.name,
            target_password=target.password,
        )
        users.append((source, target))
    worker_env = {"COPY_BATCH_ITEMS": "4", **env}
    worker = start_worker("worker", env=worker_env, concurrency=MAILBOXES)
    services.start_passes(project.mailboxes.all(), "full")
    if during:
        wait_until(during, timeout=120, interval=0.02, message=lambda: worker.log()[-3000:])
    wait_until(
        lambda: MailboxPass.objects.filter(state="done").count() == MAILBOXES,
        timeout=180,
        message=lambda: (
            f"passes did not finish: {list(MailboxPass.objects.values_list('state', 'error'))}"
            f"\n{worker.log()[-3000:]}"
        ),
    )
    for source, target in users:
        assert target.holdings().folders["INBOX"] == source.holdings().folders["INBOX"], source.name
    assert admin_target.holdings().messages == 0
    return project


def copied_side_by_side() -> bool:
    """Two pool processes each hold a running folder job of a different mailbox, right now."""
    running = FolderJob.objects.filter(state=FolderJob.State.RUNNING).exclude(lease_owner="")
    holders = set(running.values_list("mailbox_id", "lease_owner"))
    return len({m for m, _ in holders}) >= 2 and len({o for _, o in holders}) >= 2


def spans(project):
    """(first, last) progress sample time of each mailbox: when it was being copied."""
    by_mailbox = {}
    for sample in ProgressSample.objects.filter(project=project).order_by("at"):
        first, _ = by_mailbox.get(sample.mailbox_id, (sample.at, None))
        by_mailbox[sample.mailbox_id] = (first, sample.at)
    return sorted(by_mailbox.values())


def overlapping_pairs(intervals):
    return sum(
        1
        for i, (start_a, end_a) in enumerate(intervals)
        for start_b, end_b in intervals[i + 1 :]
        if start_a < end_b and start_b < end_a
    )


def test_worker_processes_copy_mailboxes_side_by_side(
    start_worker, dovecot_a, dovecot_b, dovecot_user
):
    # Seen while it happens, not inferred afterwards from progress samples a few seconds apart.
    project = copy_mailboxes(
        start_worker,
        dovecot_a,
        dovecot_b,
        dovecot_user,
        during=copied_side_by_side,
        TENANT_CONNECTION_LIMIT="8",
    )
    assert sorted(m.items_copied for m in project.mailboxes.all()) == [
        MESSAGES + number for number in range(MAILBOXES)
    ]


def test_tenant_limit_of_one_copies_one_mailbox_at_a_time(
    start_worker, dovecot_a, dovecot_b, dovecot_user
):
    project = copy_mailboxes(
        start_worker, dovecot_a, dovecot_b, dovecot_user, TENANT_CONNECTION_LIMIT="1"
    )
    intervals = spans(project)
    assert len(intervals) == MAILBOXES
    assert overlapping_pairs(intervals) == 0
    assert sorted(m.items_copied for m in project.mailboxes.all()) == [
        MESSAGES + number for number in range(MAILBOXES)
    ]
