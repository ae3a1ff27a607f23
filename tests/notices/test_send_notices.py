"""End-user messages through a real SMTP server: one per event and mailbox, each with its own
working progress link; a refused recipient fails and is sent again later."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from notices.models import Notice
from notices.tasks import send_notices
from tests.servers.worker import purge_filesystem_broker, queued_tasks

from .conftest import link_in


def run(*args):
    out = StringIO()
    try:
        call_command("send_notices", *map(str, args), stdout=out)
    except CommandError as exc:
        return out.getvalue(), str(exc)
    return out.getvalue(), None


@pytest.mark.django_db
def test_each_user_gets_one_message_with_their_own_link(
    client, settings, smtp_server, project, users
):
    settings.SITE_URL = "http://testserver"
    out, error = run(project.pk, "--template", "copied")
    assert error is None
    assert out.splitlines() == [f"{m.source_address} sent" for m in users]
    for mailbox in users:
        (message,) = smtp_server.to(mailbox.source_address)
        html = message.get_body(("html",)).get_content()
        assert mailbox.target_address in html
        # A display name is text, never markup.
        assert "<b>" not in html
        page = client.get(link_in(message))
        assert page.status_code == 200
        body = page.content.decode()
        assert mailbox.source_address in body or mailbox.target_address in body
        assert all(o.source_address not in body for o in users if o != mailbox)

    out, error = run(project.pk, "--template", "copied")
    assert error is None and all("skipped (already sent at" in line for line in out.splitlines())
    assert len(smtp_server.messages) == len(users)

    out, error = run(
        project.pk, "--template", "copied", "--mailbox", users[0].source_address, "--again"
    )
    assert out.strip() == f"{users[0].source_address} sent"
    assert len(smtp_server.to(users[0].source_address)) == 2


@pytest.mark.django_db
def test_refused_recipient_fails_then_is_sent_again(smtp_server, project, users):
    refused = users[1].source_address
    smtp_server.refuse.add(refused)
    out, error = run(project.pk, "--template", "planned")
    assert error == "1 message(s) failed."
    assert f"{refused} failed: 550" in out
    assert len(smtp_server.messages) == 2
    notice = Notice.objects.get(mailbox=users[1])
    assert notice.state == Notice.State.FAILED and "550" in notice.error

    smtp_server.refuse.clear()
    send_notices.apply(args=[[notice.pk]])
    notice.refresh_from_db()
    assert notice.state == Notice.State.SENT
    assert len(smtp_server.to(refused)) == 1


@pytest.mark.django_db
def test_a_busy_server_is_tried_again_until_it_takes_the_message(
    smtp_server, eager_tasks, project, users
):
    from notices.services import queue_for

    ((_, notice, _),) = queue_for([users[0]], "copied")
    smtp_server.busy = 2
    # Eagerly, each retry runs at once (the worker waits 1, 2, 4... seconds, with jitter).
    send_notices.apply(args=[[notice.pk]])
    notice.refresh_from_db()
    assert notice.state == Notice.State.SENT and notice.attempts == 3
    assert len(smtp_server.to(users[0].source_address)) == 1

    ((_, notice, _),) = queue_for([users[1]], "copied")
    smtp_server.busy = 100  # never takes it: six retries, then the failure stays on record
    send_notices.apply(args=[[notice.pk]])
    notice.refresh_from_db()
    assert notice.state == Notice.State.FAILED and notice.attempts == 7
    assert notice.error.startswith("451")


@pytest.mark.django_db
def test_outbox_keeps_mail_without_a_server(settings, project, users):
    settings.EMAIL_HOST = ""
    out, error = run(project.pk, "--template", "done")
    assert error is None
    assert out.splitlines() == [f"{m.source_address} kept in the outbox" for m in users]
    kept = Notice.objects.filter(state=Notice.State.KEPT)
    assert sorted(n.recipient for n in kept) == sorted(m.source_address for m in users)
    assert all(n.text and n.html for n in kept)


@pytest.mark.django_db
def test_outbox_page_shows_a_failure_and_sends_it_again(
    client, bob, smtp_server, project, users, django_capture_on_commit_callbacks
):
    refused = users[2].source_address
    smtp_server.refuse.add(refused)
    client.force_login(bob)
    purge_filesystem_broker()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("notices_send", args=[project.pk]),
            {"template": "copied", "addresses": refused},
        )
    assert response.status_code == 302
    (notice,) = Notice.objects.filter(mailbox=users[2])
    # What the worker does with the queued ids.
    assert queued_tasks() == [("notices.tasks.send_notices", [[notice.pk]], {})]
    send_notices.apply(args=[[notice.pk]])
    page = client.get(reverse("notices_outbox", args=[project.pk])).content.decode()
    assert refused in page and "Failed: 550" in page

    smtp_server.refuse.clear()
    with django_capture_on_commit_callbacks():
        client.post(reverse("notice_resend", args=[project.pk, notice.pk]))
    send_notices.apply(args=[[notice.pk]])
    page = client.get(reverse("notices_outbox", args=[project.pk])).content.decode()
    assert "Failed" not in page and len(smtp_server.to(refused)) == 1


@pytest.mark.django_db
def test_template_edit_and_preview_escapes_the_name(client, bob, project, users):
    client.force_login(bob)
    url = reverse("notice_template", args=[project.pk, "planned"])
    client.post(url, {"subject": "Move {{ name }}", "body": "Hi **{{ name }}**, {{ nope }}"})
    page = client.get(url).content.decode()
    assert "Hi <strong>Ann Archer</strong>, {{ nope }}" in page
    project.mailboxes.exclude(pk=users[1].pk).delete()
    page = client.get(url).content.decode()
    assert "Ben &lt;b&gt;Bold&lt;/b&gt;" in page and "<b>Bold</b>" not in page


@pytest.mark.django_db
def test_settings_refuse_a_loopback_webhook_and_never_show_it(client, bob, settings, project):
    from notices.models import NoticeSettings

    client.force_login(bob)
    url = reverse("notices_outbox", args=[project.pk])
    settings.ALLOW_LOCAL_ENDPOINTS = False
    form = {"email_members": "on", "auto_copied": "on", "steps": "1. Sign in"}
    page = client.post(url, {**form, "webhook_url": "http://127.0.0.1:9/hook"})
    assert page.status_code == 200 and "loopback" in page.content.decode()
    assert not NoticeSettings.of(project).webhook_url

    settings.ALLOW_LOCAL_ENDPOINTS = True
    client.post(url, {**form, "webhook_url": "http://127.0.0.1:9/secret-hook"})
    choices = NoticeSettings.of(project)
    assert choices.webhook_url == "http://127.0.0.1:9/secret-hook" and choices.auto_copied
    assert "secret-hook" not in client.get(url).content.decode()


@pytest.mark.django_db
class TestWithoutACutoverDate:
    """A message naming the cutover date is not sent while none is set, from the command line,
    the notifications page or the project page's bulk action; one that does not name it is."""

    @pytest.fixture
    def undated(self, project, users):
        project.planned_cutover = None
        project.save(update_fields=["planned_cutover"])
        return project

    def test_the_command_refuses_and_queues_nothing(self, undated, smtp_server):
        out, error = run(undated.pk, "--template", "planned")
        assert "names the cutover date, which is not set yet" in error
        assert out == "" and not Notice.objects.exists() and smtp_server.messages == []

    def test_the_pages_refuse_and_queue_nothing(self, client, bob, undated):
        client.force_login(bob)
        send = reverse("notices_send", args=[undated.pk])
        page = client.post(send, {"template": "copied"}, follow=True).content.decode()
        assert "names the cutover date, which is not set yet" in page
        bulk = reverse("mailbox_bulk_action", args=[undated.pk])
        data = {"action": "notice_planned", "scope": "filtered"}
        page = client.post(bulk, data, follow=True).content.decode()
        assert "names the cutover date, which is not set yet" in page
        assert not Notice.objects.exists()

    def test_a_template_without_the_date_is_sent(self, client, bob, undated, users):
        client.force_login(bob)
        template = reverse("notice_template", args=[undated.pk, "planned"])
        client.post(template, {"subject": "Your move", "body": "Hi {{ name }}, soon."})
        client.post(reverse("notices_send", args=[undated.pk]), {"template": "planned"})
        assert sorted(Notice.objects.values_list("recipient", flat=True)) == sorted(
            user.source_address for user in users
        )
