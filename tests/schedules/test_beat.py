"""A real worker running beat fires a schedule stored before it started, with no call from
the test: schedules live in the database, so a worker and beat restart loses none."""

from datetime import timedelta

import pytest
from django.utils import timezone

from mailboxes.models import Mailbox
from schedules.models import Schedule
from tests.servers.worker import Worker, wait_until
from tests.verification.conftest import add_mailbox, imap_project, unique_messages

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_schedule_survives_a_restart_and_beat_fires_it(
    dovecot_a, dovecot_b, dovecot_user, tmp_path
):
    project = imap_project(dovecot_a, dovecot_b)
    source, target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
    source.load("INBOX", unique_messages("beat", 4))
    mailbox = add_mailbox(project, source, target)
    worker = Worker(tmp_path / "worker-var", extra_env={"SCHEDULES_TICK_SECONDS": "1"})
    beat = ("--beat", "--schedule", str(tmp_path / "celerybeat-schedule"))
    worker.start(args=beat)
    schedule = Schedule.objects.create(
        project=project, kind="full", run_at=timezone.now() + timedelta(seconds=20)
    )
    worker.stop()  # the restart: nothing of the schedule lives in the worker or beat
    assert Schedule.objects.get(pk=schedule.pk).fired_at is None
    worker.start(args=beat)
    try:
        wait_until(
            lambda: Mailbox.objects.filter(pk=mailbox.pk, state=Mailbox.State.DONE).exists(),
            timeout=45,
            message=lambda: (
                f"{Schedule.objects.filter(pk=schedule.pk).values()} "
                f"{Mailbox.objects.filter(pk=mailbox.pk).values('state', 'error')}"
            ),
        )
    finally:
        worker.stop()
    schedule.refresh_from_db()
    assert schedule.fired_at is not None and schedule.run_at is None
    assert "schedules.tasks.run_schedules" in worker.log()
    assert target.holdings().messages == source.holdings().messages == 4
