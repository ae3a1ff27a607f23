"""A source and a target EWS server, each holding mailboxes, and connectors opened on them."""

from datetime import UTC, datetime, timedelta

import pytest

from mailboxes.connectors.base import Endpoint
from mailboxes.connectors.ews import EwsConnector
from tests.corpus import corpus_mime
from tests.servers.ews_server import start_ews_server

PUBLIC_STRINGS = "{00020329-0000-0000-c000-000000000046}"
CATEGORIES = f"name:{PUBLIC_STRINGS.lower()}:Keywords"

ALICE = "alice@src.test"
BOB = "bob@dst.test"


def endpoint(server, user, password="secret", **fields) -> Endpoint:
    fields.setdefault("kind", "ews")
    return Endpoint(host=server.url, username=user, secret=password, **fields)


@pytest.fixture
def source():
    """Alice's mailbox: mail in Inbox and a subfolder, one item of every other kind."""
    server = start_ews_server()
    server.add_user(ALICE)
    state = server.state
    inbox = state.folder(ALICE, "Inbox")
    long_ago = datetime(2020, 3, 1, 9, 30, tzinfo=UTC)
    for n, mime in enumerate(corpus_mime(6)):
        state.add_item(inbox, mime, is_read=n % 2 == 0, received=long_ago + timedelta(days=n))
    projects = state.add_folder(ALICE, "Inbox", "Projects", "IPF.Note")
    state.add_item(projects, corpus_mime(7)[6], received=long_ago)
    state.add_item(
        state.folder(ALICE, "Calendar"),
        b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:Standup\r\nRRULE:FREQ=DAILY\r\n"
        b"ATTENDEE:mailto:bob@src.test\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        "IPM.Appointment",
        extended={CATEGORIES: "Team"},
    )
    state.add_item(
        state.folder(ALICE, "Contacts"), b"BEGIN:VCARD\r\nFN:Carol\r\nEND:VCARD\r\n", "IPM.Contact"
    )
    state.add_item(state.folder(ALICE, "Tasks"), b"Task: file the report\r\n", "IPM.Task")
    state.add_item(state.folder(ALICE, "Notes"), b"Note: buy milk\r\n", "IPM.StickyNote")
    state.add_folder(ALICE, "", "Team Calendar", "IPF.Appointment")
    state.add_folder(ALICE, "", "Settings", "IPF.Configuration")
    yield server
    server.stop()


@pytest.fixture
def target():
    server = start_ews_server()
    server.add_user(BOB)
    yield server
    server.stop()


@pytest.fixture
def source_connector(source):
    with EwsConnector(endpoint(source, ALICE), ALICE) as connector:
        yield connector


@pytest.fixture
def target_connector(target):
    with EwsConnector(endpoint(target, BOB), BOB) as connector:
        yield connector
