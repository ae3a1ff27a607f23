"""The request budget shared by worker processes, on both of its stores: Redis (the broker when
it is Redis) and the database. Several real processes take one budget at once."""

import json
import os
import subprocess
import sys
import time

import pytest
from django.db import connections

from mailboxes import budget
from mailboxes.budget import Budget, DatabaseStore, Limits, RedisStore
from tests.servers.worker import ROOT, database_url, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=["redis", "database"])
def store_and_env(request):
    """A store and the environment under which another process chooses the same one."""
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        return RedisStore(url), {"CELERY_BROKER_URL": url}
    return DatabaseStore(), {"CELERY_BROKER_URL": "filesystem://"}


def most_at_once(intervals) -> int:
    """How many of the (start, end) intervals overlap at the busiest instant."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    busiest = current = 0
    for _, step in edges:
        current += step
        busiest = max(busiest, current)
    return busiest


def hold_in_processes(env, key, concurrency, processes=4, threads=2, rounds=4, hold=0.1):
    connections.close_all()  # SQLite: let the other processes write
    command = [sys.executable, "-m", "tests.budget.holder", key, str(concurrency)]
    command += [str(threads), str(rounds), str(hold)]
    full_env = {**os.environ, "DATABASE_URL": database_url(), **env}
    procs = [
        subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    intervals = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
        intervals += json.loads(out)
    assert len(intervals) == processes * threads * rounds
    return intervals


class TestConcurrencyAcrossProcesses:
    def test_never_more_in_flight_than_the_limit(self, store_and_env):
        _, env = store_and_env
        intervals = hold_in_processes(env, f"test:{time.monotonic_ns()}", concurrency=3)
        # The limit holds across four processes of two threads, and is used, not serialised.
        assert most_at_once(intervals) == 3

    def test_without_a_limit_the_same_processes_overlap_more(self, store_and_env):
        # The control: the harness does see overlaps beyond three when nothing limits them.
        _, env = store_and_env
        intervals = hold_in_processes(env, f"test:{time.monotonic_ns()}", concurrency=0)
        assert most_at_once(intervals) > 3


class TestWindows:
    def test_requests_beyond_the_window_wait_for_its_oldest_bucket(self, store_and_env):
        store, _ = store_and_env
        limits = Limits(requests=5, window=60)
        key = f"test:{time.monotonic_ns()}"
        waits = [store.take(key, f"t{n}", limits, 0) for n in range(6)]
        assert waits[:5] == [0] * 5
        # The sixth waits until a window and a bucket have passed since the end of the first
        # request's bucket: more than the service's exact window, at most two buckets more.
        assert 60 < waits[5] <= 60 + 2 * limits.bucket
        usage = store.usage(key, limits)
        assert (usage.requests, usage.in_flight) == (5, 5)
        assert usage.fraction_of(limits) == 1.0

    def test_bytes_per_window_and_an_item_larger_than_the_budget(self, store_and_env):
        store, _ = store_and_env
        limits = Limits(bytes=1000, window=60)
        key = f"test:{time.monotonic_ns()}"
        assert store.take(key, "a", limits, 600) == 0
        assert store.take(key, "b", limits, 600) > 0  # 1,200 bytes would exceed 1,000
        assert store.take(key, "c", limits, 400) == 0  # exactly 1,000 fits
        assert store.usage(key, limits).bytes == 1000
        # An item larger than the whole budget goes alone, when nothing else is in the window.
        other = f"test:{time.monotonic_ns()}"
        assert store.take(other, "big", limits, 5000) == 0
        assert store.usage(other, limits).fraction_of(limits) == 5.0

    def test_a_batch_counts_each_request_and_holds_several_slots(self, store_and_env):
        store, _ = store_and_env
        limits = Limits(concurrency=4, requests=25, window=60)
        batch = Budget(f"test:{time.monotonic_ns()}", limits, store)
        with batch.request(requests=20, slots=4):
            assert batch.usage().in_flight == 4
            assert store.take(batch.key, "single", limits, 0) > 0  # all four slots held
        assert (batch.usage().in_flight, batch.usage().requests) == (0, 20)
        assert store.take(batch.key, "five", limits, 0, requests=5) == 0  # 25 fit
        assert store.take(batch.key, "one more", limits, 0) > 0
        # A batch larger than the whole budget goes, alone, in an empty window.
        alone = Budget(f"test:{time.monotonic_ns()}", Limits(requests=10, window=60), store)
        with alone.request(requests=20):
            assert alone.usage().requests == 20

    def test_a_released_slot_is_free_again(self, store_and_env):
        store, _ = store_and_env
        one = Budget(f"test:{time.monotonic_ns()}", Limits(concurrency=1), store)
        token = one.acquire()
        with pytest.raises(budget.BudgetExhausted):
            one.acquire(patience=0.1)
        one.store.release(one.key, token)
        assert one.usage().in_flight == 0
        with one.request():
            assert one.usage().in_flight == 1


class TestCrashedHolder:
    def test_a_slot_whose_holder_died_frees_itself_after_its_lease(self, store_and_env):
        store, _ = store_and_env
        limits = Limits(concurrency=1, lease=0.5)
        key = f"test:{time.monotonic_ns()}"
        assert store.take(key, "died", limits, 0) == 0  # never released
        assert store.take(key, "next", limits, 0) > 0
        wait_until(lambda: store.take(key, "next", limits, 0) == 0, timeout=10)


class TestDefaultStore:
    def test_redis_broker_means_redis_store(self, settings, redis_url):
        settings.CELERY_BROKER_URL = redis_url
        assert isinstance(budget.default_store(), RedisStore)

    def test_filesystem_broker_means_database_store(self, settings):
        settings.CELERY_BROKER_URL = "filesystem://"
        assert isinstance(budget.default_store(), DatabaseStore)
