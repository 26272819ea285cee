"""Parsing in a worker process with a time limit and a memory limit.

A file is parsed and chunked in a child process (started from a fork server that has the parsers imported,
so a file costs a fork, not an import). The child's address space may grow by `memory_mb` beyond its
start (RLIMIT_AS); the parent kills it once `timeout_s` have passed. A file over either limit fails alone
with a message naming the limit and the setting that raises it; the batch goes on. While the parent waits
it checks `cancelled` (the service is stopping: the child is killed and `ParseCancelled` raised, so the job
is resumed at the next start) and runs inside `idle` (the ingestion jobs let another tenant's job use the
index meanwhile).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import resource
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

MiB = 1024 * 1024
_POLL_S = 0.05
_START_S = 120.0  # a fresh fork server imports the parsers first; the time limit starts once the child runs
_PRELOAD = ["ingestion.parse_preload"]


class ParseCancelled(BaseException):  # noqa: N818 - not an error: the service is stopping
    """The service is stopping: the file was not parsed, and the job resumes at the next start."""


@dataclass(frozen=True)
class ParseLimits:
    """Limits of one file's parse; 0 means no limit. `in_process` parses in the calling process (no limits)."""

    timeout_s: float = 300.0
    memory_mb: int = 1024
    cancelled: Callable[[], bool] | None = None
    idle: Callable[[], AbstractContextManager[Any]] | None = None
    in_process: bool = False

    @classmethod
    def of(cls, settings: Any, **hooks: Any) -> ParseLimits:
        """Return the limits of `settings` (INVEKTO_PARSE_TIMEOUT_S, INVEKTO_PARSE_MEMORY_MB)."""
        return cls(settings.parse_timeout_s, settings.parse_memory_mb, **hooks)


def _context() -> Any:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def _address_space() -> int:
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    return 0


def _child(conn: Connection, memory_bytes: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    over_memory = pickle.dumps(("memory", ""))
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if memory_bytes:
        limit = _address_space() + memory_bytes
        resource.setrlimit(resource.RLIMIT_AS, (limit if hard < 0 else min(limit, hard), hard))
    conn.send_bytes(b"started")
    message = over_memory
    try:
        message = pickle.dumps(("ok", fn(*args)), protocol=pickle.HIGHEST_PROTOCOL)
    except MemoryError:
        pass
    except ValueError as exc:  # the loader's clear file errors
        message = pickle.dumps(("error", str(exc)))
    except Exception as exc:
        message = pickle.dumps(("crash", f"{type(exc).__name__}: {exc}"))
    resource.setrlimit(resource.RLIMIT_AS, (hard, hard))  # the parse is over: room to send its result
    conn.send_bytes(message)


def run_limited(fn: Callable[..., Any], args: tuple[Any, ...], *, name: str, limits: ParseLimits) -> Any:
    """Return `fn(*args)` run in a worker process within `limits`; raise ValueError naming `name` and the
    limit it went over, or `ParseCancelled`. `fn` and its arguments and result must pickle."""
    if limits.in_process:
        return fn(*args)
    with limits.idle() if limits.idle else contextlib.nullcontext():
        return _run(fn, args, name, limits)


def _run(fn: Callable[..., Any], args: tuple[Any, ...], name: str, limits: ParseLimits) -> Any:
    ctx = _context()
    parent, child = ctx.Pipe(duplex=False)
    process = ctx.Process(
        target=_child, args=(child, limits.memory_mb * MiB, fn, args), name="invekto-parse", daemon=True
    )
    process.start()
    child.close()
    try:
        if not _wait(parent, process, time.monotonic() + _START_S, limits):
            raise ValueError(f"{name}: the parser did not start within {_START_S:.0f} s")
        try:
            parent.recv_bytes()  # "started"
        except EOFError:
            process.join(5)
            raise ValueError(f"{name}: the parser could not start (exit code {process.exitcode})") from None
        deadline = time.monotonic() + limits.timeout_s if limits.timeout_s else float("inf")
        if not _wait(parent, process, deadline, limits):
            if process.is_alive():
                raise ValueError(
                    f"{name}: parsing took longer than the {limits.timeout_s:g} s limit "
                    "(INVEKTO_PARSE_TIMEOUT_S); split the file or raise the limit"
                )
            raise ValueError(_died(name, process.exitcode, limits))
        try:
            status, value = pickle.loads(parent.recv_bytes())
        except EOFError:
            process.join(5)
            raise ValueError(_died(name, process.exitcode, limits)) from None
    finally:
        if process.is_alive():
            process.kill()
        process.join(5)
        parent.close()
    if status == "ok":
        return value
    if status == "memory":
        raise ValueError(_over_memory(name, limits))
    if status == "error":
        raise ValueError(value)
    raise ValueError(f"{name}: the parser failed: {value}")


def _wait(conn: Connection, process: Any, deadline: float, limits: ParseLimits) -> bool:
    """Wait until the child sends something (True), dies or the deadline passes (False)."""
    while not conn.poll(_POLL_S):
        if limits.cancelled is not None and limits.cancelled():
            raise ParseCancelled
        if not process.is_alive():
            return conn.poll(0)
        if time.monotonic() >= deadline:
            return False
    return True


def _over_memory(name: str, limits: ParseLimits) -> str:
    return (
        f"{name}: parsing needed more than the {limits.memory_mb} MB memory limit "
        "(INVEKTO_PARSE_MEMORY_MB); split the file or raise the limit"
    )


def _died(name: str, exitcode: int | None, limits: ParseLimits) -> str:
    if exitcode is not None and exitcode < 0 and limits.memory_mb:
        # Killed by a signal: with an address-space limit, an allocation the runtime could not report.
        return _over_memory(name, limits)
    return f"{name}: the parser stopped unexpectedly (exit code {exitcode})"
