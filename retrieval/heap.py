"""A long-running process's long-lived objects, kept out of the garbage collector's full passes.

CPython's full (generation 2) collection walks every container object the process holds. In `serve` that
is the tenants' vocabularies, the self-test's rows, the encoder's tables: hundreds of thousands of
objects that live as long as the process. Under load, objects of the requests in flight keep reaching
the oldest generation, so a full pass came every ~2 s and held the GIL 110–160 ms each time (the HTTP
process at 10k chunks, 32 clients back to back): every request in flight waited for it.

A server process calls `start_settled()` once its startup is done, and `settle_if_server()` runs where
more such state has just been built (a tenant's knowledge derived); other processes (the CLI, eval,
tests) are left as they are. Settling collects once and moves every object alive into the permanent
generation, which full passes skip. Objects that die later are still freed by their reference counts; only garbage in reference
cycles among them waits for the next `settle()`, which unfreezes first, so nothing piles up across
changes.
"""

from __future__ import annotations

import gc
import logging
import threading
import time

log = logging.getLogger(__name__)

_lock = threading.Lock()
_server = False


def settle(reason: str) -> float:
    """Collect, then keep every object alive now out of full collections; return the seconds it took."""
    with _lock:
        began = time.perf_counter()
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        took = time.perf_counter() - began
    log.debug(
        "heap settled (%s): %d objects kept out of full collections, %.0f ms",
        reason,
        gc.get_freeze_count(),
        took * 1000,
    )
    return took


def start_settled(reason: str) -> float:
    """Mark this process a long-running server and settle its heap now."""
    global _server
    _server = True
    return settle(reason)


def settle_if_server(reason: str) -> float | None:
    """Settle the heap if this process is a server (`start_settled`); return the seconds, or None."""
    return settle(reason) if _server else None
