"""Commands (``run_pass``, ``create_project``, ``discover``, ``verify``) are in the log as the
command line's."""

import io
import mailbox as maildirs
from email.message import EmailMessage

import pytest
from django.core.management import CommandError, call_command

from audit.log import Action
from mailboxes.models import Mailbox
from projects.models import Project, Tenant

from .conftest import entries

# The copy runs in this process, whose progress thread reads with its own connection.
pytestmark = pytest.mark.django_db(transaction=True)


def maildir_project(tmp_path, names):
    source, target = tmp_path / "source", tmp_path / "target"
    project = Project.objects.create(
        client_name="Contoso",
        source=Tenant.objects.create(kind="maildir", endpoint=str(source)),
        target=Tenant.objects.create(kind="maildir", endpoint=str(target)),
    )
    fill(project, source, target, names)
    return project


def fill(project, source, target, names):
    """Each user's own maildir holding one message naming them, and their mailbox."""
    source.mkdir(), target.mkdir()
    for name in names:
        address = f"{name}@contoso.example"
        box = maildirs.Maildir(source / address, create=True)
        note = EmailMessage()
        note["Subject"], note["From"] = f"For {name} only", address
        note.set_content(f"{name}'s own mail")
        box.add(note)
        project.mailboxes.create(source_address=address, target_address=address)


def test_a_pass_started_from_the_command_line(tmp_path):
    project = maildir_project(tmp_path, ("ann", "ben", "cleo"))
    call_command("run_pass", project.pk, kind="full", inline=True, stdout=None, stderr=None)
    assert entries(project) == [
        ("command line", Action.PASS_STARTED, "Started a full pass for 3 mailbox(es)", None)
    ]
    assert set(project.mailboxes.values_list("state", flat=True)) == {Mailbox.State.DONE}
    for name in ("ann", "ben", "cleo"):
        copied = maildirs.Maildir(tmp_path / "target" / f"{name}@contoso.example", create=False)
        assert [m["Subject"] for m in copied] == [f"For {name} only"]


def test_created_discovered_and_verified_from_the_command_line(tmp_path, alice):
    source, target = tmp_path / "source", tmp_path / "target"
    out = io.StringIO()
    call_command(
        "create_project",
        "Fabrikam",
        source=f"maildir://{source}",
        target=f"maildir://{target}",
        member=["alice"],
        stdout=out,
    )
    project = Project.objects.get(pk=int(out.getvalue()))
    fill(project, source, target, ("ann", "ben", "cleo"))
    call_command("discover", project.pk, inline=True, stdout=out, stderr=out)
    # Nothing was copied yet: the verification runs, finds every message missing, says so.
    with pytest.raises(CommandError, match=r"3 of 3 mailbox\(es\) are not verified"):
        call_command("verify", project.pk, inline=True, stdout=out, stderr=out)
    assert entries(project) == [
        ("command line", Action.PROJECT_CREATED, "Created the project Fabrikam", None),
        ("command line", Action.DISCOVERY_STARTED, "Started discovering 3 mailbox(es)", None),
        ("command line", Action.VERIFICATION_STARTED, "Started verifying 3 mailbox(es)", None),
    ]


def test_logins_tested_and_a_mailbox_copied_from_the_command_line(tmp_path):
    project = maildir_project(tmp_path, ("ann", "ben", "cleo"))
    out = io.StringIO()
    call_command("test_logins", project.pk, stdout=out)
    assert out.getvalue().count(" ok ") == 3
    source = tmp_path / "source" / "dora@contoso.example"
    maildirs.Maildir(source, create=True).add(b"Subject: For dora only\n\ndora's own mail\n")
    target = tmp_path / "target" / "dora@contoso.example"
    call_command(
        "copy_mailbox",
        f"maildir://{source}",
        f"maildir://{target}",
        inline=True,
        stdout=out,
        stderr=out,
    )
    assert entries(project) == [
        ("command line", Action.LOGINS_TESTED, "Tested the logins of 3 mailbox(es)", None)
    ]
    (copied,) = Mailbox.objects.exclude(project=project)
    assert entries(copied.project) == [
        ("command line", Action.PROJECT_CREATED, f"Created the project {copied.project}", None),
        ("command line", Action.PASS_STARTED, f"Started a full pass for {copied}", None),
    ]
    assert [m["Subject"] for m in maildirs.Maildir(target, create=False)] == ["For dora only"]
