"""An error no connector foresaw fails the mailbox (or the folder) with its message, logged
once with its traceback, instead of leaving the pass planning for the sweep to retry for ever.

The trigger is real: a maildir from a legacy server whose folder or file names are Latin-1,
not UTF-8. Python reads them with surrogate escapes, which the database refuses to store.
"""

import logging
import os

import pytest

from mailboxes.connectors.base import Endpoint
from tests.engine.conftest import make_mailbox, run_pass

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGE = b"Subject: Hallo\r\n\r\nbody\r\n"
UNEXPECTED = "Stopped by an unexpected error ("


def maildir(root, folder: bytes = b"", names=(b"1.host:2,S",)):
    """A maildir "src" under ``root`` with the messages in ``folder`` ("" is the INBOX)."""
    base = os.fsencode(str(root / "src"))
    for path in {base, os.path.join(base, folder)}:
        for sub in (b"cur", b"new", b"tmp"):
            os.makedirs(os.path.join(path, sub), exist_ok=True)
    for name in names:
        with open(os.path.join(base, folder, b"cur", name), "wb") as file:
            file.write(MESSAGE)
    return Endpoint(kind="maildir", host=str(root))


def test_unexpected_error_in_planning_fails_the_mailbox(tmp_path, dovecot_b, dovecot_user, caplog):
    target = dovecot_user(dovecot_b)
    source = maildir(tmp_path, folder=b".Entw\xfcrfe")
    mailbox = make_mailbox(source, target.endpoint(), "src", target.name)

    with caplog.at_level(logging.ERROR):
        mailbox_pass = run_pass(mailbox)

    assert mailbox_pass.state == "failed" and mailbox.state == "failed"
    assert mailbox.error.startswith(UNEXPECTED)
    assert mailbox_pass.error == mailbox.error
    logged = [record for record in caplog.records if record.exc_info]
    assert len(logged) == 1 and "planning" in logged[0].getMessage()


def test_unexpected_error_while_copying_fails_the_folder_with_its_message(
    tmp_path, dovecot_b, dovecot_user
):
    target = dovecot_user(dovecot_b)
    source = maildir(tmp_path, names=[b"1.host:2,S", b"2.caf\xe9.host:2,S"])
    mailbox = make_mailbox(source, target.endpoint(), "src", target.name)

    mailbox_pass = run_pass(mailbox)

    (job,) = mailbox_pass.folder_jobs.all()
    # SQLite's driver refuses the name (UnicodeEncodeError), PostgreSQL the JSON (DataError).
    assert job.state == "failed" and job.error.startswith(UNEXPECTED)
    assert mailbox_pass.state == "failed" and job.error in mailbox.error
