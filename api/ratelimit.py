"""Token buckets: per tenant a steady request rate with room for bursts, and per client address a
budget of failed authentications; over either, 429 + Retry-After.

In memory for one server process; `serve --workers N` shares one table of buckets between its worker
processes (`SharedRateLimiter`, in shared memory), so N workers enforce one limit.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RateLimit:
    """`rate` requests per second on average, up to `burst` at once; rate 0 turns limiting off."""

    rate: float = 20.0
    burst: int = 40

    def __post_init__(self) -> None:
        if self.rate < 0 or self.burst < 1:
            raise ValueError("rate limit: rate must be >= 0 and burst >= 1")

    @property
    def enabled(self) -> bool:
        return self.rate > 0


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token bucket per key (the tenant id); thread-safe."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def waiting(self, key: str) -> float:
        """Return the seconds `key` must wait before a token is free (0.0: one is), taking nothing."""
        if not self.limit.enabled:
            return 0.0
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                return 0.0
            tokens = min(self.limit.burst, bucket.tokens + (self._clock() - bucket.updated) * self.limit.rate)
            return 0.0 if tokens >= 1 else (1 - tokens) / self.limit.rate

    def acquire(self, key: str, cost: float = 1.0) -> float:
        """Take `cost` tokens and return 0.0, or return the seconds to wait before retrying (nothing taken)."""
        if not self.limit.enabled:
            return 0.0
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(float(self.limit.burst), now)
            bucket.tokens = min(self.limit.burst, bucket.tokens + (now - bucket.updated) * self.limit.rate)
            bucket.updated = now
            if bucket.tokens >= cost:
                bucket.tokens -= cost
                return 0.0
            return (cost - bucket.tokens) / self.limit.rate


# Requests with a wrong API key or admin token, per client address: 20 at once, then one every 5 s.
# Past that, every request from the address that carries a key is refused (429) until the bucket
# refills, so guessing keys gets nowhere and a valid guess is not even looked at.
AUTH_FAILURES = RateLimit(rate=0.2, burst=20)


def retry_after_header(wait_s: float) -> str:
    """Return a Retry-After value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(wait_s)))


@dataclass(frozen=True)
class SharedBuckets:
    """What a worker process needs to attach to a SharedRateLimiter (picklable: passed at spawn)."""

    name: str
    slots: int
    limit: RateLimit
    lock: Any


class SharedRateLimiter:
    """RateLimiter's token buckets in shared memory: one table for every worker of `serve --workers N`.

    A fixed table of `slots` buckets (key hash, tokens, last update), found by linear probing from the
    key's hash (blake2b: the same in every process) and guarded by one cross-process lock; an operation
    takes microseconds and never waits for the index. A new key takes the first empty slot among its
    probes, or one idle long enough that its bucket is full anyway, or else the one updated longest ago
    (that key then starts again with a full bucket: a lenient error that needs more than the table's
    share of keys active at once).
    """

    SLOTS = 8192
    PROBES = 16

    def __init__(self, buckets: SharedBuckets, shm: Any, owner: bool) -> None:
        import numpy as np

        self.limit, self.buckets, self._lock = buckets.limit, buckets, buckets.lock
        self._shm, self._owner = shm, owner
        n = buckets.slots
        self._keys = np.ndarray((n,), dtype=np.int64, buffer=shm.buf, offset=0)
        self._tokens = np.ndarray((n,), dtype=np.float64, buffer=shm.buf, offset=8 * n)
        self._updated = np.ndarray((n,), dtype=np.float64, buffer=shm.buf, offset=16 * n)

    @classmethod
    def create(cls, limit: RateLimit, lock: Any, slots: int = SLOTS) -> SharedRateLimiter:
        """Make the table (the supervisor does, before its workers start); `lock`: a multiprocessing Lock."""
        from multiprocessing import shared_memory

        shm = shared_memory.SharedMemory(create=True, size=24 * slots)  # zero-filled: every slot empty
        return cls(SharedBuckets(shm.name, slots, limit, lock), shm, owner=True)

    @classmethod
    def attach(cls, buckets: SharedBuckets) -> SharedRateLimiter:
        """Use the table a supervisor made (in a worker process)."""
        from multiprocessing import shared_memory

        # A spawned worker shares its supervisor's resource tracker, which removes the table only if the
        # supervisor exits without closing it.
        return cls(buckets, shared_memory.SharedMemory(name=buckets.name), owner=False)

    def _slot(self, key: str, now: float, insert: bool = True) -> int:
        digest = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little", signed=True)
        digest = digest or 1
        n = len(self._keys)
        probed = [(digest + i) % n for i in range(min(self.PROBES, n))]
        for slot in probed:
            if self._keys[slot] == digest:
                return slot
        if not insert:
            return -1
        idle = self.limit.burst / self.limit.rate
        free = [s for s in probed if self._keys[s] == 0 or now - self._updated[s] > idle]
        slot = free[0] if free else min(probed, key=lambda s: float(self._updated[s]))
        self._keys[slot] = digest
        self._tokens[slot] = float(self.limit.burst)
        self._updated[slot] = now
        return slot

    def waiting(self, key: str) -> float:
        """Return the seconds `key` must wait before a token is free (0.0: one is), taking nothing."""
        if not self.limit.enabled:
            return 0.0
        now = time.monotonic()
        with self._lock:
            slot = self._slot(key, now, insert=False)
            if slot < 0:
                return 0.0  # no bucket yet: a full one
            tokens = min(self.limit.burst, self._tokens[slot] + (now - self._updated[slot]) * self.limit.rate)
        return 0.0 if tokens >= 1 else float((1 - tokens) / self.limit.rate)

    def acquire(self, key: str, cost: float = 1.0) -> float:
        """Take `cost` tokens and return 0.0, or return the seconds to wait before retrying (nothing taken)."""
        if not self.limit.enabled:
            return 0.0
        now = time.monotonic()
        with self._lock:
            slot = self._slot(key, now)
            tokens = min(self.limit.burst, self._tokens[slot] + (now - self._updated[slot]) * self.limit.rate)
            self._updated[slot] = now
            if tokens >= cost:
                self._tokens[slot] = tokens - cost
                return 0.0
            self._tokens[slot] = tokens
            return float((cost - tokens) / self.limit.rate)

    def close(self) -> None:
        """Detach; the supervisor's close also removes the table."""
        del self._keys, self._tokens, self._updated
        self._shm.close()
        if self._owner:
            self._shm.unlink()
