"""Test logins: the bulk action queues it, the worker records it, the project page shows it per
row and polls while any is pending."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from mailboxes import logins
from mailboxes.models import Mailbox
from mailboxes.tasks import check_mailbox_logins
from tests.conftest import make_project
from tests.rendered import messages_after
from tests.servers.worker import purge_filesystem_broker, queued_tasks, wait_until

from .conftest import add_mailbox


def act(client, project, **data):
    return client.post(reverse("mailbox_bulk_action", args=[project.pk]), data)


def poll_url(project, *mailboxes):
    query = "&".join(f"id={m.pk}" for m in mailboxes)
    return f"{reverse('mailbox_login_checks', args=[project.pk])}?{query}"


def row(html, mailbox):
    start = html.index(f'<tr id="mailbox-{mailbox.pk}"')
    return html[start : html.index("</tr>", start)]


@pytest.mark.django_db
class TestTestLoginsAction:
    def test_marks_the_rows_and_queues_the_tests_on_commit(
        self, client, bob, project, django_capture_on_commit_callbacks
    ):
        ann, ben = add_mailbox(project, "ann"), add_mailbox(project, "ben")
        client.force_login(bob)
        purge_filesystem_broker()
        with django_capture_on_commit_callbacks(execute=True):
            response = act(client, project, action="logins", scope="selected", selected=[ann.pk])
        assert messages_after(client, response) == [
            "Testing the logins of 1 mailbox; each row shows its result."
        ]
        # Once committed, ann's login test waits in the broker for a worker; ben's does not.
        assert queued_tasks() == [("mailboxes.tasks.check_mailbox_logins", [[ann.pk]], {})]
        ann.refresh_from_db(), ben.refresh_from_db()
        assert ann.login_check_requested_at is not None and ben.login_check_requested_at is None
        html = client.get(project.get_absolute_url()).content.decode()
        assert "testing the logins…" in row(html, ann)
        assert "testing the logins…" not in row(html, ben)
        assert f'hx-get="{poll_url(project, ann)}"' in html  # one poll for the page's rows

    def test_many_mailboxes_make_several_short_tasks(
        self, client, bob, project, django_capture_on_commit_callbacks
    ):
        Mailbox.objects.bulk_create(
            Mailbox(project=project, source_address=f"u{n}@a.example", target_address=f"u{n}@b")
            for n in range(logins.PER_TASK * 2 + 1)
        )
        client.force_login(bob)
        purge_filesystem_broker()
        with django_capture_on_commit_callbacks(execute=True):
            act(client, project, action="logins", scope="filtered")
        # Once committed, every mailbox's test waits in the broker, at most PER_TASK a task.
        queued = queued_tasks()
        assert {name for name, _, _ in queued} == {"mailboxes.tasks.check_mailbox_logins"}
        chunks = [args[0] for _, args, _ in queued]
        assert sorted(map(len, chunks)) == [1, logins.PER_TASK, logins.PER_TASK]
        every = sorted(project.mailboxes.values_list("pk", flat=True))
        assert sorted(pk for chunk in chunks for pk in chunk) == every


@pytest.mark.django_db
class TestLoginChecksPoll:
    def test_swaps_each_result_in_and_stops_when_none_is_pending(self, client, bob, project):
        ann, ben = add_mailbox(project, "ann"), add_mailbox(project, "ben")
        Mailbox.objects.filter(pk__in=[ann.pk, ben.pk]).update(
            login_check_requested_at=timezone.now()
        )
        client.force_login(bob)
        htmx = {"HX-Request": "true"}
        pending = client.get(poll_url(project, ann, ben), headers=htmx)
        assert pending.status_code == 200 and 'hx-trigger="every 2s"' in pending.content.decode()
        logins.record(ann.pk, True, "source: Connected: 5 folders; target: Connected")
        logins.record(ben.pk, False, "source: IMAP login refused: Authentication failed.")
        done = client.get(poll_url(project, ann, ben), headers=htmx)
        html = done.content.decode()
        assert done.status_code == 286 and "hx-trigger" not in html
        assert f'id="login-check-{ann.pk}" class="small login-check" hx-swap-oob="true"' in html
        assert "✔ logins work" in html
        assert 'title="source: Connected: 5 folders; target: Connected"' in html
        assert "✘ source: IMAP login refused: Authentication failed." in html

    def test_a_test_that_never_answers_is_not_testing_for_ever(self, client, bob, project):
        ann = add_mailbox(project, "ann")
        stale = timezone.now() - logins.PENDING_FOR - timedelta(seconds=1)
        Mailbox.objects.filter(pk=ann.pk).update(login_check_requested_at=stale)
        client.force_login(bob)
        html = client.get(project.get_absolute_url()).content.decode()
        assert "✘ No answer from the worker" in row(html, ann)
        assert "mailbox_login_checks" not in html and "login-checks/?" not in html

    def test_rows_of_another_project_are_not_shown(self, client, bob, project):
        elsewhere = make_project(members=[], client_name="Fabrikam")
        stranger = add_mailbox(elsewhere, "sam")
        client.force_login(bob)
        html = client.get(poll_url(project, stranger)).content.decode()
        assert f"login-check-{stranger.pk}" not in html


@pytest.mark.django_db
class TestProjectPageRows:
    def test_each_row_says_who_logs_in_without_extra_queries(
        self, client, bob, project, django_assert_max_num_queries
    ):
        ann = add_mailbox(project, "ann", source_login="ann.archer")
        add_mailbox(project, "ben")
        client.force_login(bob)
        html = client.get(project.get_absolute_url()).content.decode()
        assert "logs in as ann.archer (source), files under /tmp/nowhere (target)" in row(html, ann)
        assert reverse("mailbox_edit", args=[project.pk, ann.pk]) in row(html, ann)
        assert reverse("mailbox_add", args=[project.pk]) in html
        for value in ("full", "logins"):
            assert f'<option value="{value}">' in html
        with django_assert_max_num_queries(100) as few:
            client.get(project.get_absolute_url())
        for n in range(30):
            add_mailbox(project, f"u{n}", source_login=f"u{n}")
        with django_assert_max_num_queries(len(few.captured_queries)):
            client.get(project.get_absolute_url())


@pytest.mark.django_db
class TestCheckMailboxLoginsTask:
    def test_any_error_ends_with_a_message(self, project):
        ann = add_mailbox(project, "ann")
        project.source.kind = "gopher"
        project.source.save()
        check_mailbox_logins([ann.pk, 999_999])  # a mailbox deleted meanwhile is skipped
        ann.refresh_from_db()
        assert ann.login_check_ok is False and not logins.is_pending(ann)
        assert ann.login_check_message.startswith(
            "source: There is no connector for tenant kind 'gopher' yet; target: "
        )

    def test_a_secret_no_key_decrypts_is_named(self, project):
        from projects.fields import UnreadableSecret

        ann = add_mailbox(project, "ann", source_login="ann")
        Mailbox.objects.filter(pk=ann.pk).update(source_password=UnreadableSecret("gAAAA-x"))
        check_mailbox_logins([ann.pk])
        ann.refresh_from_db()
        assert "cannot be decrypted: FIELD_ENCRYPTION_KEY" in ann.login_check_message


@pytest.fixture
def three_users(dovecot_a, dovecot_b, dovecot_user, alice, bob):
    """Three users, each with their own password on both servers; the project's tenants know
    the servers but no account, so each mailbox logs in with its own login."""
    from projects.models import Project, Tenant

    def tenant(server):
        return Tenant.objects.create(
            kind="imap", endpoint=server.host, port=server.port, security="plain", verify_tls=False
        )

    project = Project.objects.create(
        client_name="Contoso", source=tenant(dovecot_a), target=tenant(dovecot_b)
    )
    project.members.set([alice, bob])
    users = []
    for n in range(3):
        source, target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
        users.append((source, target))
        project.mailboxes.create(
            source_address=f"{source.name}@contoso.example",
            target_address=f"{target.name}@fabrikam.example",
            source_login=source.name,
            source_password=source.password if n != 1 else "not-the-password",
            target_login=target.name,
            target_password=target.password,
        )
    return project, users


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_tests_each_mailbox_on_dovecot(client, bob, three_users, start_worker):
    project, users = three_users
    worker = start_worker("worker")
    client.force_login(bob)
    act(client, project, action="logins", scope="filtered")
    wait_until(
        lambda: not project.mailboxes.filter(login_checked_at__isnull=True).exists(),
        message=lambda: "the worker never recorded the login tests:\n" + worker.log(),
    )
    html = client.get(project.get_absolute_url()).content.decode()
    ann, ben, cid = project.mailboxes.order_by("pk")
    assert (ann.login_check_ok, ben.login_check_ok, cid.login_check_ok) == (True, False, True)
    assert "✔ logins work" in row(html, ann)
    assert (
        f'title="source: Connected: 6 folders in {ann.source_address}; target: Connected: '
        f'6 folders in {ann.target_address}."' in row(html, ann)
    )
    wrong = row(html, ben)
    assert "✘ source: IMAP login refused for" in wrong and users[1][0].name in wrong
    assert "Authentication failed" in wrong  # Dovecot's own reason
    assert "target: Connected" in wrong  # the other side is tested all the same
    assert "testing" not in html and "login-checks/?" not in html
    assert "not-the-password" not in html and users[0][0].password not in html
    assert "mailboxes.tasks.check_mailbox_logins" in worker.log()
