"""``copy_mailbox``: an existing project's tenants are never changed and the URL's login goes on
the mailbox; every failure is printed and makes the exit status 1; every source item is
counted; a pass a killed run left behind is taken over; planning retries are shown; a secret
the key cannot read is named as such. Real Dovecot servers throughout."""

import os
import re
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.utils import timezone

from mailboxes import engine, services
from mailboxes.management import passes
from mailboxes.models import CopiedItem, FolderJob, Mailbox, MailboxPass
from projects.fields import _fernet
from projects.models import Project
from tests.servers.worker import ROOT, database_url, wait_until

from .conftest import all_bytes, held_messages, run, unique_messages

# The progress line reads the pass from its own thread, hence its own connection.
pytestmark = pytest.mark.django_db(transaction=True)

SUMMARY = re.compile(r"copied=(\d+) skipped=(\d+) failed=(\d+) bytes=\d+ seconds=[\d.]+")


def url(user, server=None, port=None, scheme="imap", password=True):
    credentials = f"{user.name}:{user.password}" if password else user.name
    return f"{scheme}://{credentials}@127.0.0.1:{port or (server or user.server).port}"


def copy(*args):
    return run("copy_mailbox", *args, "--inline")


def summary(result) -> tuple[int, int, int]:
    return tuple(int(n) for n in SUMMARY.fullmatch(result.out.splitlines()[0]).groups())


# --- the project's tenants are never rewritten ------------------------------------------------


def test_project_with_other_servers_is_refused_and_left_alone(dovecot_a, dovecot_b, dovecot_user):
    source, target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
    created = run(
        "create_project", "Contoso", "--source", f"imap://127.0.0.1:{dovecot_a.port}",
        "--target", f"imap://127.0.0.1:{dovecot_b.port}",
    )  # fmt: skip
    project = Project.objects.get(pk=int(created.out))
    before = [
        (t.kind, t.endpoint, t.port, t.security, t.username)
        for t in (project.source, project.target)
    ]
    tls = f"imaps://{source.name}:{source.password}@127.0.0.1:{dovecot_a.tls_port}?insecure=1"

    refused = copy(tls, url(target), "--project", project.pk)

    assert refused.code == 2
    assert refused.message == (
        f"The source URL names imap 127.0.0.1:{dovecot_a.tls_port} (tls), but the source of "
        f"project {project.pk} (Contoso) is imap 127.0.0.1:{dovecot_a.port} (plain). "
        "copy_mailbox never changes a project's servers: edit the project, or leave out "
        "--project."
    )
    project.source.refresh_from_db()
    project.target.refresh_from_db()
    assert [
        (t.kind, t.endpoint, t.port, t.security, t.username)
        for t in (project.source, project.target)
    ] == before
    assert not Mailbox.objects.exists()


def test_with_project_the_url_login_goes_on_the_mailbox_and_a_later_delta_stays_exact(
    dovecot_a, dovecot_b, dovecot_user
):
    # The tenants' own account (the connection test's) is a third user: the bug was that the
    # URL's login replaced it, and a later pass of another mailbox copied the wrong account.
    admin_source, admin_target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
    created = run(
        "create_project", "Contoso", "--source", url(admin_source), "--target", url(admin_target)
    )
    project = Project.objects.get(pk=int(created.out))
    users = [(dovecot_user(dovecot_a), dovecot_user(dovecot_b)) for _ in range(2)]
    for i, (source, _) in enumerate(users):
        source.load("INBOX", unique_messages(f"user{i}", 3 + i))
    admin_source.load("INBOX", unique_messages("admin", 2))

    for source, target in users:
        done = copy(url(source), url(target), "--project", project.pk)
        assert done.code == 0, done.message

    project.source.refresh_from_db()
    assert (project.source.username, project.source.secret) == (
        admin_source.name,
        admin_source.password,
    )
    for source, target in users:
        mailbox = Mailbox.objects.get(source_address=source.name)
        assert (mailbox.source_login, mailbox.source_password) == (source.name, source.password)
        assert (mailbox.target_login, mailbox.target_password) == (target.name, target.password)
        source.load("INBOX", unique_messages(f"late-{source.name}", 1))
    delta = run("run_pass", project.pk, "--kind", "delta", "--wait", "--inline")
    assert delta.code == 0, delta.message
    for source, target in users:
        assert held_messages(dovecot_b, target.name, target.password) == held_messages(
            dovecot_a, source.name, source.password
        )
    assert held_messages(dovecot_b, admin_target.name, admin_target.password) == {}


def test_without_project_a_project_between_the_same_servers_is_reused_unchanged(
    dovecot_a, dovecot_b, dovecot_user
):
    users = [(dovecot_user(dovecot_a), dovecot_user(dovecot_b)) for _ in range(2)]
    for i, (source, _) in enumerate(users):
        source.load("INBOX", unique_messages(f"user{i}", 2 + i))
    for source, target in users:
        assert copy(url(source), url(target)).code == 0

    project = Project.objects.get()
    first_source, first_target = users[0]
    assert (project.source.username, project.target.username) == (
        first_source.name,
        first_target.name,
    )
    assert project.mailboxes.count() == 2
    for source, target in users:
        assert held_messages(dovecot_b, target.name, target.password) == held_messages(
            dovecot_a, source.name, source.password
        )


def test_a_mailbox_is_not_silently_sent_to_another_target(dovecot_a, dovecot_b, dovecot_user):
    source, target, other = (dovecot_user(s) for s in (dovecot_a, dovecot_b, dovecot_b))
    source.load("INBOX", unique_messages("one", 1))
    assert copy(url(source), url(target)).code == 0
    refused = copy(url(source), url(other))
    assert refused.code == 2
    assert f"the mailbox {source.name} is copied to {target.name}, not to {other.name}" in (
        refused.message
    )
    assert held_messages(dovecot_b, other.name, other.password) == {}


# --- every failure is printed, and the exit status says so -----------------------------------


def write_maildir(root, messages: list[bytes]) -> None:
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i, data in enumerate(messages):
        (root / "cur" / f"1700000000.M{i}P1Q{i}.test:2,S").write_bytes(data)


def big(i: int) -> bytes:
    return f"Subject: big {i}\r\n\r\n".encode() + b"x" * (1024 * 1024 + 10) + b"\r\n"


def test_refused_items_are_listed_with_folder_item_and_reason_and_exit_1(
    tmp_path, dovecot_a, dovecot_user, monkeypatch
):
    monkeypatch.setattr(passes, "FAILURES_SHOWN", 3)
    archive = tmp_path / "archive"
    small = [m.data for m in unique_messages("small", 4)]
    write_maildir(archive, small + [big(i) for i in range(5)])
    target = dovecot_user(dovecot_a)

    failed = copy(f"maildir://{archive}", url(target))

    assert failed.code == 1
    assert summary(failed) == (4, 0, 5)
    lines = failed.out.splitlines()[1:]
    assert len(lines) == 4 and lines[3] == "  … and 2 more"
    for line in lines[:3]:
        assert re.fullmatch(r"  folder INBOX, item 1700000000\.M\d+P1Q\d+\.test: .+", line), line
        assert "too large" in line.lower() or "size" in line.lower(), line
    assert failed.message == "5 item(s) could not be copied."
    assert sorted(held_messages(dovecot_a, target.name, target.password)["INBOX"]) == sorted(small)


def test_a_folder_the_target_cannot_create_counts_its_items_as_failed(
    dovecot_a, dovecot_b, dovecot_user
):
    # Dovecot "a" keeps Maildir++ folders as one directory ".x.y.z": three 100-character levels
    # make a name longer than a file name may be. Server "b" nests them and holds it fine.
    source, target = dovecot_user(dovecot_b), dovecot_user(dovecot_a)
    source.load("INBOX", unique_messages("inbox", 24))
    deep = ".".join(letter * 100 for letter in "xyz")
    source.load(deep, unique_messages("deep", 4))

    failed = copy(url(source), url(target))

    assert failed.code == 1
    assert summary(failed) == (24, 0, 4)
    (line,) = [line for line in failed.out.splitlines()[1:] if "(4 items)" in line]
    assert line.startswith(f"  folder {'/'.join(letter * 100 for letter in 'xyz')} (4 items): ")
    assert "Target server" in line
    assert "1 folder(s) failed" in failed.message
    assert all_bytes(held_messages(dovecot_a, target.name, target.password)) == sorted(
        held_messages(dovecot_b, source.name, source.password)["INBOX"]
    )


def test_a_refused_login_is_printed_as_the_mailboxs_failure(tmp_path, dovecot_a, dovecot_user):
    source = dovecot_user(dovecot_a)
    failed = copy(f"imap://{source.name}:wrong@127.0.0.1:{dovecot_a.port}", f"maildir://{tmp_path}")
    assert failed.code == 1
    assert summary(failed) == (0, 0, 0)
    assert failed.out.splitlines()[1].startswith(
        f"  mailbox: The source server refused the credentials: IMAP login refused for "
        f"{source.name} on 127.0.0.1:{dovecot_a.port}: "
    )
    assert ":wrong" not in failed.out + failed.err
    assert "100%" not in failed.err and "  —% 0/0 items 0.0 MB Failed" in failed.err


# --- a pass left behind ---------------------------------------------------------------------


def mailbox_between(source, target):
    done = copy(url(source), url(target), "--pass", "prestage", "--older-than", "36500")
    assert done.code == 0, done.message
    return Mailbox.objects.get(source_address=source.name)


def abandoned_pass(mailbox) -> MailboxPass:
    """A pass planned by a process that then vanished: its jobs queued for nobody."""
    scheduler = engine.InlineScheduler("gone")
    (mailbox_pass,) = services.start_passes([mailbox], "full", scheduler=scheduler)
    engine.plan_pass(mailbox_pass.pk, scheduler)
    mailbox_pass.refresh_from_db()
    assert mailbox_pass.state == MailboxPass.State.RUNNING
    return mailbox_pass


def test_a_pass_whose_leases_expired_is_taken_over_and_finished(dovecot_a, dovecot_b, dovecot_user):
    source, target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
    source.load("INBOX", unique_messages("inbox", 5))
    source.load("Archive", unique_messages("archive", 3))
    mailbox = mailbox_between(source, target)
    mailbox_pass = abandoned_pass(mailbox)
    past = timezone.now() - timedelta(seconds=1)
    jobs = mailbox_pass.folder_jobs.filter(state__in=engine.ACTIVE_JOB_STATES)
    jobs.filter(source_path="INBOX").update(
        state=FolderJob.State.RUNNING, lease_owner="celery@elsewhere:4242"
    )
    jobs.update(lease_expires_at=past)

    done = copy(url(source), url(target))

    assert done.code == 0, done.message
    assert "Taking over the full pass of" in done.err
    assert summary(done) == (8, 0, 0)
    assert MailboxPass.objects.filter(state=MailboxPass.State.DONE).count() == 2
    assert (
        held_messages(dovecot_b, target.name, target.password)["INBOX"]
        == held_messages(dovecot_a, source.name, source.password)["INBOX"]
    )


def test_a_pass_a_live_worker_holds_is_refused_saying_by_whom_and_what_to_do(
    dovecot_a, dovecot_b, dovecot_user
):
    source, target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
    source.load("INBOX", unique_messages("inbox", 2))
    mailbox = mailbox_between(source, target)
    mailbox_pass = abandoned_pass(mailbox)
    until = timezone.now() + timedelta(seconds=60)
    mailbox_pass.folder_jobs.filter(source_path="INBOX").update(
        state=FolderJob.State.RUNNING, lease_owner="celery@elsewhere:4242", lease_expires_at=until
    )

    refused = copy(url(source), url(target))

    assert refused.code == 1
    assert refused.message == (
        f"A full pass of {source.name} is already under way: celery@elsewhere:4242 copies "
        f"folder INBOX until {timezone.localtime(until):%H:%M:%S}. Wait for it to finish (the "
        "project page shows it) or pause it there; if that process has died, run this again "
        f"after {timezone.localtime(until):%H:%M:%S} to take the pass over."
    )
    assert MailboxPass.objects.count() == 2
    mailbox_pass.refresh_from_db()
    assert mailbox_pass.state == MailboxPass.State.RUNNING


def test_a_killed_inline_run_is_taken_over_at_once(tmp_path, dovecot_a, dovecot_b, dovecot_user):
    source, target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
    source.load("INBOX", unique_messages("inbox", 150))
    source.load("Archive", unique_messages("archive", 30))
    urls = [url(source), url(target)]
    env = {**os.environ, "DATABASE_URL": database_url(), "COPY_BATCH_ITEMS": "3"}
    killed = subprocess.Popen(
        [sys.executable, "manage.py", "copy_mailbox", *urls, "--inline"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        # In INBOX: Archive (30 items, copied first) is then done and INBOX is certainly held.
        wait_until(lambda: CopiedItem.objects.filter(source_path="INBOX").count() >= 20, 60)
    finally:
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait(10)
    assert CopiedItem.objects.count() < 180
    running = FolderJob.objects.filter(state=FolderJob.State.RUNNING).first()
    assert running.lease_owner.endswith(f":{killed.pid}")
    assert running.lease_expires_at > timezone.now()  # the lease alone would still block

    started = time.monotonic()
    done = copy(*urls)

    assert done.code == 0, done.message
    assert time.monotonic() - started < 60
    assert "Taking over the full pass" in done.err
    copied, skipped, failed = summary(done)
    assert copied + skipped == 180 and failed == 0
    source_holds = held_messages(dovecot_a, source.name, source.password)
    target_holds = held_messages(dovecot_b, target.name, target.password)
    assert all_bytes(target_holds) == all_bytes(source_holds)
    assert CopiedItem.objects.count() == 180


# --- what the progress line and the end say ---------------------------------------------------


def test_planning_retries_are_shown_on_the_progress_line(
    tmp_path, dovecot_a, dovecot_user, settings, refused_port
):
    settings.COPY_RETRY_BASE_SECONDS = 1.0
    settings.COPY_MAX_RETRIES = 1
    source = dovecot_user(dovecot_a)
    nowhere = refused_port

    failed = copy(url(source), f"imap://ann:pw@127.0.0.1:{nowhere}")

    assert failed.code == 1
    assert re.search(
        rf"Target server: Cannot connect to IMAP server 127\.0\.0\.1:{nowhere}: .*; "
        r"retry 1 of 1 in 1 s",
        failed.err,
    ), failed.err
    assert "gave up after 2 attempts" in failed.message


def test_progress_line_names_a_planning_retry_instead_of_planning():
    mailbox_pass = MailboxPass(state=MailboxPass.State.PLANNING, error="Source server: x; retry 2")
    assert passes.progress_line([mailbox_pass]).endswith(
        "  —% 0/0 items 0.0 MB Source server: x; retry 2"
    )
    mailbox_pass.error = ""
    assert passes.progress_line([mailbox_pass]).endswith("Planning")


def test_a_secret_saved_under_another_key_is_named_as_such(
    tmp_path, dovecot_a, dovecot_b, dovecot_user, settings
):
    source, target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
    source.load("INBOX", unique_messages("inbox", 2))
    assert copy(url(source), url(target)).code == 0
    settings.FIELD_ENCRYPTION_KEY = Fernet.generate_key().decode()
    _fernet.cache_clear()

    # The target URL gives no password: the mailbox's stored one is needed and unreadable.
    failed = copy(url(source), url(target, password=False))

    assert failed.code == 1
    reason = (
        f"The target password of the mailbox {target.name} cannot be decrypted: "
        "FIELD_ENCRYPTION_KEY is not the key it was saved with."
    )
    assert reason in failed.out
    assert reason in failed.message
    assert "refused the credentials" not in failed.out
