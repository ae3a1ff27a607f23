"""The engine between two real Dovecot servers, in process: an exact copy of the corpus and
the hard cases, idempotent passes, deltas, a UIDVALIDITY reset, refused items and logins."""

import pytest

from mailboxes import engine, services
from mailboxes.connectors import utf7
from mailboxes.connectors.base import Endpoint, Item
from mailboxes.connectors.maildir import MaildirConnector
from mailboxes.models import CopiedItem, ItemError
from tests.corpus import corpus_messages
from tests.servers.dovecot import RawMessage

from .conftest import make_mailbox, run_pass
from .messages import hard_cases, message
from .snapshots import snapshot, total

pytestmark = pytest.mark.django_db

FOLDERS = ["INBOX", "Sent", "Archive", "Archive/2014", "Projets & Co", "Ünïcode", "O'Brien #1 [x]"]


def load_source(user):
    messages = corpus_messages()
    for index, name in enumerate(FOLDERS):
        wire = "/".join(utf7.encode(part) for part in name.split("/"))
        user.load(wire, messages[index :: len(FOLDERS)] + (hard_cases() if index == 0 else []))
    client = user.server.client(user.name, user.password)
    client.create('"Empty/Nested"')
    client.logout()


@pytest.fixture
def imap_pair(dovecot_a, dovecot_b, dovecot_user, copy_settings):
    source, target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
    load_source(source)
    mailbox = make_mailbox(source.endpoint(), target.endpoint(), source.name, target.name)
    return mailbox, source, target


def same(source, target) -> bool:
    expected = snapshot(source.endpoint(), source.name)
    return expected == snapshot(target.endpoint(), target.name) and total(expected) >= 90


def test_a_mailbox_added_again_finds_its_copies_on_the_target_instead_of_copying_twice(imap_pair):
    mailbox, source, target = imap_pair
    first = run_pass(mailbox, "full")
    project = mailbox.project
    mailbox.delete()  # its copy records go with it; the target keeps the mail
    again = project.mailboxes.create(source_address=source.name, target_address=target.name)
    second = run_pass(again, "full")
    assert (second.state, second.items_copied, second.items_skipped) == (
        "done",
        0,
        first.items_copied,
    )
    assert same(source, target)
    again.refresh_from_db()
    assert again.items_on_target == first.items_copied


def test_copy_is_exact_and_idempotent(imap_pair):
    mailbox, source, target = imap_pair
    first = run_pass(mailbox, "full")
    assert (first.state, first.items_failed) == ("done", 0), first.error
    assert same(source, target)
    copied = snapshot(target.endpoint(), target.name)
    assert ("Empty", "Nested") in copied and ("Ünïcode",) in copied
    hard = {data for counter in copied.values() for data, *_ in counter}
    assert message("No id", "no Message-ID header at all") in hard
    twins = [n for c in copied.values() for (d, *_), n in c.items() if b"Subject: Twin" in d]
    assert twins == [2]

    again = run_pass(mailbox, "full")
    assert (again.items_copied, again.items_skipped) == (0, first.items_copied)
    unchanged = run_pass(mailbox, "delta")
    assert (unchanged.items_total, unchanged.items_copied) == (0, 0)
    assert same(source, target)


def test_delta_copies_only_new_and_survives_a_uidvalidity_reset(imap_pair):
    mailbox, source, target = imap_pair
    run_pass(mailbox, "full")
    source.load("Archive/2014", [RawMessage(message("New", "arrived later", "new@example.org"))])
    delta = run_pass(mailbox, "delta")
    assert (delta.items_total, delta.items_copied) == (1, 1)

    # Recreating a folder gives it a new UIDVALIDITY: every source id changes.
    client = source.server.client(source.name, source.password)
    typ, data = client.select('"Projets &- Co"')
    count = int(data[0])
    typ, fetched = client.uid("FETCH", "1:*", "(BODY.PEEK[] FLAGS INTERNALDATE)")
    client.close()
    client.delete('"Projets &- Co"')
    client.logout()
    bodies = [part[1] for part in fetched if isinstance(part, tuple)]
    assert len(bodies) == count
    source.load("Projets &- Co", [RawMessage(body) for body in bodies])
    source.load("Projets &- Co", [RawMessage(message("After reset", "one more"))])

    reset = run_pass(mailbox, "delta")
    assert reset.items_copied == 1 and reset.items_skipped == count
    projets = snapshot(target.endpoint(), target.name)[("Projets & Co",)]
    assert sum(projets.values()) == count + 1


def test_wrong_password_stops_the_mailbox_with_a_clear_message(dovecot_a, dovecot_user):
    source = dovecot_user(dovecot_a)
    wrong = source.endpoint(secret="not-the-password")
    mailbox = make_mailbox(wrong, source.endpoint(), source.name, source.name)
    failed = run_pass(mailbox, "full")
    assert failed.state == "failed" and mailbox.state == "failed"
    assert mailbox.error.startswith("The source server refused the credentials")
    assert source.name in mailbox.error and "not-the-password" not in mailbox.error


def test_unreachable_target_retries_then_fails_clearly(
    dovecot_a, dovecot_user, copy_settings, refused_port
):
    source = dovecot_user(dovecot_a)
    nowhere = Endpoint(kind="imap", host="127.0.0.1", port=refused_port, security="plain")
    mailbox = make_mailbox(source.endpoint(), nowhere, source.name, "nobody")
    failed = run_pass(mailbox, "full")
    assert failed.state == "failed" and failed.retries == copy_settings.COPY_MAX_RETRIES
    assert mailbox.error.startswith("Target server:")
    assert "gave up after 3 attempts" in mailbox.error


def test_retry_failed_finishes_once_the_server_is_back(
    dovecot_a, dovecot_b, dovecot_user, copy_settings, refused_port
):
    source, target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
    source.load("INBOX", corpus_messages()[:5])
    moved = target.endpoint(port=refused_port)
    mailbox = make_mailbox(source.endpoint(), moved, source.name, target.name)
    assert run_pass(mailbox, "full").state == "failed"

    mailbox.project.target.port = dovecot_b.port
    mailbox.project.target.save()
    scheduler = engine.InlineScheduler("test:1")
    services.retry_failed([mailbox], scheduler=scheduler)
    scheduler.run()
    mailbox.refresh_from_db()
    assert (mailbox.state, mailbox.error) == ("done", "")
    assert (
        snapshot(target.endpoint(), target.name)[("INBOX",)]
        == snapshot(source.endpoint(), source.name)[("INBOX",)]
    )


def test_refused_message_is_an_item_error_and_the_folder_goes_on(
    tmp_path, dovecot_b, dovecot_user, copy_settings
):
    source = MaildirConnector(Endpoint(kind="maildir", host=str(tmp_path)), "ann")
    inbox = source.ensure_folder(("INBOX",), "mail", "inbox")
    huge = message("Huge", "x" * (dovecot_b.max_message_size + 1000))
    small = [Item(f"s{i}", message(f"Small {i}", "fine")) for i in range(10)]
    source.store(inbox, [*small[:5], Item("huge", huge), *small[5:]])
    target = dovecot_user(dovecot_b)
    mailbox = make_mailbox(source.endpoint, target.endpoint(), "ann", target.name)
    done = run_pass(mailbox, "full")
    assert (done.state, done.items_copied, done.items_failed) == ("done", 10, 1)
    (error,) = ItemError.objects.all()
    assert error.size == len(huge) and "maximum size" in error.reason
    assert CopiedItem.objects.count() == 10
    assert sum(snapshot(target.endpoint(), target.name)[("INBOX",)].values()) == 10


def test_a_dovecot_maildir_on_disk_reads_like_its_imap_server(
    dovecot_a, dovecot_b, dovecot_user, copy_settings
):
    source, target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
    load_source(source)
    on_disk = Endpoint(kind="maildir", host=str(source.maildir))
    mailbox = make_mailbox(on_disk, target.endpoint(), source.name, target.name)
    done = run_pass(mailbox, "full")
    assert (done.state, done.items_failed) == ("done", 0), done.error
    assert same(source, target)
