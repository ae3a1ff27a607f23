"""Discovery with an EWS source (the EWS test server) into IMAP: figures as the server holds
them, and the folders IMAP cannot hold."""

import pytest

from mailboxes import discovery
from mailboxes.connectors.base import Endpoint
from mailboxes.connectors.roles import kind_for_folder_class
from projects.models import Project
from tests.engine.conftest import tenant_for
from tests.graph.conftest import ALICE, ews_source  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db


def test_ews_source_into_imap(ews_source, dovecot_b, dovecot_user):  # noqa: F811
    source = tenant_for(Endpoint("ews", ews_source.url, username=ALICE, secret="secret"))
    project = Project.objects.create(
        client_name="Adatum", source=source, target=tenant_for(dovecot_b.endpoint())
    )
    user = dovecot_user(dovecot_b)
    mailbox = project.mailboxes.create(
        source_address=ALICE,
        target_address=f"{user.name}@new.example",
        target_login=user.name,
        target_password=user.password,
    )
    discovery.discover_mailbox(mailbox)
    state = ews_source.state
    listed = {
        f.id
        for f in state.folders.values()
        if f.mailbox == ALICE and kind_for_folder_class(f.folder_class)
    }
    items = [i for i in state.items.values() if i.folder_id in listed]
    report = mailbox.discovery
    assert (report["items"], report["bytes"]) == (len(items), sum(i.size for i in items))
    assert report["largest"][0]["size"] == max(i.size for i in items)
    assert report["oldest"] and report["newest"]
    cannot = sorted(p["text"].split(" cannot")[0] for p in report["problems"])
    assert cannot == ["Folder Calendar", "Folder Contacts", "Folder Notes", "Folder Tasks"]
    assert not mailbox.discovery_blocking
