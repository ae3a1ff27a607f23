"""Scheduled passes and run windows, driven by the beat tick with explicit times."""

import re
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from django.utils import timezone

from mailboxes import engine, services
from mailboxes.models import Mailbox, MailboxPass
from schedules import services as schedules
from schedules.models import RunWindow, Schedule
from tests.verification.conftest import add_mailbox, imap_project, unique_messages

pytestmark = pytest.mark.django_db(transaction=True)
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def three(dovecot_a, dovecot_b, dovecot_user):
    """Three mailboxes with their own accounts and content, fully copied once."""
    project = imap_project(dovecot_a, dovecot_b)
    project.time_zone = "Europe/Berlin"
    project.save()
    users = []
    for i in range(3):
        source, target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
        source.load("INBOX", unique_messages(f"sched{i}", 3 + i))
        users.append((add_mailbox(project, source, target), source, target))
    scheduler = engine.InlineScheduler("test:full")
    services.start_passes([m for m, _, _ in users], "full", scheduler=scheduler)
    scheduler.run()
    return project, users


def test_a_scheduled_delta_fires_at_its_time_and_copies_what_is_new(three):
    project, users = three
    for i, (_, source, _) in enumerate(users):
        source.load("INBOX", unique_messages(f"new{i}", 2))
    at = datetime(2030, 3, 1, 22, 0, tzinfo=BERLIN)
    schedule = Schedule.objects.create(project=project, kind="delta", run_at=at)
    scheduler = engine.InlineScheduler("test:delta")

    assert schedules.tick(at - timedelta(minutes=1), scheduler) == []
    assert not MailboxPass.objects.filter(kind="delta").exists()
    assert schedules.tick(at, scheduler) == [schedule.pk]
    scheduler.run()

    for mailbox, source, target in users:
        assert mailbox.passes.first().kind == "delta"
        assert mailbox.passes.first().state == MailboxPass.State.DONE
        assert sorted(target.holdings().folders["INBOX"]) == sorted(
            source.holdings().folders["INBOX"]
        )
    schedule.refresh_from_db()
    assert schedule.run_at is None and schedule.fired_at == at
    assert "started for 3 mailboxes" in schedule.last_result
    assert schedules.tick(at + timedelta(hours=1), scheduler) == []  # once only


def test_two_beats_at_once_start_one_pass(project, mailbox):
    at = datetime(2030, 3, 1, 22, 0, tzinfo=BERLIN)
    schedule = Schedule.objects.create(project=project, kind="full", run_at=at)
    scheduler = engine.InlineScheduler("test:twice")
    # Both beats read the due schedule before either claimed it.
    assert schedules._fire(schedule.pk, at, scheduler)
    assert not schedules._fire(schedule.pk, at, scheduler)
    assert schedules.fire_due(at, scheduler) == []
    assert MailboxPass.objects.filter(mailbox=mailbox).count() == 1


def test_a_daily_delta_fires_once_a_day_until_cutover(project, mailbox):
    project.time_zone = "Europe/Berlin"
    project.planned_cutover = datetime(2030, 3, 4, 8, 0, tzinfo=BERLIN)
    project.save()
    first = datetime(2030, 3, 1, 22, 0, tzinfo=BERLIN)
    schedule = Schedule.objects.create(project=project, kind="delta", run_at=first, daily=True)
    scheduler = engine.InlineScheduler("test:daily")
    fired = []
    moment = first - timedelta(hours=1)
    while moment < datetime(2030, 3, 7, tzinfo=BERLIN):
        if schedules.tick(moment, scheduler):
            fired.append(moment)
        # The copy "finishes" between runs, so the next delta is not refused as busy.
        MailboxPass.objects.update(state=MailboxPass.State.DONE)
        Mailbox.objects.update(state=Mailbox.State.DONE)
        moment += timedelta(minutes=30)
    assert fired == [first + timedelta(days=n) for n in range(3)]  # 1, 2, 3 March; not the 4th
    assert mailbox.passes.filter(kind="delta").count() == 3
    schedule.refresh_from_db()
    assert schedule.run_at is None and schedule.times_fired == 3


def test_a_window_pauses_a_long_pass_at_its_end_and_resumes_it_at_its_start(three, settings):
    settings.COPY_BATCH_ITEMS = 7  # several batches per folder: a pass long enough to cut
    project, users = three
    RunWindow.objects.create(project=project, starts=time(20, 0), ends=time(6, 0))
    for i, (_, source, _) in enumerate(users):
        source.load("Archive", unique_messages(f"long{i}", 30))
    scheduler = engine.InlineScheduler("test:window")
    evening = datetime(2030, 3, 5, 23, 0, tzinfo=BERLIN)  # a Tuesday, in the window
    services.start_passes([m for m, _, _ in users], "delta", scheduler=scheduler)
    schedules.tick(evening, scheduler)
    scheduler.run(steps=3)  # each pass listed its folders, not one copied yet
    schedules.tick(datetime(2030, 3, 6, 6, 0, tzinfo=BERLIN), scheduler)  # the window ends
    scheduler.run()  # what was queued finds its pass paused and stops
    states = Mailbox.objects.filter(project=project).values_list("state", flat=True)
    assert set(states) == {Mailbox.State.PAUSED}, list(states)
    held = [target.holdings().messages for _, _, target in users]
    schedules.tick(datetime(2030, 3, 6, 12, 0, tzinfo=BERLIN), scheduler)  # still closed
    scheduler.run()
    assert [target.holdings().messages for _, _, target in users] == held
    schedules.tick(datetime(2030, 3, 6, 20, 0, tzinfo=BERLIN), scheduler)  # it opens
    scheduler.run()
    for mailbox, source, target in users:
        mailbox.refresh_from_db()
        assert mailbox.state == Mailbox.State.DONE
        assert target.holdings().messages == source.holdings().messages


def test_a_pass_started_by_hand_outside_the_window_is_paused(project, mailbox):
    RunWindow.objects.create(project=project, weekends=True)
    scheduler = engine.InlineScheduler("test:hand")
    services.start_passes([mailbox], "full", scheduler=scheduler)
    schedules.tick(datetime(2030, 3, 6, 12, 0, tzinfo=BERLIN), scheduler)  # a Wednesday
    mailbox.refresh_from_db()
    assert mailbox.state == Mailbox.State.PAUSED


class TestForms:
    def post(self, client, bob, project, **data):
        client.force_login(bob)
        url = reverse("schedule_add", args=[project.pk])
        return client.post(url, {"scope": "all", **data}, follow=True).content.decode()

    def test_bad_input_is_refused_with_a_reason(self, client, bob, project):
        page = self.post(client, bob, project, kind="delta", at="2020-01-01T22:00")
        assert "That time has passed" in page
        page = self.post(client, bob, project, kind="teleport", at="2031-01-01T22:00")
        assert "teleport is not one of the available choices" in page
        page = self.post(client, bob, project, kind="full", at="2031-01-01T22:00", daily="on")
        assert "Only delta passes repeat daily" in page
        url = reverse("window_add", args=[project.pk])
        page = client.post(url, {"starts": "20:00", "ends": "20:00"}, follow=True)
        assert "The window has no hours" in page.content.decode()
        assert not project.schedules.exists() and not project.run_windows.exists()

    def test_a_refused_schedule_keeps_what_was_typed(self, client, bob, project):
        client.force_login(bob)
        url = reverse("schedule_add", args=[project.pk])
        data = {"scope": "listed", "kind": "delta", "at": "2031-01-01T22:00", "daily": "on"}
        response = client.post(url, {**data, "mailboxes": "ann@contoso.example"})
        assert response.status_code == 400
        page = response.content.decode()
        assert "Set the project&#x27;s planned cutover" in page
        assert 'value="2031-01-01T22:00"' in page and 'value="ann@contoso.example"' in page
        assert '<option value="delta" selected>' in page
        assert re.search(r'<input type="checkbox" name="daily"[^>]* checked', page)
        assert not project.schedules.exists()

    def test_a_schedule_is_stored_in_the_project_time_zone(self, client, bob, project):
        project.time_zone = "Europe/Berlin"
        project.save()
        page = self.post(client, bob, project, kind="verify", at="2031-01-01T22:00")
        (schedule,) = project.schedules.all()
        assert schedule.run_at == datetime(2031, 1, 1, 22, 0, tzinfo=BERLIN)
        # Back on the schedules page, which lists what was just added.
        assert f"Scheduled: {schedule}." in page and f'id="schedule-{schedule.pk}"' in page


def test_a_scheduled_prestage_copies_only_what_is_older_than_its_days(
    client, bob, project, mailbox
):
    TestForms().post(client, bob, project, kind="prestage", at="2031-01-01T22:00",
                     older_than_days="30")  # fmt: skip
    (schedule,) = project.schedules.all()
    assert schedule.older_than_days == 30
    assert schedules.fire_due(schedule.run_at, engine.InlineScheduler("test:pre")) == [schedule.pk]
    (prestage,) = mailbox.passes.all()
    assert prestage.kind == "prestage"
    expected = timezone.now() - timedelta(days=30)
    assert abs(prestage.before - expected) < timedelta(minutes=1)


def test_the_pages_show_the_next_schedule(client, bob, project, mailbox):
    project.time_zone = "Europe/Berlin"
    project.save()
    at = timezone.now().astimezone(BERLIN).replace(hour=22, minute=0) + timedelta(days=3)
    Schedule.objects.create(project=project, kind="delta", run_at=at)
    RunWindow.objects.create(project=project, starts=time(20, 0), ends=time(6, 0))
    client.force_login(bob)
    expected = f"delta for 1 mailbox, {at:%a} {at.day} {at:%b} 22:00"
    assert expected in client.get(reverse("home")).content.decode()
    page = client.get(project.get_absolute_url()).content.decode()
    assert f"next: {expected}</span>" in page and "(Europe/Berlin)" in page
    Schedule.objects.create(project=project, kind="verify", run_at=at + timedelta(days=1))
    page = client.get(project.get_absolute_url()).content.decode()
    assert f"next: {expected}; then verification for 1 mailbox, " in page
    detail = client.get(reverse("schedules", args=[project.pk]), HTTP_HX_REQUEST="true")
    detail = detail.content.decode()
    assert f"Next: {expected}" in detail and "Runs 20:00–06:00" in detail


def test_the_command_schedules_a_daily_delta(project, mailbox):
    from tests.commands.conftest import run

    project.planned_cutover = datetime(2031, 2, 1, tzinfo=BERLIN)
    project.save()
    done = run(
        "schedule_pass", project.pk, "--kind", "delta", "--at", "2031-01-05 22:00", "--daily"
    )
    assert done.code == 0, done.message
    (schedule,) = project.schedules.all()
    assert f"schedule {schedule.pk}: next delta for 1 mailbox, Sun 5 Jan 22:00 UTC" in done.out
    assert schedule.daily
    refused = run("schedule_pass", project.pk, "--kind", "teleport", "--at", "2031-01-05 22:00")
    assert refused.code == 2 and "teleport" in refused.message


def test_two_beat_ticks_in_parallel_fire_once(project, mailbox):
    from threading import Barrier, Thread

    from django.db import connection

    at = datetime(2030, 3, 1, 22, 0, tzinfo=BERLIN)
    Schedule.objects.create(project=project, kind="full", run_at=at)
    barrier, fired = Barrier(2), []

    def beat():
        barrier.wait()
        try:
            fired.extend(schedules.fire_due(at, engine.InlineScheduler("test:beat")))
        finally:
            connection.close()

    threads = [Thread(target=beat) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(fired) == 1
    assert MailboxPass.objects.filter(mailbox=mailbox).count() == 1
