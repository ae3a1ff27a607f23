"""Discovery of three mailboxes on real Dovecot: every figure equals what imaplib counts."""

import time
from datetime import datetime

import pytest

from mailboxes import discovery
from mailboxes.connectors.folders import join_path
from mailboxes.models import FolderMapping, Mailbox, MailboxPass
from tests.engine.conftest import run_pass

from .conftest import BULK_ITEMS, TARGET_MAX_MESSAGE, count_on_server


def _path(name: str, separator: str) -> str:
    return join_path(tuple(name.split(separator))) if name != "INBOX" else "INBOX"


def assert_matches_server(mailbox: Mailbox, scene) -> None:
    user, password = scene.accounts[mailbox.source_address]
    counted = count_on_server(scene.source, user, password)
    report = mailbox.discovery
    folders = {f["path"]: f for f in report["folders"]}
    assert set(folders) == {_path(name, scene.source.separator) for name in counted}
    for name, truth in counted.items():
        folder = folders[_path(name, scene.source.separator)]
        assert (folder["items"], folder["bytes"]) == (truth.items, truth.size), name
        oldest = datetime.fromisoformat(folder["oldest"]) if folder["oldest"] else None
        newest = datetime.fromisoformat(folder["newest"]) if folder["newest"] else None
        assert (oldest, newest) == (truth.oldest, truth.newest), name
    assert report["items"] == sum(c.items for c in counted.values())
    assert report["bytes"] == sum(c.size for c in counted.values())
    largest = [item["size"] for item in report["largest"]]
    assert largest == sorted(largest, reverse=True)
    assert largest[0] == max(c.largest for c in counted.values())
    # The mailbox's "Source holds" figures agree with the discovery.
    mailbox.refresh_from_db()
    assert (mailbox.source_items, mailbox.source_bytes) == (report["items"], report["bytes"])
    assert mailbox.source_listed_at is not None


def test_discovery_figures_equal_the_servers(scene):
    ann, ben, cid = scene.mailboxes
    started = time.monotonic()
    for mailbox in scene.mailboxes:
        discovery.discover_mailbox(mailbox)
    elapsed = time.monotonic() - started
    for mailbox in scene.mailboxes:
        mailbox.refresh_from_db()
        assert_matches_server(mailbox, scene)

    # ann fits: nothing to report.
    assert ann.discovery["problems"] == [] and not ann.discovery_blocking
    assert ann.discovery["over_limit_count"] == 0

    # ben: the 20,000-item folder, and more than the target's 2 MB quota.
    bulk = next(f for f in ben.discovery["folders"] if f["path"] == "Bulk")
    assert bulk["items"] == BULK_ITEMS
    assert ben.discovery_blocking
    (problem,) = ben.discovery["problems"]
    assert problem["blocking"] and problem["text"].startswith("Quota short by ")
    quota = ben.discovery["quota"]
    assert quota["limit"] == 2 * 1024 * 1024
    short_mb = -(-(ben.discovery["bytes_to_copy"] - quota["free"]) // (1024 * 1024))
    assert f"Quota short by {short_mb:,} MB" in problem["text"]

    # cid: one message over the target's limit, which will fail, but does not block.
    assert not cid.discovery_blocking
    assert cid.discovery["max_item_size"] == TARGET_MAX_MESSAGE
    assert cid.discovery["over_limit_count"] == 1
    (over,) = cid.discovery["over_limit"]
    assert over["folder"] == "INBOX" and over["size"] > TARGET_MAX_MESSAGE
    assert cid.discovery["largest"][0]["subject"] == "Big cid"
    (problem,) = cid.discovery["problems"]
    assert not problem["blocking"] and "1 item over the target's size limit" in problem["text"]
    print(f"discovery of 3 mailboxes ({BULK_ITEMS + 27} items): {elapsed:.2f}s")
    assert elapsed < 60


def test_a_refused_target_login_blocks(scene):
    mailbox = scene.mailboxes[0]
    mailbox.target_password = "wrong"
    mailbox.save()
    discovery.discover_mailbox(mailbox)
    mailbox.refresh_from_db()
    assert mailbox.discovery_blocking
    texts = [p["text"] for p in mailbox.discovery["problems"] if p["blocking"]]
    assert any(text.startswith("Target login refused") for text in texts)
    # The source side was still read.
    assert_matches_server(mailbox, scene)


def test_what_discovery_predicts_is_what_a_pass_does_and_the_estimate_follows_it(scene):
    """cid's one item over the target's limit is the one item its full pass fails; once a pass
    has run, the estimate uses the throughput it measured instead of the default."""
    ann, _ben, cid = scene.mailboxes
    for mailbox in (ann, cid):
        discovery.discover_mailbox(mailbox)
    ready = discovery.readiness(scene.project)
    assert not ready.throughput.measured
    assert ready.throughput.bytes_per_second == discovery.DEFAULT_BYTES_PER_SECOND

    for mailbox in (ann, cid):
        run_pass(mailbox, "full")
    assert (ann.items_copied, ann.items_failed) == (ann.discovery["items"], 0)
    assert cid.items_failed == cid.discovery["over_limit_count"] == 1
    assert cid.items_copied == cid.discovery["items"] - 1

    ready = discovery.readiness(scene.project)
    assert ready.throughput.measured
    passes = MailboxPass.objects.filter(mailbox__in=(ann, cid))
    seconds = sum((p.finished_at - p.started_at).total_seconds() for p in passes)
    assert ready.throughput.bytes_per_second == pytest.approx(
        max(sum(p.bytes_copied for p in passes) / seconds, 1.0)
    )
    # Everything of ann is on the target now: what is left to copy is what discovery counts
    # beyond it (nothing), so a rediscovery estimates no time for it.
    for mailbox in (ann, cid):
        discovery.discover_mailbox(mailbox)
    ready = discovery.readiness(scene.project)
    row = next(r for r in ready.rows if r.mailbox.pk == ann.pk)
    assert (row.report["items_to_copy"], row.report["bytes_to_copy"]) == (0, 0)
    assert row.estimate_seconds == 0
    row = next(r for r in ready.rows if r.mailbox.pk == cid.pk)
    left = cid.discovery["over_limit"][0]["size"]
    assert row.estimate_seconds == ready.throughput.seconds(1, left)


def test_a_folder_left_out_by_an_override_is_not_counted_against_the_target(scene):
    """ben's 20,000 items are all in "Bulk": left out (``Bulk => -``), what is left fits the
    quota; the source figures still count every folder."""
    ben = scene.mailboxes[1]
    FolderMapping.objects.create(project=scene.project, source_path="Bulk", exclude=True)
    discovery.discover_mailbox(ben)
    ben.refresh_from_db()
    assert not ben.discovery_blocking and ben.discovery["problems"] == []
    bulk = next(f for f in ben.discovery["folders"] if f["path"] == "Bulk")
    assert bulk["excluded"] and bulk["items"] == BULK_ITEMS
    kept = [f for f in ben.discovery["folders"] if not f["excluded"]]
    assert ben.discovery["items_to_copy"] == sum(f["items"] for f in kept)
    assert ben.discovery["bytes_to_copy"] == sum(f["bytes"] for f in kept)
    assert_matches_server(ben, scene)
