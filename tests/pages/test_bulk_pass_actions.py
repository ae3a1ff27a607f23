"""The bulk actions that start or retry passes: a full pass, the retry count, and the identity
guard refusing before anything starts."""

import pytest
from django.urls import reverse

from mailboxes.models import Mailbox, MailboxPass
from tests.rendered import messages
from tests.servers.worker import purge_filesystem_broker, queued_tasks

from .conftest import add_mailbox


def act(client, project, **data):
    return client.post(reverse("mailbox_bulk_action", args=[project.pk]), data, follow=True)


@pytest.mark.django_db
class TestStartFullPass:
    def test_starts_a_full_pass_for_the_selected_rows(
        self, client, bob, project, django_capture_on_commit_callbacks
    ):
        ann, ben = add_mailbox(project, "ann"), add_mailbox(project, "ben")
        client.force_login(bob)
        purge_filesystem_broker()
        with django_capture_on_commit_callbacks(execute=True):
            response = act(client, project, action="full", scope="selected", selected=[ann.pk])
        assert messages(response) == [("success", "Full pass started for 1 mailbox.")]
        [started] = MailboxPass.objects.all()
        assert (started.mailbox, started.kind) == (ann, "full")
        # Once the transaction commits, the new pass's planning waits in the broker, nothing else.
        assert queued_tasks() == [("mailboxes.tasks.plan_mailbox_pass", [started.pk], {})]
        ann.refresh_from_db(), ben.refresh_from_db()
        assert (ann.state, ben.state) == (Mailbox.State.QUEUED, Mailbox.State.NEW)


@pytest.mark.django_db
class TestRetryFailed:
    def test_counts_only_the_mailboxes_queued(
        self, client, bob, project, django_capture_on_commit_callbacks
    ):
        fred = add_mailbox(project, "fred", Mailbox.State.FAILED, error="Login refused")
        failed = MailboxPass.objects.create(
            mailbox=fred, kind="full", state=MailboxPass.State.FAILED
        )
        dora = add_mailbox(project, "dora", Mailbox.State.DONE)
        nina = add_mailbox(project, "nina")
        client.force_login(bob)
        purge_filesystem_broker()
        with django_capture_on_commit_callbacks(execute=True):
            response = act(
                client,
                project,
                action="retry",
                scope="selected",
                selected=[fred.pk, dora.pk, nina.pk],
            )
        assert messages(response) == [
            ("success", "Retry queued for 1 mailbox; 2 had nothing to retry.")
        ]
        fred.refresh_from_db()
        assert fred.state == Mailbox.State.QUEUED and fred.error == ""
        # The failed pass listed nothing, so it is planned again: only fred's is queued.
        assert queued_tasks() == [("mailboxes.tasks.plan_mailbox_pass", [failed.pk], {})]

    def test_nothing_to_retry(self, client, bob, project):
        dora = add_mailbox(project, "dora", Mailbox.State.DONE)
        client.force_login(bob)
        response = act(client, project, action="retry", scope="selected", selected=[dora.pk])
        assert messages(response) == [
            ("success", "Retry queued for 0 mailboxes; 1 had nothing to retry.")
        ]


@pytest.mark.django_db
class TestIdentityGuard:
    def test_two_mailboxes_on_one_account_start_nothing(self, client, bob, project):
        ann = add_mailbox(project, "ann", source_login="shared")
        ben = add_mailbox(project, "ben", source_login="shared")
        cid = add_mailbox(project, "cid")
        client.force_login(bob)
        response = act(
            client, project, action="prestage", scope="selected", selected=[ann.pk, ben.pk, cid.pk]
        )
        assert response.status_code == 200
        assert messages(response) == [
            ("error", "Nothing was started: some mailboxes would share one account."),
            (
                "error",
                "ann@contoso.example and ben@contoso.example would all log in to the source as "
                "shared: one account would be copied for several mailboxes. Give each its own "
                "login.",
            ),
        ]
        assert "would all log in to the source as shared" in response.content.decode()
        assert not MailboxPass.objects.exists()
        assert set(project.mailboxes.values_list("state", flat=True)) == {Mailbox.State.NEW}
