"""``run_pass`` from the command line: the pass is in the log as the command line's."""

import mailbox as maildirs
from email.message import EmailMessage

import pytest
from django.core.management import call_command

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
    source.mkdir(), target.mkdir()
    for name in names:
        address = f"{name}@contoso.example"
        box = maildirs.Maildir(source / address, create=True)
        note = EmailMessage()
        note["Subject"], note["From"] = f"For {name} only", address
        note.set_content(f"{name}'s own mail")
        box.add(note)
        project.mailboxes.create(source_address=address, target_address=address)
    return project


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
