"""The Gmail connector on its own against the loopback Gmail API server: what it lists and
hands over as labels change under it."""

import pytest

from mailboxes.connectors.gmail import GmailConnector

from .conftest import google_endpoint
from .seed import USERS, seed

# Each call spends its quota units in the mailbox's budget, kept in the database here.
pytestmark = pytest.mark.django_db


def test_a_label_made_after_the_folders_were_read_still_shares_one_download(gmail, tmp_path):
    boxes = seed(gmail, per_user=3)
    endpoint = google_endpoint(gmail, gmail.key, tmp_path / "spool")
    for user in USERS:
        with GmailConnector(endpoint, user) as connector:
            inbox = next(f for f in connector.folders() if f.native_id == "INBOX")
            late = boxes[user].add_message(
                f"Subject: {user}\r\n\r\nx\r\n".encode(), ["INBOX", "New"]
            )
            (item,) = connector.fetch(inbox, [late.id])
            new = next(f for f in connector.folders() if f.path == ("New",))
            assert [i.data for i in connector.fetch(new, [late.id])] == [item.data] == [late.raw]
            assert gmail.gets[(user, late.id)] == 1
            assert not any((tmp_path / "spool").rglob("[0-9a-f]" * 64))  # served, forgotten
