"""The invitation mail: queued after the commit, never sent in the request; the worker's task
mails the link once, and nothing for a link replaced, used or without a mail server."""

import re

import pytest
from django.urls import reverse

from projects.models import Invitation, Role
from projects.tasks import send_invitation
from tests.servers.worker import purge_filesystem_broker, queued_tasks

pytestmark = pytest.mark.django_db


@pytest.fixture
def mail_server(settings):
    settings.EMAIL_HOST = "smtp.example"  # the locmem backend stands in for it
    settings.SITE_URL = "https://mailferry.example"


def test_the_request_only_queues_the_mail(
    client, project, alice, mailoutbox, mail_server, django_capture_on_commit_callbacks
):
    client.force_login(alice)
    purge_filesystem_broker()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("team", args=[project.pk]), {"email": "d@example.org", "role": "viewer"}
        )
    assert mailoutbox == []
    # The worker mails it: the invitation and its token wait in the broker, nothing else.
    [(name, (invitation_id, token), _)] = queued_tasks()
    assert name == "projects.tasks.send_invitation"
    assert Invitation.objects.get(pk=invitation_id).email == "d@example.org" and token


def test_the_worker_mails_the_link_once(project, alice, mailoutbox, mail_server):
    invitation, token = Invitation.send(project, "dora@example.org", Role.OPERATOR, alice)
    send_invitation(invitation.pk, token)
    send_invitation(invitation.pk, token)
    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.to == ["dora@example.org"] and "Contoso" in message.subject
    link = re.search(r"https://mailferry.example/invite/\S+/", message.body).group(0)
    assert link == "https://mailferry.example" + reverse("invitation_accept", args=[token])
    invitation.refresh_from_db()
    assert invitation.mailed_at is not None and invitation.mail_error == ""


def test_a_replaced_link_is_not_mailed(project, alice, mailoutbox, mail_server):
    old, old_token = Invitation.send(project, "dora@example.org", Role.OPERATOR, alice)
    new, new_token = Invitation.send(project, "dora@example.org", Role.OPERATOR, alice)
    send_invitation(old.pk, old_token)
    send_invitation(new.pk, old_token)
    assert mailoutbox == []


def test_without_a_mail_server_the_page_says_so(client, project, alice, mailoutbox, settings):
    settings.EMAIL_HOST = ""
    invitation, token = Invitation.send(project, "dora@example.org", Role.OPERATOR, alice)
    send_invitation(invitation.pk, token)
    assert mailoutbox == []
    client.force_login(alice)
    page = client.get(reverse("team", args=[project.pk])).content.decode()
    assert "not mailed: No mail server is set" in page
