"""Each change, made through its real view or command, leaves one entry: who, what, from where,
and never a secret."""

import io
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from audit.log import Action
from mailboxes import engine, services
from mailboxes.models import Mailbox, MailboxPass
from projects.models import CutoverStep, Project
from schedules import services as schedules
from tests.rendered import messages

from .conftest import entries, project_form_data

LOCAL = "127.0.0.1"  # the test client's REMOTE_ADDR


def secrets_of(project):
    """Every secret the project holds: none may be in its log."""
    values = [project.source.secret, project.target.secret]
    for mailbox in project.mailboxes.all():
        values += [mailbox.source_password, mailbox.target_password]
    return [value for value in values if value]


def assert_no_secret(project, *also):
    details = " ".join(detail for _, _, detail, _ in entries(project))
    for secret in [*secrets_of(project), *also]:
        assert secret not in details


@pytest.mark.django_db
class TestProjectForm:
    def test_created_then_tenant_fields_named_never_their_values(self, client, alice):
        client.force_login(alice)
        client.post(reverse("project_create"), project_form_data())
        project = Project.objects.get(client_name="Fabrikam")
        changes = {"source-secret": "Spring2027!", "source-endpoint": "imap2.old.example"}
        data = project_form_data(members=[alice.pk], **changes)
        client.post(reverse("project_edit", args=[project.pk]), data)
        project.refresh_from_db()
        assert project.source.secret == "Spring2027!"
        assert entries(project) == [
            ("alice", Action.PROJECT_CREATED, "Created the project Fabrikam", LOCAL),
            (
                "alice",
                Action.TENANT_CHANGED,
                "Changed the source tenant: IMAP host, Password (of the master user, or shared by "
                "the mailboxes)",
                LOCAL,
            ),
        ]
        assert_no_secret(project, "source-Winter2026!", "target-Winter2026!")

    def test_the_state_change_is_its_own_entry(self, client, alice):
        client.force_login(alice)
        client.post(reverse("project_create"), project_form_data())
        project = Project.objects.get(client_name="Fabrikam")
        data = project_form_data(state="prestage", members=[alice.pk])
        client.post(reverse("project_edit", args=[project.pk]), data)
        assert entries(project)[1:] == [
            (
                "alice",
                Action.PROJECT_STATE,
                "Changed the project state from Planning to Pre-stage",
                LOCAL,
            )
        ]


@pytest.mark.django_db
class TestMailboxes:
    def test_added_edited_deleted(self, client, bob, project, mailboxes):
        ann = mailboxes[0]
        client.force_login(bob)
        client.post(
            reverse("mailbox_add", args=[project.pk]),
            {
                "source_address": "dee@contoso.example",
                "target_address": "dee@contoso.onmicrosoft.example",
                "source_login": "dee-src",
                "source_password": "src-secret-dee",
                "target_login": "dee-dst",
                "target_password": "dst-secret-dee",
            },
        )
        client.post(
            reverse("mailbox_edit", args=[project.pk, ann.pk]),
            {
                "source_address": ann.source_address,
                "target_address": ann.target_address,
                "display_name": "Ann Example",
                "source_login": ann.source_login,
                "source_password": "new-secret-ann",
                "target_login": ann.target_login,
            },
        )
        client.post(reverse("mailbox_delete", args=[project.pk, mailboxes[2].pk]))
        assert entries(project) == [
            (
                "bob",
                Action.MAILBOX_ADDED,
                "Added the mailbox dee@contoso.example (to dee@contoso.onmicrosoft.example)",
                LOCAL,
            ),
            (
                "bob",
                Action.MAILBOX_EDITED,
                "Edited the mailbox ann@contoso.example: Display name, Source password",
                LOCAL,
            ),
            ("bob", Action.MAILBOX_DELETED, "Deleted the mailbox cleo@contoso.example", LOCAL),
        ]
        assert_no_secret(project, "new-secret-ann", "src-secret-cleo")

    def test_imported_from_a_csv(self, client, bob, project):
        client.force_login(bob)
        rows = ["source_address,target_address,source_login,source_password"] + [
            f"{n}@contoso.example,{n}@new.example,{n},pw-{n}-secret" for n in ("dee", "eve", "fay")
        ]
        upload = io.BytesIO("\n".join(rows).encode())
        upload.name = "users.csv"
        client.post(reverse("mailbox_import", args=[project.pk]), {"file": upload})
        assert project.mailboxes.count() == 3
        assert entries(project) == [
            (
                "bob",
                Action.MAILBOXES_IMPORTED,
                "Imported mailboxes from a CSV: 3 added, 0 updated, 0 unchanged",
                LOCAL,
            )
        ]
        assert_no_secret(project)


def bulk(client, project, action, mailboxes):
    url = reverse("mailbox_bulk_action", args=[project.pk])
    ids = [m.pk for m in mailboxes]
    return client.post(url, {"action": action, "scope": "selected", "selected": ids})


@pytest.mark.django_db
class TestPasses:
    def test_started_paused_resumed_retried(
        self, client, bob, project, mailboxes, django_capture_on_commit_callbacks
    ):
        client.force_login(bob)
        with django_capture_on_commit_callbacks():
            bulk(client, project, "delta", mailboxes)
            bulk(client, project, "pause", mailboxes[:2])
            bulk(client, project, "resume", mailboxes[:2])
            # cleo's pass fails: only hers has something to retry.
            MailboxPass.objects.filter(mailbox=mailboxes[2]).update(state=MailboxPass.State.FAILED)
            Mailbox.objects.filter(pk=mailboxes[2].pk).update(state=Mailbox.State.FAILED)
            bulk(client, project, "retry", mailboxes)
        assert entries(project) == [
            ("bob", Action.PASS_STARTED, "Delta pass started for 3 mailboxes.", LOCAL),
            (
                "bob",
                Action.PASS_PAUSED,
                "Pause requested for 2 mailboxes (running ones only).",
                LOCAL,
            ),
            (
                "bob",
                Action.PASS_RESUMED,
                "Resume requested for 2 mailboxes (paused ones only).",
                LOCAL,
            ),
            (
                "bob",
                Action.PASS_RETRIED,
                "Retry queued for 1 mailbox; 2 had nothing to retry.",
                LOCAL,
            ),
        ]

    def test_a_refused_pass_records_nothing(self, client, bob, project, mailboxes):
        Mailbox.objects.filter(pk=mailboxes[1].pk).update(source_login=mailboxes[0].source_login)
        client.force_login(bob)
        bulk(client, project, "full", mailboxes)
        assert entries(project) == []

    def test_a_schedule_fired_by_beat(self, project, mailboxes):
        due = timezone.now()
        project.schedules.create(kind="delta", run_at=due - timedelta(minutes=1))
        schedules.fire_due(due, engine.InlineScheduler("test:audit"))
        assert entries(project) == [
            ("schedule", Action.PASS_STARTED, "Delta pass started for 3 mailboxes.", None)
        ]

    def test_a_run_window_pauses_and_resumes(self, project, mailboxes):
        project.run_windows.create(weekends=True)
        scheduler = engine.InlineScheduler("test:audit")
        services.start_passes(mailboxes, "full", scheduler=scheduler)
        wednesday, saturday = (
            datetime(2030, 3, 6, 12, tzinfo=UTC),
            datetime(2030, 3, 9, 12, tzinfo=UTC),
        )
        schedules.tick(wednesday, scheduler)
        schedules.tick(saturday, scheduler)
        assert entries(project) == [
            ("schedule", Action.PASS_PAUSED, "Run window closed: paused 3 mailbox(es)", None),
            ("schedule", Action.PASS_RESUMED, "Run window open: resumed 3 mailbox(es)", None),
        ]


@pytest.mark.django_db
class TestChecklist:
    def test_ticks_steps_and_the_cutover(self, client, bob, project):
        step = CutoverStep.objects.create(project=project, title="Lower TTLs", position=1)
        client.force_login(bob)
        url = reverse("cutover_tick", args=[project.pk, step.pk])
        client.post(url, {"done": "1", "note": "done at 9"})
        client.post(url, {"done": "0"})
        client.post(
            reverse("cutover_step_add", args=[project.pk]),
            {"title": "Call the CEO", "kind": "manual"},
        )
        client.post(reverse("cutover_state", args=[project.pk]), {"state": "cutover"})
        assert entries(project) == [
            ("bob", Action.CHECKLIST_TICKED, "Ticked “Lower TTLs”", LOCAL),
            ("bob", Action.CHECKLIST_TICKED, "Unticked “Lower TTLs”", LOCAL),
            ("bob", Action.CHECKLIST_EDITED, "Added the step “Call the CEO”", LOCAL),
            (
                "bob",
                Action.PROJECT_STATE,
                "Changed the project state from Planning to Cutover",
                LOCAL,
            ),
        ]


@pytest.mark.django_db
class TestLinksAndExports:
    def test_link_made_and_revoked(self, client, bob, project, mailboxes):
        ann = mailboxes[0]
        client.force_login(bob)
        client.get(ann.get_absolute_url())  # shows the page: no link is handed out yet
        client.get(ann.get_absolute_url(), {"link_days": "7"})
        client.post(reverse("mailbox_link_revoke", args=[project.pk, ann.pk]))
        assert entries(project) == [
            (
                "bob",
                Action.LINK_MADE,
                "Made an end-user link for ann@contoso.example, valid for 7 days",
                LOCAL,
            ),
            (
                "bob",
                Action.LINK_REVOKED,
                "Revoked every end-user link of ann@contoso.example",
                LOCAL,
            ),
        ]

    def test_downloads(self, client, bob, project, mailboxes):
        client.force_login(bob)
        client.get(reverse("project_report", args=[project.pk]))
        export = client.get(reverse("mailbox_export", args=[project.pk])).content.decode()
        assert "ann@contoso.example" in export
        assert entries(project) == [
            ("bob", Action.EXPORT_DOWNLOADED, "Downloaded the final report", LOCAL),
            ("bob", Action.EXPORT_DOWNLOADED, "Downloaded the mailbox CSV", LOCAL),
        ]


@pytest.mark.django_db
class TestSchedulesAndDns:
    def test_schedule_and_window_added_and_removed(self, client, bob, project, mailboxes):
        client.force_login(bob)
        client.post(
            reverse("schedule_add", args=[project.pk]),
            {"kind": "delta", "at": "2030-01-02T22:00", "scope": "all"},
        )
        schedule = project.schedules.get()
        client.post(reverse("schedule_delete", args=[project.pk, schedule.pk]))
        client.post(reverse("window_add", args=[project.pk]), {"weekends": "on"})
        assert entries(project) == [
            ("bob", Action.SCHEDULE_ADDED, f"Scheduled: {schedule}", LOCAL),
            ("bob", Action.SCHEDULE_REMOVED, f"Removed: {schedule}", LOCAL),
            ("bob", Action.SCHEDULE_ADDED, "Run window added: weekends", LOCAL),
        ]

    def test_servers_asked_about_a_domain(self, client, bob, project):
        domain = project.domains.create(name="contoso.example")
        client.force_login(bob)
        client.post(
            reverse("dns_nameservers", args=[project.pk]),
            {"domain": domain.pk, "nameservers": "192.0.2.53"},
        )
        assert entries(project) == [
            (
                "bob",
                Action.DNS_CHANGED,
                "Set the servers asked about contoso.example: 192.0.2.53:53",
                LOCAL,
            )
        ]


def set_cutover(project):
    """The 'planned' message names the cutover date: without one it is not sent."""
    Project.objects.filter(pk=project.pk).update(planned_cutover=timezone.now())


@pytest.mark.django_db
class TestNotices:
    def test_sent_again(self, client, bob, project, mailboxes, django_capture_on_commit_callbacks):
        notice = project.notices.create(
            mailbox=mailboxes[0],
            kind="copied",
            event_key="copied",
            recipient="ann@contoso.example",
            subject="Your mail has been copied",
        )
        client.force_login(bob)
        with django_capture_on_commit_callbacks():
            client.post(reverse("notice_resend", args=[project.pk, notice.pk]))
        assert entries(project) == [
            (
                "bob",
                Action.NOTICE_SENT,
                "Sent “Your mail has been copied” again to ann@contoso.example",
                LOCAL,
            )
        ]

    def test_sent_to_listed_mailboxes(
        self, client, bob, project, mailboxes, django_capture_on_commit_callbacks
    ):
        set_cutover(project)
        client.force_login(bob)
        with django_capture_on_commit_callbacks():
            response = client.post(
                reverse("notices_send", args=[project.pk]),
                {"template": "planned", "addresses": "ann@contoso.example ben@contoso.example"},
                follow=True,
            )
        [(_, shown)] = messages(response)
        assert project.notices.count() == 2
        assert entries(project) == [("bob", Action.NOTICE_SENT, shown, LOCAL)]


@pytest.mark.django_db
class TestCommands:
    def test_import_schedule_and_send_from_the_command_line(self, project, tmp_path, settings):
        settings.EMAIL_HOST = ""
        set_cutover(project)
        users = tmp_path / "users.csv"
        users.write_text(
            "source_address,target_address,source_login,source_password\n"
            + "".join(
                f"{n}@contoso.example,{n}@x.example,{n},pw-{n}\n" for n in ("ann", "ben", "cy")
            )
        )
        out = io.StringIO()
        call_command("import_mailboxes", project.pk, users, stdout=out, stderr=out)
        call_command("schedule_pass", project.pk, kind="delta", at="2030-01-02 22:00", stdout=out)
        call_command("send_notices", project.pk, template="planned", stdout=out)
        schedule = project.schedules.get()
        assert entries(project) == [
            (
                "command line",
                Action.MAILBOXES_IMPORTED,
                "Imported mailboxes from users.csv: 3 added, 0 updated, 0 unchanged",
                None,
            ),
            ("command line", Action.SCHEDULE_ADDED, f"Scheduled: {schedule}", None),
            (
                "command line",
                Action.NOTICE_SENT,
                "Sent the “planned” message to 3 mailbox(es)",
                None,
            ),
        ]
        assert_no_secret(project)
