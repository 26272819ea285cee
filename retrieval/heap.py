"""A long-running process's long-lived objects, kept out of the garbage collector's full passes.

CPython's full (generation 2) collection walks every container object the process holds. In `serve` that
is the tenants' vocabularies, the self-test's rows, the encoder's tables: hundreds of thousands of
objects that live as long as the process. Under load, objects of the requests in flight keep reaching
the oldest generation, so a full pass came every ~2 s and held the GIL 110–160 ms each time (the HTTP
process at 10k chunks, 32 clients back to back): every request in flight waited for it.

A server process calls `start_settled()` once its startup is done, and `settle_if_server()` runs where
more such state has just been built (a tenant's knowledge derived; at most every MIN_SETTLE_INTERVAL_S);
other processes (the CLI, eval, tests) are left as they are. Settling collects once and moves every
object alive into the permanent generation, which full passes skip. Objects that die later are still
freed by their reference counts; only garbage in reference cycles among them waits for the next
`settle()`, which unfreezes first, so nothing piles up across changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import threading
import time
from collections.abc import Callable
from functools import cache

log = logging.getLogger(__name__)

# A settle is itself a full collection with the GIL held (about 130 ms beside a 10k-chunk tenant). When
# knowledge changes often (feedback arriving for many tenants), a server settles at most this often; a
# change within the interval is settled once, when it has passed.
MIN_SETTLE_INTERVAL_S = 10.0

_lock = threading.RLock()
_server = False
_last = float("-inf")  # time.monotonic() of the last settle
_deferred: threading.Timer | None = None


def settle(reason: str) -> float:
    """Collect, then keep every object alive now out of full collections; return the seconds it took."""
    global _last
    with _lock:
        began = time.perf_counter()
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        release_free_memory()
        took = time.perf_counter() - began
        _last = time.monotonic()
    log.debug(
        "heap settled (%s): %d objects kept out of full collections, %.0f ms",
        reason,
        gc.get_freeze_count(),
        took * 1000,
    )
    return took


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to call
        return None
    if trim is not None:
        trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim  # type: ignore[no-any-return]


def release_free_memory() -> bool:
    """Give the memory the C allocator holds free back to the system (glibc's malloc_trim); return
    whether it could be asked. Memory freed after building a tenant's knowledge stays in the allocator's
    arenas otherwise, counted in the process's RSS (about 30 MB after a 10k-chunk tenant). The call
    leaves the GIL free while it walks the arenas."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def start_settled(reason: str) -> float:
    """Mark this process a long-running server and settle its heap now."""
    global _server
    _server = True
    return settle(reason)


def settle_if_server(reason: str) -> float | None:
    """Settle the heap if this process is a server (`start_settled`): now, or once MIN_SETTLE_INTERVAL_S
    has passed since the last settle. Return the seconds it took now, or None."""
    global _deferred
    if not _server:
        return None
    with _lock:
        wait = _last + MIN_SETTLE_INTERVAL_S - time.monotonic()
        if wait > 0:
            if _deferred is None:
                _deferred = threading.Timer(wait, _settle_deferred, args=(reason,))
                _deferred.daemon = True
                _deferred.start()
            return None
        return settle(reason)


def _settle_deferred(reason: str) -> None:
    global _deferred
    with _lock:
        _deferred = None
        settle(f"{reason} (deferred)")
