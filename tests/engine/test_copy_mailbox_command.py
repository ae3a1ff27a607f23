"""``manage.py copy_mailbox`` in process (--inline): URLs, the summary line, reuse, errors."""

import io
import re

import pytest
from django.core.management import CommandError, call_command

from mailboxes.models import Mailbox
from projects.models import Project
from tests.corpus import corpus_messages

from .snapshots import snapshot, total

# The progress bar reads the pass from its own thread, hence its own connection: the rows must
# be committed, as they always are outside tests.
pytestmark = pytest.mark.django_db(transaction=True)

SUMMARY = re.compile(r"copied=(\d+) skipped=(\d+) failed=(\d+) bytes=(\d+) seconds=[\d.]+\n")


def copy(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("copy_mailbox", *args, "--inline", stdout=out, stderr=err)
    return SUMMARY.fullmatch(out.getvalue()).groups(), err.getvalue()


def test_imap_to_maildir_and_back_again_copies_nothing(tmp_path, dovecot_a, dovecot_user):
    source = dovecot_user(dovecot_a)
    source.load("INBOX", corpus_messages()[:12])
    source.load("Lists/Python", corpus_messages()[12:20])
    url = f"imap+starttls://{source.name}:{source.password}@127.0.0.1:{dovecot_a.port}"
    url += "?insecure=1"
    archive = tmp_path / "archive"

    (copied, skipped, failed, size), progress = copy(url, f"maildir://{archive}")
    assert (copied, skipped, failed) == ("20", "0", "0") and int(size) > 0
    assert "100%" in progress and "20/20 items" in progress
    expected = snapshot(source.endpoint(), source.name)
    local = snapshot(source.endpoint(kind="maildir", host=str(archive)), str(archive))
    assert {path: counter for path, counter in local.items() if counter} == {
        path: counter for path, counter in expected.items() if counter
    }

    (copied, skipped, _, _), _ = copy(url, f"maildir://{archive}")
    assert (copied, skipped) == ("0", "20")
    assert Project.objects.count() == 1 and Mailbox.objects.count() == 1
    assert total(expected) == 20


@pytest.mark.parametrize(
    "source, message",
    [
        ("pop3://ann:pw@host", "must start with one of imap, imaps, imap+starttls, maildir"),
        ("imap://host.example", "needs a user and a host"),
        ("imap://ann:pw@host:99999", "is not valid"),
        ("maildir://relative/path", "must look like maildir:///path"),
    ],
)
def test_bad_urls_are_usage_errors(tmp_path, source, message):
    with pytest.raises(CommandError, match=re.escape(message)) as caught:
        copy(source, f"maildir://{tmp_path}")
    assert caught.value.returncode == 2


def test_wrong_password_fails_with_a_clear_message(tmp_path, dovecot_a, dovecot_user):
    source = dovecot_user(dovecot_a)
    url = f"imap://{source.name}:wrong@127.0.0.1:{dovecot_a.port}"
    with pytest.raises(CommandError, match="The source server refused the credentials") as caught:
        copy(url, f"maildir://{tmp_path}")
    assert caught.value.returncode == 1
