"""Exchange Online at tenant scale, with real worker processes on a Graph test server that
enforces Microsoft's limits per app and mailbox (windows scaled down to seconds): the workers
share each mailbox's budget through the database, so no mailbox ever has more requests in flight
than allowed, almost nothing is throttled, and every item arrives exactly once; a worker killed
after items were imported but before they were recorded duplicates nothing on recovery."""

import pytest

from mailboxes import services
from mailboxes.connectors.graph import FINGERPRINT
from mailboxes.models import CopiedItem, MailboxPass
from tests.servers.graph_scale import contents, limit_options, project, scaled_limits, seed_pairs
from tests.servers.worker import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Small batches so each folder takes several; a short lease so a restarted worker's sweep soon
# finds a killed worker's jobs.
WORKER_ENV = {
    "COPY_BATCH_ITEMS": "10",
    "COPY_LEASE_SECONDS": "3",
    "COPY_TASK_SECONDS": "2",
    "COPY_RETRY_BASE_SECONDS": "0.2",
    "TENANT_CONNECTION_LIMIT": "12",
}


def wait_for_passes(count, workers, timeout=300):
    wait_until(
        lambda: MailboxPass.objects.filter(state__in=("done", "failed")).count() == count,
        timeout=timeout,
        interval=0.5,
        message=lambda: (
            f"passes: {list(MailboxPass.objects.values_list('state', 'error'))}\n"
            + "\n".join(worker.log()[-2000:] for worker in workers)
        ),
    )
    assert list(MailboxPass.objects.exclude(state="done").values_list("error", flat=True)) == []


def assert_every_item_arrived_once(server, pairs):
    for source, target in pairs:
        assert contents(server, target) == contents(server, source), target


def test_four_workers_twelve_mailboxes_stay_within_each_mailboxs_budget(graph_server, start_worker):
    limits = scaled_limits(window=4.0, requests=25, megabytes=0.1)
    # Each request holds its slot 200 ms, long beside a turn in the shared budget (a locked row
    # in the database, taken in turn by every thread on the mailbox), so a batch's imports
    # overlap however slow that database is: the four slots are used.
    graph_server.enforce(limits, mailbox_time=0.2)
    pairs = seed_pairs(graph_server, 12, items=30)
    moving = project(graph_server, pairs, **limit_options(limits))
    workers = [start_worker(f"worker{n}", env=WORKER_ENV, concurrency=3) for n in range(4)]

    services.start_passes(moving.mailboxes.all(), "full")
    wait_for_passes(12, workers)

    assert_every_item_arrived_once(graph_server, pairs)
    uses = graph_server.use.values()
    assert max(use.max_in_flight for use in uses) == limits.concurrency  # used, never exceeded
    served = sum(use.served for use in uses)
    assert graph_server.counts["throttled"] * 100 < served, graph_server.counts
    # Each target needed more than a window of requests (an import for each of its 30 or more
    # items): the windows bound, and were kept to.
    targets = [use for _, target in pairs for use in graph_server.mailbox_use(target)]
    assert all(use.served > limits.requests for use in targets)
    items = sum(30 + n + n % 3 for n in range(12))
    # Each item imported once; a refused import (429, retried) is counted in "importItem" only.
    assert graph_server.counts["imported"] == items
    assert CopiedItem.objects.count() == items


def test_a_worker_killed_between_import_and_recording_imports_nothing_twice(
    graph_server, start_worker
):
    """Three mailboxes with mail and events, copied by one worker whose processes are all held
    after Exchange applied imports (the items stored, the answers not yet heard): killed there,
    the next worker finds them by the PR_SEARCH_KEY each import kept from its source item, and
    records them without importing them again."""
    limits = scaled_limits(window=4.0, requests=600, megabytes=10)
    graph_server.enforce(limits)
    pairs = seed_pairs(graph_server, 3, items=30)
    moving = project(graph_server, pairs, **limit_options(limits))
    targets = [graph_server.users[target] for _, target in pairs]
    graph_server.hold("importItem")
    # A process for every folder job (at most an inbox and a calendar a mailbox): with fewer,
    # all of them could be held in two mailboxes' jobs and the third never be reached.
    first = start_worker("first", env=WORKER_ENV, concurrency=6)

    services.start_passes(moving.mailboxes.all(), "full")
    wait_until(
        lambda: all(graph_server.held[box.id.lower()] for box in targets),
        timeout=120,
        message=lambda: f"held: {graph_server.held}\n{first.log()[-3000:]}",
    )
    first.kill()
    graph_server.release("importItem")
    imported_before = graph_server.counts["imported"]
    recorded_before = CopiedItem.objects.count()
    second = start_worker("second", env=WORKER_ENV, concurrency=3)
    wait_for_passes(3, [first, second])

    assert recorded_before < imported_before  # items were imported and not recorded
    assert_every_item_arrived_once(graph_server, pairs)
    copies = [item for box in targets for f in box.folders.values() for item in f.items.values()]
    assert not any(FINGERPRINT in item.properties for item in copies)  # found by key alone
    items = sum(30 + n + n % 3 for n in range(3))
    assert graph_server.counts["imported"] == items  # none of them twice
    assert CopiedItem.objects.count() == items
