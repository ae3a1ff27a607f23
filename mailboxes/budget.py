"""Request budgets shared by every worker process on every host.

A service such as Exchange Online counts, per application and mailbox, the requests in flight,
the requests in a window and the bytes imported in a window, and answers 429 beyond them. A
per-process semaphore lets N workers send N times what is allowed; a budget keeps the count where
all workers see it: in Redis when the broker is Redis, in the database otherwise.

A granted request holds a slot (a batch several) until it ends, or until its lease runs out when
the process holding it died. The windows are sliding, kept as forty buckets each, so a burst at
a window's edge is not counted twice. A bucket counts until a whole window and one more bucket
have passed since its end: a request leaves our count at least a bucket after it leaves the
service's exact window (which starts when it arrives there, a little after we counted it), so
what we send never meets a window the service still sees full. That costs at most two buckets,
5 % of the window.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction

from .models import BudgetState

BUCKETS_PER_WINDOW = 40
# A slot whose holder died frees itself after this long; longer than any one request may take.
SLOT_LEASE_SECONDS = 360.0
# How long a refused caller waits before it asks again when a slot, not a window, is the limit.
SLOT_POLL_SECONDS = 0.02


@dataclass(frozen=True)
class Limits:
    """What one key may use; 0 means no limit of that kind."""

    concurrency: int = 0
    requests: int = 0
    bytes: int = 0
    window: float = 600.0
    # How long a slot outlives a holder that died; 0: SLOT_LEASE_SECONDS.
    lease: float = 0.0

    @property
    def bucket(self) -> float:
        return self.window / BUCKETS_PER_WINDOW


@dataclass(frozen=True)
class Usage:
    in_flight: int
    requests: int
    bytes: int

    def fraction_of(self, limits: Limits) -> float:
        """The most used of the three, as 0.0–1.0: what keeps the next request waiting."""
        pairs = [
            (self.in_flight, limits.concurrency),
            (self.requests, limits.requests),
            (self.bytes, limits.bytes),
        ]
        return max([used / limit for used, limit in pairs if limit] or [0.0])


class BudgetExhausted(Exception):
    """No slot came free within the caller's patience; ``wait``: what the budget last said."""

    def __init__(self, message: str, wait: float = 0.0):
        super().__init__(message)
        self.wait = wait


class Budget:
    """One key's budget, e.g. ``graph:<tenant>:<app>:<mailbox>``."""

    def __init__(self, key: str, limits: Limits, store=None):
        self.key = key
        self.limits = limits
        self.store = store or default_store()

    @contextmanager
    def request(self, size: int = 0, patience: float = 3600.0, requests: int = 1, slots: int = 1):
        """Hold a request's slot for the ``with`` block, counting ``size`` bytes; a batch counts
        ``requests`` requests and holds ``slots`` slots (as many as the service runs at once)."""
        slots = self._slots(slots)
        token = self.acquire(size, patience, requests, slots)
        try:
            yield
        finally:
            self.store.release(self.key, token, slots)

    def _slots(self, slots: int) -> int:
        return min(slots, self.limits.concurrency) if self.limits.concurrency else slots

    def acquire(self, size=0, patience=3600.0, requests: int = 1, slots: int = 1) -> str:
        token = uuid.uuid4().hex
        slots = self._slots(slots)
        deadline = time.monotonic() + patience
        while True:
            wait = self.store.take(self.key, token, self.limits, size, requests, slots)
            if wait <= 0:
                return token
            if time.monotonic() + wait > deadline:
                raise BudgetExhausted(
                    f"No request budget for {self.key} within {patience:.0f} s", wait
                )
            time.sleep(wait)

    def usage(self) -> Usage:
        return self.store.usage(self.key, self.limits)


def _bucket_index(now: float, limits: Limits) -> int:
    return math.floor(now / limits.bucket)


def _oldest_bucket(now: float, limits: Limits) -> int:
    """The oldest bucket still counted: one whose end is less than a window and a bucket ago."""
    return _bucket_index(now, limits) - BUCKETS_PER_WINDOW - 1


def _decide(now, slots: dict, buckets: dict, limits: Limits, size: int, requests=1, taken=1):
    """0 when a request of ``size`` bytes (``requests`` requests holding ``taken`` slots) may
    start now, else the seconds to wait. Drops what has expired from ``slots`` and ``buckets``
    (both changed in place)."""
    for token, expires in list(slots.items()):
        if expires <= now:
            del slots[token]
    oldest = _oldest_bucket(now, limits)
    for index in [i for i in buckets if int(i) < oldest]:
        del buckets[index]
    if limits.concurrency and len(slots) + taken > limits.concurrency:
        return SLOT_POLL_SECONDS
    used = sum(counts[0] for counts in buckets.values())
    used_bytes = sum(counts[1] for counts in buckets.values())
    # A batch or an item larger than the whole budget still goes, alone, in an empty window.
    over_requests = limits.requests and used and used + requests > limits.requests
    over_bytes = limits.bytes and used_bytes and used_bytes + size > limits.bytes
    if over_requests or over_bytes:
        first = min(int(i) for i in buckets)
        return max((first + BUCKETS_PER_WINDOW + 2) * limits.bucket - now, SLOT_POLL_SECONDS)
    return 0.0


@contextmanager
def _locked():
    """A transaction, serialised by a row lock (PostgreSQL) or by SQLite's single writer
    (IMMEDIATE transactions, see settings). A thread other than the main one (a connector's
    request pool, which comes and goes with each connector) closes its connection after, or
    every pool thread of every worker would keep one open, past PostgreSQL's max_connections."""
    try:
        with transaction.atomic():
            yield
    finally:
        pool_thread = threading.current_thread() is not threading.main_thread()
        if pool_thread and not connection.in_atomic_block:
            connection.close()


class DatabaseStore:
    def take(self, key, token, limits: Limits, size: int, requests=1, slots=1) -> float:
        with _locked():
            state, _ = BudgetState.objects.select_for_update().get_or_create(key=key)
            now = time.time()
            wait = _decide(now, state.slots, state.buckets, limits, size, requests, slots)
            if not wait:
                for member in _members(token, slots):
                    state.slots[member] = now + (limits.lease or SLOT_LEASE_SECONDS)
                counts = state.buckets.setdefault(str(_bucket_index(now, limits)), [0, 0])
                counts[0] += requests
                counts[1] += size
            state.save()
        return wait

    def release(self, key, token, slots=1) -> None:
        with _locked():
            state = BudgetState.objects.select_for_update().filter(key=key).first()
            freed = [state.slots.pop(m, None) for m in _members(token, slots)] if state else []
            if any(expires is not None for expires in freed):
                state.save(update_fields=["slots"])

    def usage(self, key, limits: Limits) -> Usage:
        state = BudgetState.objects.filter(key=key).first()
        if not state:
            return Usage(0, 0, 0)
        _decide(time.time(), state.slots, state.buckets, limits, 0)
        return _usage(state.slots, state.buckets)


def _members(token: str, slots: int) -> list[str]:
    """The slot entries one grant holds: the token itself, or one per slot of a batch."""
    return [token] if slots == 1 else [f"{token}.{n}" for n in range(slots)]


def _usage(slots: dict, buckets: dict) -> Usage:
    return Usage(
        in_flight=len(slots),
        requests=sum(int(c[0]) for c in buckets.values()),
        bytes=sum(int(c[1]) for c in buckets.values()),
    )


# The same decision as _decide, atomically in Redis, on Redis's clock so that hosts agree.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local concurrency, requests, bytes = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local bucket, size, lease = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local n, poll = tonumber(ARGV[8]), tonumber(ARGV[9])
local cost, taken = tonumber(ARGV[10]), tonumber(ARGV[11])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local current = math.floor(now / bucket)
local oldest = current - n - 1
local used_requests, used_bytes, first = 0, 0, nil
local fields = redis.call('HGETALL', KEYS[2])
for i = 1, #fields, 2 do
  local index = tonumber(fields[i])
  if index < oldest then
    redis.call('HDEL', KEYS[2], fields[i])
    redis.call('HDEL', KEYS[3], fields[i])
  else
    used_requests = used_requests + tonumber(fields[i + 1])
    used_bytes = used_bytes + tonumber(redis.call('HGET', KEYS[3], fields[i]) or '0')
    if not first or index < first then first = index end
  end
end
if concurrency > 0 and redis.call('ZCARD', KEYS[1]) + taken > concurrency then
  return tostring(poll)
end
local over = (requests > 0 and used_requests > 0 and used_requests + cost > requests)
over = over or (bytes > 0 and used_bytes > 0 and used_bytes + size > bytes)
if over then return tostring(math.max((first + n + 2) * bucket - now, poll)) end
for k = 12, #ARGV do redis.call('ZADD', KEYS[1], now + lease, ARGV[k]) end
redis.call('HINCRBY', KEYS[2], current, cost)
redis.call('HINCRBY', KEYS[3], current, size)
local ttl = math.ceil(bucket * (n + 2) + lease)
for k = 1, 3 do redis.call('EXPIRE', KEYS[k], ttl) end
return '0'
"""


class RedisStore:
    def __init__(self, url: str):
        import redis

        self.client = redis.Redis.from_url(url)
        self._take = self.client.register_script(_TAKE)

    @staticmethod
    def _keys(key):
        return [f"budget:{key}:slots", f"budget:{key}:requests", f"budget:{key}:bytes"]

    def take(self, key, token, limits: Limits, size: int, requests=1, slots=1) -> float:
        arguments = [token, limits.concurrency, limits.requests, limits.bytes, limits.bucket]
        arguments += [size, limits.lease or SLOT_LEASE_SECONDS, BUCKETS_PER_WINDOW]
        arguments += [SLOT_POLL_SECONDS, requests, slots, *_members(token, slots)]
        return float(self._take(keys=self._keys(key), args=arguments))

    def release(self, key, token, slots=1) -> None:
        self.client.zrem(self._keys(key)[0], *_members(token, slots))

    def usage(self, key, limits: Limits) -> Usage:
        slots_key, requests_key, bytes_key = self._keys(key)
        seconds, micros = self.client.time()
        now = seconds + micros / 1e6
        oldest = _oldest_bucket(now, limits)
        requests = self.client.hgetall(requests_key)
        sizes = self.client.hgetall(bytes_key)
        live = [index for index in requests if int(index) >= oldest]
        return Usage(
            in_flight=self.client.zcount(slots_key, now, "+inf"),
            requests=sum(int(requests[i]) for i in live),
            bytes=sum(int(sizes.get(i, 0)) for i in live),
        )


_stores: dict[str, object] = {}


def default_store():
    """Redis when the broker is Redis (every worker already reaches it), else the database."""
    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://")):
        return _stores.setdefault("db", DatabaseStore())
    if url not in _stores:
        _stores[url] = RedisStore(url)
    return _stores[url]
