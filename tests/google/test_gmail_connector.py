"""The Gmail connector on its own against the loopback Gmail API server: what it lists and
hands over as labels change under it."""

import os
import time

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


def test_spooled_messages_no_folder_asked_for_within_a_day_are_deleted(gmail, tmp_path):
    """A label folder left out of the migration never takes its messages from the spool."""
    boxes = seed(gmail, per_user=3)
    endpoint = google_endpoint(gmail, gmail.key, tmp_path / "spool")
    for user in USERS:
        box = boxes[user]
        both = box.add_message(f"Subject: {user}\r\n\r\ny\r\n".encode(), ["INBOX", "Skipped"])
        with GmailConnector(endpoint, user) as connector:
            inbox = next(f for f in connector.folders() if f.native_id == "INBOX")
            connector.fetch(inbox, [both.id])
        (kept,) = (tmp_path / "spool").rglob("[0-9a-f]" * 64)
        with GmailConnector(endpoint, user):
            assert kept.exists()  # waiting for Skipped
        day_ago = time.time() - 24 * 3600 - 60
        os.utime(kept, (day_ago, day_ago))
        with GmailConnector(endpoint, user):
            assert not kept.exists()
