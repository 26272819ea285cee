"""Token buckets: per tenant a steady request rate with room for bursts, and per client address a
budget of failed authentications; over either, 429 + Retry-After.

In memory, which is right for the one-process server the edge index requires; behind several processes
(the Qdrant server backend) each enforces its own share.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


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
