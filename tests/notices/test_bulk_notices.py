"""End-user messages from the project page's bulk actions: queued for the worker when the
request commits (nothing is sent inside it), once per mailbox, each with its own link."""

import pytest
from django.urls import reverse

from notices.models import Notice
from tests.rendered import messages_after

from .conftest import link_in

pytestmark = pytest.mark.django_db


def act(client, project, **data):
    """Post a bulk action; the messages the page it leads to shows."""
    response = client.post(reverse("mailbox_bulk_action", args=[project.pk]), data)
    return messages_after(client, response)


def test_the_page_offers_the_three_messages_and_the_notifications_page(client, bob, project):
    client.force_login(bob)
    page = client.get(project.get_absolute_url()).content.decode()
    for kind in ("planned", "copied", "done"):
        assert f"<option value=\"notice_{kind}\">Send '{kind}' notice" in page
    assert f'href="{reverse("notices_outbox", args=[project.pk])}"' in page


def test_selected_then_filtered_mailboxes_get_one_message_each(
    client, bob, settings, smtp_server, eager_tasks, project, users,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    settings.SITE_URL = "http://testserver"
    ann, ben, cat = users
    client.force_login(bob)
    with django_capture_on_commit_callbacks() as on_commit:
        said = act(client, project, action="notice_planned", scope="selected",
                   selected=[ann.pk, cat.pk])  # fmt: skip
    assert said == ["'planned' message queued for 2 mailboxes."]
    # Sent by the worker after the commit, never within the request.
    assert smtp_server.messages == [] and len(on_commit) == 1
    on_commit[0]()
    for mailbox in (ann, cat):
        (message,) = smtp_server.to(mailbox.source_address)
        body = client.get(link_in(message)).content.decode()
        assert mailbox.target_address in body
        assert all(other.target_address not in body for other in users if other != mailbox)
    assert smtp_server.to(ben.source_address) == []

    with django_capture_on_commit_callbacks(execute=True):
        said = act(client, project, action="notice_planned", scope="filtered")
    assert said == [
        "'planned' message queued for 1 mailbox; 2 skipped: they already have it "
        "(the Notifications page sends one again)."
    ]
    assert len(smtp_server.messages) == 3 and len(smtp_server.to(ben.source_address)) == 1
    assert Notice.objects.filter(kind="planned", state=Notice.State.SENT).count() == 3


def test_a_filter_picks_who_is_told(client, bob, project, users):
    ann, ben, cat = users
    ben.state = "done"
    ben.save()
    client.force_login(bob)
    said = act(client, project, action="notice_done", scope="filtered", show="done")
    assert said == ["'done' message queued for 1 mailbox."]
    assert list(Notice.objects.values_list("recipient", flat=True)) == [ben.source_address]


def test_an_outsider_queues_nothing(client, charlie, project, users):
    client.force_login(charlie)
    url = reverse("mailbox_bulk_action", args=[project.pk])
    response = client.post(url, {"action": "notice_done", "scope": "filtered"})
    assert response.status_code == 404 and not Notice.objects.exists()
