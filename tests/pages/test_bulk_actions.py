from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from mailboxes.models import Mailbox, MailboxPass
from tests.rendered import messages_after
from tests.servers.worker import purge_filesystem_broker, queued_tasks


def act(client, project, **data):
    return client.post(reverse("mailbox_bulk_action", args=[project.pk]), data)


def by_name(project, name):
    return project.mailboxes.get(source_address__startswith=name)


@pytest.mark.django_db
def test_prestage_for_the_selected_rows(
    client, bob, busy_project, django_capture_on_commit_callbacks
):
    nina, dora = by_name(busy_project, "nina"), by_name(busy_project, "dora")
    rick = by_name(busy_project, "rick")  # a pass under way already
    client.force_login(bob)
    purge_filesystem_broker()
    with django_capture_on_commit_callbacks(execute=True):
        response = act(
            client,
            busy_project,
            action="prestage",
            scope="selected",
            selected=[nina.pk, dora.pk, rick.pk],
            older_than_days="30",
        )
    assert response.status_code == 302
    assert messages_after(client, response) == [
        "Pre-stage pass started for 2 mailboxes (1 mailbox already had a pass under way)."
    ]
    passes = MailboxPass.objects.filter(kind="prestage", mailbox__in=[nina, dora])
    assert passes.count() == 2
    # Once the transaction commits, each new pass's planning is in the broker, nothing else.
    assert sorted(queued_tasks()) == sorted(
        ("mailboxes.tasks.plan_mailbox_pass", [p.pk], {}) for p in passes
    )
    expected_before = timezone.now() - timedelta(days=30)
    assert all(abs(p.before - expected_before) < timedelta(minutes=1) for p in passes)
    nina.refresh_from_db()
    assert nina.state == Mailbox.State.QUEUED
    assert by_name(busy_project, "fred").passes.count() == 0


@pytest.mark.django_db
def test_filtered_scope_acts_on_every_matching_row_and_keeps_the_filter(
    client, bob, busy_project, django_capture_on_commit_callbacks
):
    client.force_login(bob)
    with django_capture_on_commit_callbacks():
        response = act(client, busy_project, action="pause", scope="filtered", show="running")
    assert response["Location"] == f"{busy_project.get_absolute_url()}?show=running"
    assert by_name(busy_project, "rick").state == Mailbox.State.PAUSED
    assert by_name(busy_project, "dora").state == Mailbox.State.DONE
    with django_capture_on_commit_callbacks():
        act(client, busy_project, action="resume", scope="filtered", show="paused")
    assert by_name(busy_project, "rick").state == Mailbox.State.COPYING


@pytest.mark.django_db
def test_retry_failed(client, bob, busy_project, django_capture_on_commit_callbacks):
    fred = by_name(busy_project, "fred")
    MailboxPass.objects.create(mailbox=fred, kind="prestage", state=MailboxPass.State.FAILED)
    client.force_login(bob)
    with django_capture_on_commit_callbacks():
        act(client, busy_project, action="retry", scope="selected", selected=[fred.pk])
    fred.refresh_from_db()
    assert (fred.state, fred.error) == (Mailbox.State.QUEUED, "")


@pytest.mark.django_db
def test_nothing_selected_changes_nothing(client, bob, busy_project):
    client.force_login(bob)
    response = act(client, busy_project, action="prestage", scope="selected")
    assert "No mailbox selected" in messages_after(client, response)[0]
    other = act(client, busy_project, action="explode", scope="selected", selected=["1"])
    assert "Choose an action" in messages_after(client, other)[-1]
    assert MailboxPass.objects.count() == 1  # only rick's, from before


@pytest.mark.django_db
def test_rows_of_another_project_are_ignored(client, bob, busy_project):
    from tests.conftest import make_project

    from .conftest import add_mailbox

    elsewhere = make_project(members=[bob], client_name="Fabrikam")
    stranger = add_mailbox(elsewhere, "sam")
    client.force_login(bob)
    response = act(
        client, busy_project, action="prestage", scope="selected", selected=[stranger.pk]
    )
    assert "No mailbox selected" in messages_after(client, response)[0]
    assert not stranger.passes.exists()
