"""Discovery with maildir on either side: file sizes and mtimes as the disk holds them, and a
folder path too long for one Maildir++ directory name."""

import os
from datetime import UTC, datetime

import pytest

from mailboxes import discovery
from mailboxes.connectors.base import Endpoint
from projects.models import Project
from tests.corpus import corpus_messages
from tests.engine.conftest import tenant_for

pytestmark = pytest.mark.django_db


def test_imap_source_into_maildir(tmp_path, dovecot_b, dovecot_user):
    """Dovecot "b" nests folders as directories, so it holds a path whose Maildir++ name
    (".A….B…") would pass 255 bytes; the maildir target says so before copying."""
    user = dovecot_user(dovecot_b)
    long_name = f"{'A' * 200}.{'B' * 100}"
    user.load("INBOX", corpus_messages()[:3])
    user.load(long_name, corpus_messages()[3:5])
    project = Project.objects.create(
        client_name="Proseware",
        source=tenant_for(dovecot_b.endpoint()),
        target=tenant_for(Endpoint(kind="maildir", host=str(tmp_path))),
    )
    mailbox = project.mailboxes.create(
        source_address=f"{user.name}@old.example",
        target_address="ann",
        source_login=user.name,
        source_password=user.password,
    )
    discovery.discover_mailbox(mailbox)
    holdings = user.holdings()
    report = mailbox.discovery
    assert (report["items"], report["bytes"]) == (holdings.messages, holdings.size)
    (problem,) = report["problems"]
    assert not problem["blocking"]
    assert problem["text"].startswith(f"Folder {'A' * 200}/{'B' * 100} cannot be created")
    assert "longer than 255 bytes" in problem["text"]


def test_maildir_source_figures_are_the_files(tmp_path, dovecot_a, dovecot_user):
    user = dovecot_user(dovecot_a)
    user.load("INBOX", corpus_messages()[:4])
    user.load("Archive/2019", corpus_messages()[4:9])
    project = Project.objects.create(
        client_name="Fourth Coffee",
        source=tenant_for(Endpoint(kind="maildir", host=str(user.maildir))),
        target=tenant_for(dovecot_a.endpoint()),
    )
    target = dovecot_user(dovecot_a)
    mailbox = project.mailboxes.create(
        source_address="ann@old.example",
        target_address=f"{target.name}@new.example",
        target_login=target.name,
        target_password=target.password,
    )
    discovery.discover_mailbox(mailbox)
    files = [
        entry
        for folder in (user.maildir, *user.maildir.glob(".*"))
        for sub in ("cur", "new")
        for entry in os.scandir(folder / sub)
    ]
    report = mailbox.discovery
    assert report["items"] == len(files) == 9
    assert report["bytes"] == sum(entry.stat().st_size for entry in files)
    mtimes = [datetime.fromtimestamp(entry.stat().st_mtime, UTC) for entry in files]
    assert datetime.fromisoformat(report["oldest"]) == min(mtimes)
    assert datetime.fromisoformat(report["newest"]) == max(mtimes)
    assert report["problems"] == []
