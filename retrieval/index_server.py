"""One index process for several HTTP worker processes (`serve --workers N`).

The edge index is locked to one process. With more than one HTTP worker, that process listens on a Unix
socket (owner-only, in a private temporary folder) and every worker connects to it with `RemoteIndex`,
which has `HostedIndex`'s methods and speaks its protocol: searches that arrive together, from any
worker, are encoded as one batch; writes run in order in one writer thread; reads are answered at once.

Connections authenticate with a random key the supervisor hands its workers (multiprocessing's HMAC
challenge). A worker's `close` detaches that worker only; the process closes the index on SIGTERM or
when its parent (the supervisor) goes away.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import signal
import sys
import threading
from multiprocessing.connection import Client, Connection, Listener, wait
from typing import Any

from .embed_process import exit_with_parent
from .heap import start_settled
from .index import KnowledgeIndex, SearchCall
from .index_process import (
    _EXCLUSIVE,
    _OPS,
    _READS,
    MAX_BATCH,
    SWITCH_INTERVAL_S,
    HostedIndex,
    _answer,
    _portable,
    _Replies,
    _write_in_order,
)
from .settings import Settings
from .store import IndexMeta, StoreError

log = logging.getLogger(__name__)


class _Clients:
    """The connected workers: their connections, and a pipe that wakes the loop for a new one or to stop."""

    def __init__(self) -> None:
        self.replies: dict[Connection, _Replies] = {}
        self.incoming: queue.SimpleQueue[Connection] = queue.SimpleQueue()
        self.wake_r, self.wake_w = multiprocessing.Pipe(duplex=False)
        self.stopping = threading.Event()
        self._wake_lock = threading.Lock()

    def wake(self) -> None:
        with self._wake_lock, contextlib.suppress(OSError):
            self.wake_w.send_bytes(b"w")

    def drain(self) -> None:
        while self.wake_r.poll():
            self.wake_r.recv_bytes()
        while True:
            try:
                conn = self.incoming.get_nowait()
            except queue.Empty:
                return
            self.replies[conn] = _Replies(conn)

    def drop(self, conn: Connection) -> None:
        replies = self.replies.pop(conn, None)
        if replies is not None:
            replies.close()
        else:
            conn.close()


def _accept(listener: Listener, clients: _Clients, meta: IndexMeta) -> None:
    while not clients.stopping.is_set():
        try:
            conn = listener.accept()
        except OSError:
            if clients.stopping.is_set():
                return
            continue  # a client that failed the key challenge, or went away during it
        except Exception as exc:  # multiprocessing.AuthenticationError and the like: refuse that client only
            log.warning("refused a connection to the index: %s", exc)
            continue
        try:
            conn.send((None, False, meta))
        except OSError:
            conn.close()
            continue
        clients.incoming.put(conn)
        clients.wake()


def _serve_clients(index: KnowledgeIndex, clients: _Clients) -> None:
    """Answer every worker's calls until SIGTERM or the parent goes; writes in order in one writer thread."""
    writes: queue.SimpleQueue[Any] = queue.SimpleQueue()
    writer = threading.Thread(target=_write_each, args=(writes, index), name="index-writer", daemon=True)
    writer.start()
    try:
        while not clients.stopping.is_set():
            ready = wait([clients.wake_r, *clients.replies])
            batch: list[tuple[_Replies, Connection, Any]] = []
            for item in ready:
                if item is clients.wake_r:
                    clients.drain()
                    continue
                conn: Connection = item  # type: ignore[assignment]
                replies = clients.replies.get(conn)
                if replies is None:
                    continue
                try:
                    batch.append((replies, conn, conn.recv()))
                    while len(batch) < MAX_BATCH and conn.poll():
                        batch.append((replies, conn, conn.recv()))
                except (EOFError, OSError):
                    clients.drop(conn)
            _answer_batch(index, batch, writes, clients)
    finally:
        writes.put(None)
        writer.join()


def _answer_batch(
    index: KnowledgeIndex,
    batch: list[tuple[_Replies, Connection, Any]],
    writes: queue.SimpleQueue[Any],
    clients: _Clients,
) -> None:
    searches = [(r, call) for r, _, call in batch if call[1] == "search"]
    if searches:
        # Searches from all workers are answered together: one encoder batch.
        try:
            results: list[Any] = index.search_many([SearchCall(*call[2]) for _, call in searches])
        except Exception as exc:
            results = [exc] * len(searches)
        for (replies, (cid, _, _)), result in zip(searches, results, strict=True):
            failed = isinstance(result, Exception)
            replies.send(cid, _portable(result) if failed else result, failed)
    for replies, conn, (call_id, op, args) in batch:
        if op == "search":
            continue
        if op == "close":  # one worker leaves; the index stays open for the others
            replies.send(call_id, None)
            clients.drop(conn)
        elif op not in _OPS:
            replies.send(call_id, StoreError(f"Unknown index call {op!r}"), True)
        elif op in _READS:
            _answer(replies, index, call_id, op, args)
        else:
            done = threading.Event() if op in _EXCLUSIVE else None
            writes.put((replies, (call_id, op, args, done)))
            if done is not None:
                done.wait()


def _write_each(writes: queue.SimpleQueue[Any], index: KnowledgeIndex) -> None:
    """The writer thread: each write is answered on the connection it came from."""
    while (item := writes.get()) is not None:
        replies, call = item
        one: queue.SimpleQueue[Any] = queue.SimpleQueue()
        one.put(call)
        one.put(None)
        _write_in_order(one, index, replies)


def run_index_server(
    settings: Settings,
    address: str,
    authkey: bytes,
    ready: Connection,
    parent: int,
) -> None:
    """The index process's entry point: open the index, listen, say it is ready (or why not), serve."""
    exit_with_parent(parent)
    multiprocessing.current_process().daemon = False  # its encode workers are its own children
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    clients = _Clients()

    def stop(*_: object) -> None:
        clients.stopping.set()
        clients.wake()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the supervisor decides
    try:
        index = KnowledgeIndex(settings.model_copy(update={"encoder_process": False, "index_process": False}))
    except BaseException as exc:
        ready.send((False, _portable(exc)))
        return
    try:
        index.warm_up()
        start_settled("index opened")
        listener = Listener(address, family="AF_UNIX", authkey=authkey)
        os.chmod(address, 0o600)
    except BaseException as exc:
        index.close()
        ready.send((False, _portable(exc)))
        return
    threading.Thread(
        target=_accept, args=(listener, clients, index.meta), name="index-accept", daemon=True
    ).start()
    ready.send((True, index.meta))
    ready.close()
    try:
        _serve_clients(index, clients)
    finally:
        listener.close()
        for conn in list(clients.replies):
            clients.drop(conn)
        index.close()


class _ServerHandle:
    """Stands for the index process where HostedIndex expects its own child: a worker does not own it."""

    pid: int | None = None
    exitcode: int | None = None

    def join(self, timeout: float | None = None) -> None:
        return None

    def is_alive(self) -> bool:
        return False

    def kill(self) -> None:
        return None


class RemoteIndex(HostedIndex):
    """The shared index, reached over its Unix socket; the same methods as HostedIndex, thread-safe.

    If the index process is gone, calls fail with a StoreError (the API answers 503) and the next call
    tries to connect again.
    """

    def __init__(self, settings: Settings, address: str, authkey: bytes) -> None:
        self.address, self._authkey = address, authkey
        super().__init__(settings)

    def _start(self) -> IndexMeta:
        try:
            conn = Client(self.address, family="AF_UNIX", authkey=self._authkey)
            _, failed, meta = conn.recv()
        except (OSError, EOFError) as exc:
            raise StoreError(f"The index process cannot be reached at {self.address} ({exc})") from exc
        if failed:
            conn.close()
            raise meta
        self._serve_replies(conn, _ServerHandle())
        return meta  # type: ignore[no-any-return]


def start_index_server(
    settings: Settings, address: str, authkey: bytes
) -> multiprocessing.process.BaseProcess:
    """Start the index process and return it once it listens; raises what opening the index raised."""
    ctx = multiprocessing.get_context("spawn")
    ready_r, ready_w = ctx.Pipe(duplex=False)
    process = ctx.Process(
        target=run_index_server,
        args=(settings, address, authkey, ready_w, os.getpid()),
        name="invekto-index",
        daemon=True,
    )
    process.start()
    ready_w.close()
    try:
        while not ready_r.poll(0.5):
            if not process.is_alive():
                raise StoreError(
                    f"The index process exited with code {process.exitcode} while opening the index"
                )
        ok, value = ready_r.recv()
    except EOFError as exc:
        process.join(5)
        raise StoreError(f"The index process exited with code {process.exitcode} while opening") from exc
    if not ok:
        process.join(30)
        raise value
    return process
