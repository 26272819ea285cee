"""The rate limit `serve --workers N` shares between its worker processes: one bucket per key whichever
process takes from it, buckets that refill with time, and a full table that stays correct for the keys it
holds."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator

import pytest

from api.ratelimit import RateLimit, SharedBuckets, SharedRateLimiter


@pytest.fixture
def limiter() -> Iterator[SharedRateLimiter]:
    table = SharedRateLimiter.create(
        RateLimit(rate=0.001, burst=5), multiprocessing.get_context("spawn").Lock()
    )
    yield table
    table.close()


def _take(buckets: SharedBuckets, key: str, times: int, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    table = SharedRateLimiter.attach(buckets)
    out.put([table.acquire(key) for _ in range(times)])
    table.close()


def test_one_bucket_per_key_across_processes(limiter: SharedRateLimiter) -> None:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    worker = ctx.Process(target=_take, args=(limiter.buckets, "acme", 3, out))
    worker.start()
    assert out.get(timeout=60) == [0.0, 0.0, 0.0]
    worker.join(30)
    # The other process took three of five: two are left here, then the caller must wait.
    assert [limiter.acquire("acme") for _ in range(3)][:2] == [0.0, 0.0]
    assert limiter.waiting("acme") > 0
    assert limiter.acquire("other") == 0.0  # another tenant has its own bucket


def test_buckets_refill_with_time() -> None:
    ctx = multiprocessing.get_context("spawn")
    table = SharedRateLimiter.create(RateLimit(rate=50.0, burst=2), ctx.Lock())
    try:
        assert table.acquire("acme") == 0.0 and table.acquire("acme") == 0.0
        wait = table.acquire("acme")
        assert 0 < wait <= 0.02 + 1e-9
        import time

        time.sleep(wait + 0.01)
        assert table.acquire("acme") == 0.0
    finally:
        table.close()


def test_a_full_table_keeps_the_buckets_it_holds() -> None:
    ctx = multiprocessing.get_context("spawn")
    table = SharedRateLimiter.create(RateLimit(rate=0.001, burst=2), ctx.Lock(), slots=4)
    try:
        keys = [f"tenant-{n}" for n in range(4)]
        for key in keys:  # four keys fill four slots, each bucket emptied
            table.acquire(key)
            table.acquire(key)
        assert all(table.waiting(key) > 0 for key in keys)
        # A fifth key takes the slot used longest ago; the others keep their empty buckets.
        assert table.acquire("tenant-new") == 0.0
        assert sum(table.waiting(key) > 0 for key in keys) == 3
    finally:
        table.close()


def test_no_limit_means_no_table_lookups(limiter: SharedRateLimiter) -> None:
    ctx = multiprocessing.get_context("spawn")
    off = SharedRateLimiter.create(RateLimit(rate=0, burst=1), ctx.Lock())
    try:
        assert all(off.acquire("acme") == 0.0 for _ in range(10))
        assert off.waiting("acme") == 0.0
    finally:
        off.close()
