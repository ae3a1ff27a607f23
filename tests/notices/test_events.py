"""Events tell end users (when the project opted in) and consultants, by e-mail and by a JSON
webhook POST to a real HTTP server on loopback."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.urls import reverse

from mailboxes import engine
from mailboxes.models import MailboxPass
from notices.models import Notice, NoticeSettings


@pytest.fixture
def webhook():
    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers["Content-Length"])
            received.append((self.path, self.headers["Content-Type"], self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", received
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.django_db(transaction=True)
def test_pass_done_tells_user_consultants_and_webhook_once(
    smtp_server, webhook, eager_tasks, project, mailbox
):
    url, received = webhook
    NoticeSettings.objects.create(project=project, auto_copied=True, webhook_url=url)
    mailbox_pass = MailboxPass.objects.create(mailbox=mailbox, kind="full")
    engine._finish_pass(mailbox_pass)
    engine._finish_pass(mailbox_pass)  # a rerun mails nobody twice

    (message,) = smtp_server.to(mailbox.source_address)
    assert "copied" in message["Subject"]
    for member in project.members.all():
        (note,) = smtp_server.to(member.email)
        assert "finished" in note["Subject"]
    ((path, content_type, body),) = received
    assert path == "/hook" and content_type == "application/json"
    assert "full pass of" in json.loads(body)["text"]
    logged = project.audit_entries.order_by("pk").values_list("actor_label", "action", "detail")
    consultants = len(project.members.all()) + 1  # each member's e-mail and the webhook
    assert [entry[:2] for entry in logged] == [("worker", "notice_sent")] * 2
    assert logged[0][2] == "Queued the 'copied' message for 1 mailbox(es) on its event"
    assert logged[1][2].startswith(f"Told consultants ({consultants} message(s)): ")


@pytest.mark.django_db(transaction=True)
def test_failed_mailbox_reaches_the_webhook_with_its_reason(
    webhook, eager_tasks, settings, project, mailbox
):
    url, received = webhook
    NoticeSettings.objects.create(project=project, email_members=False, webhook_url=url)
    mailbox_pass = MailboxPass.objects.create(mailbox=mailbox, kind="full")
    engine.fail_mailbox(mailbox_pass, "wrong password for ann")
    ((_, _, body),) = received
    assert "wrong password for ann" in json.loads(body)["text"]


@pytest.mark.django_db(transaction=True)
def test_webhook_on_loopback_is_refused_without_allow_local(
    webhook, eager_tasks, settings, project, mailbox
):
    settings.ALLOW_LOCAL_ENDPOINTS = False
    url, received = webhook
    NoticeSettings.objects.create(project=project, email_members=False, webhook_url=url)
    engine.fail_mailbox(MailboxPass.objects.create(mailbox=mailbox, kind="full"), "boom")
    assert received == []
    (notice,) = Notice.objects.filter(channel="webhook")
    assert notice.state == Notice.State.FAILED and "loopback" in notice.error


@pytest.mark.django_db(transaction=True)
def test_cutover_date_set_mails_planned_when_opted_in(smtp_server, eager_tasks, project, mailbox):
    from django.utils import timezone

    NoticeSettings.objects.create(project=project, auto_planned=True)
    project.planned_cutover = timezone.now() + timezone.timedelta(days=7)
    project.save()
    project.save()
    (message,) = smtp_server.to(mailbox.source_address)
    assert "moves on" in message["Subject"]


@pytest.mark.django_db(transaction=True)
def test_closing_the_project_mails_done_once_when_opted_in(
    smtp_server, eager_tasks, project, users
):
    NoticeSettings.objects.create(project=project, auto_done=True)
    project.state = "closed"
    project.save()
    project.save()
    for mailbox in users:
        (message,) = smtp_server.to(mailbox.source_address)
        assert "is done" in message["Subject"] and mailbox.target_address in message["Subject"]


@pytest.mark.django_db(transaction=True)
def test_blocking_discovery_and_dns_complete_tell_consultants_once(
    smtp_server, eager_tasks, project, users
):
    from django.utils import timezone

    from notices.events import discovery_done, steps_ticked

    ann, ben, cat = users
    problems = {"problems": [{"blocking": True, "text": "Archive is over the 100 GB limit"}]}
    ben.discovery, ben.discovery_blocking, ben.discovered_at = problems, True, timezone.now()
    ben.save()
    discovery_done([m.pk for m in users])
    discovery_done([m.pk for m in users])
    for member in project.members.all():
        (note,) = smtp_server.to(member.email)
        assert str(ben) in note["Subject"] and "100 GB limit" in note.get_content()
    project.cutover_steps.filter(kind="dns").delete()
    mx = project.cutover_steps.create(kind="dns", title="MX", done_at=timezone.now())
    spf = project.cutover_steps.create(kind="dns", title="SPF")
    steps_ticked(project, [mx])  # SPF is still open: DNS is not complete
    assert len(smtp_server.messages) == 2
    spf.done_at = timezone.now()
    spf.save()
    steps_ticked(project, [spf])
    steps_ticked(project, [spf])
    complete = [m for _, m in smtp_server.messages if "DNS is complete" in m["Subject"]]
    assert len(complete) == project.members.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_silent_worker_is_told_once_per_silence(
    smtp_server, eager_tasks, webhook, settings, project, users
):
    from datetime import timedelta

    from django.utils import timezone

    from mailboxes.models import WorkerHeartbeat
    from notices.tasks import check_workers

    url, received = webhook
    NoticeSettings.objects.create(project=project, email_members=False, webhook_url=url)
    users[0].state = "copying"
    users[0].save()
    check_workers.apply()  # no worker has ever answered
    heard = timezone.now() - timedelta(seconds=settings.WORKER_SILENT_SECONDS + 5)
    WorkerHeartbeat.objects.create(hostname="copies@a", seen_at=heard)
    check_workers.apply()
    check_workers.apply()
    texts = [json.loads(body)["text"] for _, _, body in received]
    assert len(texts) == 2
    assert "last heard: never" in texts[0] and "1 mailbox(es)" in texts[0]
    assert f"last heard: {heard:%Y-%m-%d %H:%M:%S} UTC" in texts[1]
    WorkerHeartbeat.beat("copies@a")
    check_workers.apply()
    assert len(received) == 2


@pytest.mark.django_db(transaction=True)
def test_a_consultant_who_chose_quiet_gets_no_mail_from_that_project(
    client, alice, bob, smtp_server, eager_tasks, project, mailbox
):
    client.force_login(bob)
    url = reverse("notices_outbox", args=[project.pk])
    form = {"email_members": "on", "quiet_members": [bob.pk], "steps": "1. Sign in"}
    assert client.post(url, form).status_code == 302
    assert list(NoticeSettings.of(project).quiet_members.all()) == [bob]
    engine.fail_mailbox(MailboxPass.objects.create(mailbox=mailbox, kind="full"), "boom")
    (note,) = smtp_server.to(alice.email)
    assert "boom" in note.get_content()
    assert smtp_server.to(bob.email) == []
