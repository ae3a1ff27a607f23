"""Schedules and run windows driven by a real worker running beat (``celery worker --beat``, as
scripts/run.sh runs it), with no call from the test: what beat does is what is tested."""

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from mailboxes import engine, services
from mailboxes.models import Mailbox, MailboxPass
from schedules.models import RunWindow, Schedule
from tests.servers.worker import wait_until
from tests.verification.conftest import add_mailbox, expunge, imap_project, unique_messages

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
BEAT_EVERY_SECOND = {"SCHEDULES_TICK_SECONDS": "1"}
TICK_DONE = "Task schedules.tasks.run_schedules["  # a tick the worker ran (and logs the end of)


def three_mailboxes(dovecot_a, dovecot_b, dovecot_user, name: str, count: int, folder="INBOX"):
    """A project and three mailboxes, each with its own accounts and ``count + i`` messages."""
    project = imap_project(dovecot_a, dovecot_b)
    users = []
    for i in range(3):
        source, target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
        source.load(folder, unique_messages(f"{name}{i}", count + i))
        users.append((add_mailbox(project, source, target), source, target))
    return project, users


def states(project) -> list[str]:
    return sorted(project.mailboxes.values_list("state", flat=True))


def ticks_run(worker) -> int:
    return sum(1 for line in worker.log().splitlines() if TICK_DONE in line and "succeeded" in line)


def wait_for_ticks(worker, more: int) -> None:
    """Until beat's tick has run ``more`` times after now: proof that they happened, where a
    fixed sleep only hopes so on a loaded machine."""
    goal = ticks_run(worker) + more
    wait_until(
        lambda: ticks_run(worker) >= goal,
        timeout=60,
        message=lambda: f"beat ran fewer than {more} more ticks:\n{worker.log()[-3000:]}",
    )


def test_a_schedule_survives_a_restart_and_fires_once(
    dovecot_a, dovecot_b, dovecot_user, start_worker
):
    project, users = three_mailboxes(dovecot_a, dovecot_b, dovecot_user, "restart", 4)
    worker = start_worker("worker-var", env=BEAT_EVERY_SECOND, beat=True)
    schedule = Schedule.objects.create(
        project=project, kind="full", run_at=timezone.now() + timedelta(seconds=6)
    )
    worker.stop()  # worker and beat go; nothing of the schedule lives in either
    assert Schedule.objects.get(pk=schedule.pk).fired_at is None
    wait_until(lambda: timezone.now() > schedule.run_at, timeout=60)
    worker.start(beat=True)  # it came due while they were down
    wait_until(
        lambda: states(project) == [Mailbox.State.DONE] * 3,
        timeout=60,
        message=lambda: f"{states(project)} {Schedule.objects.filter(pk=schedule.pk).values()}",
    )
    wait_for_ticks(worker, 3)  # none fires it again
    schedule.refresh_from_db()
    assert schedule.times_fired == 1 and schedule.run_at is None
    assert schedule.last_result == "Full pass started for 3 mailboxes."
    assert MailboxPass.objects.filter(mailbox__project=project).count() == 3
    for _, source, target in users:
        assert target.holdings().folders["INBOX"] == source.holdings().folders["INBOX"]


def test_a_scheduled_verification_runs_in_the_worker(
    dovecot_a, dovecot_b, dovecot_user, start_worker
):
    project, users = three_mailboxes(dovecot_a, dovecot_b, dovecot_user, "verify", 5)
    scheduler = engine.InlineScheduler("test:copy")
    services.start_passes([m for m, _, _ in users], "full", scheduler=scheduler)
    scheduler.run()
    expunge(users[1][2], "INBOX", 2)  # two of the second user's messages go from the target
    Schedule.objects.create(project=project, kind="verify", run_at=timezone.now())
    worker = start_worker("worker-var", env=BEAT_EVERY_SECOND, beat=True)
    wait_until(
        lambda: not project.mailboxes.filter(verified__isnull=True).exists(),
        timeout=60,
        message=lambda: worker.log()[-3000:],
    )
    found = dict(project.mailboxes.values_list("pk", "items_missing"))
    verified = dict(project.mailboxes.values_list("pk", "verified"))
    (first, _, _), (second, _, _), (third, _, _) = users
    assert found == {first.pk: 0, second.pk: 2, third.pk: 0}
    assert verified == {first.pk: True, second.pk: False, third.pk: True}
    assert "Verification queued for 3 mailboxes." in Schedule.objects.get().last_result


def window_around(window: RunWindow, now: datetime, open_: bool) -> None:
    """Move the window's hours so that ``now`` (UTC, the project's zone) is in it or not:
    what time does to a window, without waiting for an edge."""
    hour = timedelta(hours=1)
    starts, ends = (now - hour, now + hour) if open_ else (now + hour, now + 2 * hour)
    window.starts, window.ends = starts.time(), ends.time()
    window.save()


def test_a_window_pauses_and_resumes_a_long_pass_in_the_worker(
    dovecot_a, dovecot_b, dovecot_user, start_worker
):
    project, users = three_mailboxes(
        dovecot_a, dovecot_b, dovecot_user, "long", 200, folder="Archive"
    )
    window = RunWindow.objects.create(project=project)
    window_around(window, timezone.now(), open_=True)
    # One message a batch: each mailbox takes seconds, a pass to cut. A copy task hands over
    # after a second, so beat's tick is not queued behind copying for long.
    env = {**BEAT_EVERY_SECOND, "COPY_BATCH_ITEMS": "1", "COPY_TASK_SECONDS": "1"}
    # A folder job whose batch was in flight at the pause may not be queued again by the
    # resume (seen here once in three runs); the stalled-job sweep brings it back after its
    # lease, 90 s by default, so short leases keep this test short.
    env |= {"COPY_LEASE_SECONDS": "5", "COPY_SWEEP_SECONDS": "1"}
    worker = start_worker("worker-var", env=env, beat=True)
    services.start_passes([m for m, _, _ in users], "full")
    wait_until(
        lambda: project.mailboxes.filter(items_copied__gt=0).exists(),
        timeout=60,
        message=lambda: f"nothing copied: {states(project)}\n{worker.log()[-3000:]}",
    )
    window_around(window, timezone.now(), open_=False)
    wait_until(
        lambda: states(project) == [Mailbox.State.PAUSED] * 3,
        timeout=60,
        message=lambda: f"not paused: {states(project)}",
    )
    held = [target.holdings().messages for _, _, target in users]
    assert sum(held) < sum(source.holdings().messages for _, source, _ in users)
    wait_for_ticks(worker, 3)  # closed: three ticks, nothing copied
    assert [target.holdings().messages for _, _, target in users] == held
    window_around(window, timezone.now(), open_=True)
    wait_until(
        lambda: states(project) == [Mailbox.State.DONE] * 3,
        timeout=120,
        message=lambda: f"not resumed: {states(project)}\n{worker.log()[-3000:]}",
    )
    assert "run window closed: paused" in worker.log() and "run window open" in worker.log()
    for _, source, target in users:
        # Every message exactly once: duplicates would show in the sorted lists.
        assert target.holdings().folders["Archive"] == source.holdings().folders["Archive"]
