"""The maildir connector: Dovecot's Maildir++ layout, flags, keywords, dates, exact bytes."""

import os
from datetime import UTC, datetime

import pytest

from mailboxes.connectors import ConnectorError
from mailboxes.connectors.base import Endpoint, Item
from mailboxes.connectors.maildir import MaildirConnector
from tests.corpus import corpus_files


@pytest.fixture
def maildir(tmp_path):
    return MaildirConnector(Endpoint(kind="maildir", host=str(tmp_path)), "ann@example.org")


def test_store_writes_dovecot_layout_and_reads_back_exactly(maildir, tmp_path):
    when = datetime(2011, 5, 6, 7, 8, 9, tzinfo=UTC)
    data = corpus_files()[0].read_bytes()
    folder = maildir.ensure_folder(("Projets & Co", "v1.2", "Ünïcode"), "mail", None)
    flags = frozenset({"\\Seen", "\\Answered", "$Forwarded", "$Label1", "custom"})
    (result,) = maildir.store(folder, [Item("x", data, flags=flags, received=when)])

    base = tmp_path / "ann@example.org"
    assert folder.native_id == ".Projets &- Co.v1\\2e2.&ANw-n&AO8-code"
    assert (base / folder.native_id / "maildirfolder").exists()
    (path,) = (base / folder.native_id / "cur").iterdir()
    assert path.name.startswith(result.target_id + ":2,")
    assert path.read_bytes() == data
    assert os.stat(path).st_mtime == when.timestamp()
    assert not list((base / folder.native_id / "tmp").iterdir())

    listed = {f.path: f for f in maildir.folders()}
    assert listed[("Projets & Co", "v1.2", "Ünïcode")].count == 1
    changes = maildir.changes(folder, {})
    assert [ref.source_id for ref in changes.items] == [result.target_id]
    (item,) = maildir.fetch(folder, [result.target_id])
    assert (item.data, item.flags, item.received) == (data, flags, when)


def test_reads_dovecot_files_with_size_extensions_and_keyword_letters(maildir, tmp_path):
    base = tmp_path / "ann@example.org"
    for sub in ("cur", "new", "tmp"):
        (base / sub).mkdir(parents=True)
    (base / "dovecot-keywords").write_text("0 $Forwarded\n1 $Label1\n3 work\n")
    (base / "cur" / "1400000000.M1P2.host,S=5,W=6:2,FRSbd").write_bytes(b"a\r\nb\r\n")
    (base / "new" / "1400000001.M1P3.host,S=5").write_bytes(b"new\r\n")
    inbox = next(f for f in maildir.folders() if f.role == "inbox")
    refs = maildir.changes(inbox, {}).items
    assert [r.source_id for r in refs] == ["1400000000.M1P2.host", "1400000001.M1P3.host"]
    first, second = maildir.fetch(inbox, [r.source_id for r in refs])
    assert first.flags == {"\\Flagged", "\\Answered", "\\Seen", "$Label1", "work"}
    assert second.flags == frozenset()


def test_unchanged_folder_lists_nothing_and_a_new_message_shows(maildir):
    inbox = maildir.ensure_folder(("INBOX",), "mail", "inbox")
    maildir.store(inbox, [Item("a", b"one\r\n")])
    state = maildir.changes(inbox, {}).state
    assert maildir.changes(inbox, state).items == []
    maildir.store(inbox, [Item("b", b"two\r\n")])
    assert len(maildir.changes(inbox, state).items) == 2  # the engine skips what it copied


def test_role_folders_map_onto_existing_ones(maildir):
    maildir.ensure_folder(("Sent Items",), "mail", None)
    assert maildir.ensure_folder(("Sent",), "mail", "sent").path == ("Sent Items",)
    assert maildir.ensure_folder(("Trash",), "mail", "trash").native_id == ".Trash"


def test_fingerprints_keep_byte_identical_duplicates_apart(maildir):
    inbox = maildir.ensure_folder(("INBOX",), "mail", "inbox")
    results = maildir.store(inbox, [Item("a", b"same\r\n"), Item("b", b"same\r\n")])
    (ids,) = maildir.fingerprints(inbox).values()
    assert sorted(ids) == sorted(r.target_id for r in results)


def test_missing_root_is_a_clear_error(tmp_path):
    connector = MaildirConnector(Endpoint(kind="maildir", host=str(tmp_path / "no")), "ann")
    with pytest.raises(ConnectorError, match="is not a folder"):
        connector.open()
