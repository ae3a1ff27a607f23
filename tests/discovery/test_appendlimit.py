"""A target that announces APPENDLIMIT (RFC 7889): discovery reads the limit from the server
and names the items over it; a full pass fails exactly those, each with the reason, without
sending them; verification counts them as failed with that reason and the mailboxes verified.
Three mailboxes on ``dovecot_a``, each with its own login and content, copied to
``dovecot_b`` through ``tests.servers.imap_proxy`` announcing and enforcing the limit."""

import imaplib

import pytest

from mailboxes import discovery, verification
from mailboxes.models import ItemError
from projects.models import Project
from tests.engine.conftest import run_pass, tenant_for
from tests.engine.messages import message
from tests.servers.dovecot import RawMessage
from tests.servers.imap_proxy import ImapProxy

from .conftest import big_message

LIMIT = 120_000
pytestmark = pytest.mark.django_db


@pytest.fixture
def limiting(dovecot_b):
    proxy = ImapProxy(("127.0.0.1", dovecot_b.port), appendlimit=LIMIT).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def three(dovecot_a, dovecot_b, dovecot_user, limiting):
    """ann: nothing over the limit; ben: one big message in INBOX and one in "Scans"; cid: one
    message a byte under the limit and one a little over."""
    sources = {tag: dovecot_user(dovecot_a) for tag in ("ann", "ben", "cid")}
    sources["ann"].load("INBOX", [RawMessage(message(f"Ann {i}", f"a{i}")) for i in range(5)])
    sources["ben"].load("INBOX", [RawMessage(message("Ben 1", "b1")), RawMessage(big("ben-1"))])
    sources["ben"].load("Scans", [RawMessage(big("ben-2", 400_000)), RawMessage(message("S", "s"))])
    under = message("Just under", "u" * (LIMIT - len(message("Just under", ""))))
    assert len(under) == LIMIT
    sources["cid"].load("INBOX", [RawMessage(under), RawMessage(big("cid", LIMIT + 10))])

    # The target tenant states no max_item_size: the limit can only come from the server.
    project = Project.objects.create(
        client_name="Litware",
        source=tenant_for(dovecot_a.endpoint()),
        target=tenant_for(dovecot_b.endpoint(port=limiting.port)),
    )
    mailboxes, targets = [], []
    for tag, source in sources.items():
        target = dovecot_user(dovecot_b)
        targets.append(target)
        mailboxes.append(
            project.mailboxes.create(
                source_address=f"{tag}@old.example",
                target_address=f"{tag}@new.example",
                source_login=source.name,
                source_password=source.password,
                target_login=target.name,
                target_password=target.password,
            )
        )
    return mailboxes, list(sources.values()), targets


def big(tag: str, size: int = 200_000) -> bytes:
    data = big_message(tag, size)
    assert len(data) > LIMIT
    return data


def over_limit(source) -> dict[str, int]:
    """Per folder, how many messages the source holds above the limit (counted with imaplib)."""
    held = source.holdings()
    counts = {
        name: sum(len(body) > LIMIT for body, _ in items) for name, items in held.folders.items()
    }
    return {name: n for name, n in counts.items() if n}


def test_discovery_reads_the_announced_limit_and_a_pass_fails_exactly_what_is_over_it(
    three, limiting
):
    mailboxes, sources, targets = three
    for mailbox in mailboxes:
        discovery.discover_mailbox(mailbox)
        mailbox.refresh_from_db()
    expected = [over_limit(source) for source in sources]
    assert expected == [{}, {"INBOX": 1, "Scans": 1}, {"INBOX": 1}]
    for mailbox, over in zip(mailboxes, expected, strict=True):
        report = mailbox.discovery
        assert (report["max_item_size"], report["max_item_source"]) == (
            LIMIT,
            "the server's APPENDLIMIT",
        )
        assert report["over_limit_count"] == sum(over.values())
        assert sorted(item["folder"] for item in report["over_limit"]) == sorted(
            folder for folder, n in over.items() for _ in range(n)
        )
        assert all(item["size"] > LIMIT for item in report["over_limit"])

    for mailbox, source, target, over in zip(mailboxes, sources, targets, expected, strict=True):
        done = run_pass(mailbox, "full")
        held = source.holdings()
        fitting = sorted(body for body in held.bodies() if len(body) <= LIMIT)
        assert target.holdings().bodies() == fitting, mailbox.source_address
        assert (done.items_copied, done.items_failed) == (len(fitting), sum(over.values()))
        reasons = ItemError.objects.filter(folder_job__mailbox=mailbox).values_list(
            "reason", flat=True
        )
        assert len(reasons) == sum(over.values())
        assert all(f"APPENDLIMIT of {LIMIT} bytes" in reason for reason in reasons)
    # RFC 7889 §3: the connector never sent what the server announced it would refuse.
    assert limiting.too_big == 0

    for mailbox, over in zip(mailboxes, expected, strict=True):
        result = verification.verify(mailbox)
        mailbox.refresh_from_db()
        assert mailbox.verified, verification.folder_lines(mailbox)
        totals = result["totals"]
        assert (totals["failed"], totals["missing"], totals["new"]) == (sum(over.values()), 0, 0)
        for record in result["folders"]:
            assert record["failed"] == over.get(record["folder"], 0), record["folder"]
            if record["failed"]:
                assert "APPENDLIMIT" in record["reason"]


def test_the_test_server_refuses_an_append_over_its_limit(limiting, dovecot_b, dovecot_user):
    """The stand-in refuses what a server announcing APPENDLIMIT refuses, so a connector that
    sent such a message anyway would see it fail."""
    target = dovecot_user(dovecot_b)
    client = imaplib.IMAP4("127.0.0.1", limiting.port)
    try:
        client.login(target.name, target.password)
        assert f"APPENDLIMIT={LIMIT}" in client.capabilities
        status, data = client.append("INBOX", None, None, big("direct"))
        assert status == "NO" and b"TOOBIG" in data[0]
        status, _ = client.append("INBOX", None, None, message("Small", "fits"))
        assert status == "OK"
    finally:
        client.logout()
    assert [len(body) for body in target.holdings().bodies()] == [len(message("Small", "fits"))]
    assert limiting.too_big == 1
