"""A target server that rewrites messages on APPEND (Cyrus ``munge8bit``: 8-bit header bytes
become "X") or drops the connection right after storing: the copy says which messages it
altered, recovery after a source UIDVALIDITY change recognises them, and a new pass after a
failed one stores nothing twice. The misbehaving server is ``tests.servers.imap_proxy`` in
front of the test Dovecot."""

import csv
import io
import time

import pytest

from mailboxes.models import CopiedItem, FolderJob
from mailboxes.report import write_report
from tests.servers.dovecot import RawMessage
from tests.servers.imap_proxy import ImapProxy, munge8bit

from .conftest import make_mailbox, run_pass
from .messages import hard_cases, message

pytestmark = pytest.mark.django_db


def eight_bit(subject: str, body: str, message_id: str) -> bytes:
    """A message with raw UTF-8 in its headers, as many mailers still send."""
    return message(subject, body, message_id).replace(b"Ann <", "Ånn Øster <".encode())


def source_messages() -> list[RawMessage]:
    twin = eight_bit("Grüße aus Köln", "the same bytes twice", "twin8@example.org")
    return [
        *hard_cases(),
        RawMessage(eight_bit("Café crème", "first", "cafe@example.org"), frozenset({"\\Seen"})),
        RawMessage(eight_bit("Ümlaut", "second", "umlaut@example.org")),
        RawMessage(twin),
        RawMessage(twin),
        *(
            RawMessage(message(f"Plain {i}", f"body {i}", f"plain{i}@example.org"))
            for i in range(8)
        ),
    ]


@pytest.fixture
def munging(dovecot_b):
    proxy = ImapProxy(("127.0.0.1", dovecot_b.port), munge=True).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def munged_pair(dovecot_a, dovecot_b, dovecot_user, munging, copy_settings):
    source, target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
    source.load("Letters", source_messages())
    source.load("INBOX", [RawMessage(eight_bit("Größe", "sizes", "size@example.org"))])
    through_proxy = target.endpoint(port=munging.port)
    mailbox = make_mailbox(source.endpoint(), through_proxy, source.name, target.name)
    return mailbox, source, target


def expected_on_target(source) -> list[bytes]:
    return sorted(munge8bit(body) for body in source.holdings().bodies())


def test_messages_the_target_altered_are_copied_and_flagged(munged_pair, admin_client):
    mailbox, source, target = munged_pair
    done = run_pass(mailbox, "full")
    held = source.holdings()
    assert (done.state, done.items_copied, done.items_failed) == ("done", held.messages, 0)
    assert target.holdings().bodies() == expected_on_target(source)

    altered = CopiedItem.objects.exclude(altered="")
    sent_8bit = [body for body in held.bodies() if munge8bit(body) != body]
    assert altered.count() == len(sent_8bit) == 5
    assert CopiedItem.objects.filter(altered="").count() == held.messages - 5
    cafe = next(item for item in altered if "Caf" in item.altered)
    assert cafe.altered.startswith("changed by the target server: ")
    assert "'Subject: Café crème' -> 'Subject: CafXX crXXme'" in cafe.altered
    assert "'From: Ånn Øster <ann@example.org>' -> 'From: XXnn XXster <ann@example.org>'" in (
        cafe.altered
    )
    assert len(cafe.altered) <= 500

    out = io.StringIO()
    write_report(mailbox.project, out)
    out.seek(0)
    (row,) = csv.DictReader(out)
    assert (row["items_copied"], row["items_altered"]) == (str(held.messages), "5")
    page = admin_client.get(mailbox.get_absolute_url()).content.decode()
    assert "Copied, but changed by the target server (5)" in page
    assert "Subject: CafXX crXXme" in page and "Subject: GrXXXXe" in page

    again = run_pass(mailbox, "full")
    assert (again.items_copied, again.items_skipped) == (0, held.messages)
    assert target.holdings().bodies() == expected_on_target(source)


def test_a_source_uidvalidity_change_does_not_duplicate_what_the_target_altered(munged_pair):
    mailbox, source, target = munged_pair
    assert run_pass(mailbox, "full").state == "done"
    # Recreating a source folder gives it a new UIDVALIDITY: every source id changes, and the
    # copies are found on the target by content, altered ones included.
    client = source.server.client(source.name, source.password)
    _, (count,) = client.select("Letters")
    _, fetched = client.uid("FETCH", "1:*", "(BODY.PEEK[])")
    client.close()
    client.delete("Letters")
    client.logout()
    bodies = [part[1] for part in fetched if isinstance(part, tuple)]
    assert len(bodies) == int(count) == len(source_messages())
    time.sleep(1.1)  # Dovecot takes UIDVALIDITY from the clock, in seconds
    source.load("Letters", [RawMessage(body) for body in bodies])
    source.load("Letters", [RawMessage(eight_bit("Neu", "after the reset", "new8@example.org"))])

    delta = run_pass(mailbox, "delta")
    assert delta.state == "done", delta.error
    assert (delta.items_copied, delta.items_skipped) == (1, len(bodies))
    assert target.holdings().bodies() == expected_on_target(source)
    twins = [body for body in target.holdings().bodies() if b"twin8@" in body]
    assert len(twins) == 2


def test_a_new_pass_after_one_whose_target_went_away_mid_append_stores_nothing_twice(
    dovecot_a, dovecot_b, dovecot_user, copy_settings
):
    source, target = dovecot_user(dovecot_a), dovecot_user(dovecot_b)
    plain = [RawMessage(message(f"M {i}", f"b {i}", f"m{i}@example.org")) for i in range(30)]
    source.load("INBOX", plain[:10])
    mailbox = make_mailbox(source.endpoint(), target.endpoint(), source.name, target.name)
    assert run_pass(mailbox, "full").state == "done"
    source.load("INBOX", plain[10:])

    # The target drops the connection right after storing a batch, then stays away.
    away = ImapProxy(("127.0.0.1", dovecot_b.port), drop_after_appends=1, refuse_after_drop=True)
    away.start()
    try:
        mailbox.project.target.port = away.port
        mailbox.project.target.save()
        failed = run_pass(mailbox, "delta")
    finally:
        away.stop()
    assert failed.state == "failed" and away.drops == 1
    (stuck,) = FolderJob.objects.filter(mailbox_pass=failed).exclude(inflight=[])
    assert target.holdings().messages == 10 + len(stuck.inflight)  # stored, never recorded
    assert CopiedItem.objects.count() == 10

    mailbox.project.target.port = dovecot_b.port
    mailbox.project.target.save()
    again = run_pass(mailbox, "full")
    assert again.state == "done", again.error
    assert (again.items_copied, again.items_skipped) == (
        20 - len(stuck.inflight),
        10 + len(stuck.inflight),
    )
    assert target.holdings().bodies() == source.holdings().bodies()
    assert CopiedItem.objects.count() == 30
