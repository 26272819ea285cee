"""The knowledge index in a child process: the server process keeps HTTP and assist, the child encodes and searches.

The HTTP server is bound by Python's GIL, and query encoding plus the engine query (the Qdrant Edge
binding holds the GIL) were half of a suggest request's GIL time. `HostedIndex` runs a `KnowledgeIndex`
in one child process (it owns the edge shard and its lock) and forwards every call over a pipe, so that
work runs on the second core. Searches that arrive together are answered together: their queries are
encoded as one batch (`KnowledgeIndex.search_many`), which costs far less per query than one by one.
Writes run in order in a writer thread of the child, so searches are answered while chunks are encoded
(`bench soak`: searches during 1k-chunk jobs at 20k points, p99 890 -> 124 ms). The engine holds the GIL
while it optimises, so `maintain` builds the HNSW index aside (EdgeStore.optimize_aside: a copy optimised
in a process of its own, swapped in when built): searches go on meanwhile, and so do later writes.

The child is started with `spawn` (never fork a process that runs threads) and exits with its parent.
If it dies, the calls in flight fail with a StoreError (the API answers 503) and the next call starts a
new one; writes are idempotent by point id, so an ingestion job that failed this way can simply be rerun.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import pickle
import queue
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from multiprocessing.connection import Connection
from typing import Any

from .embed_process import exit_with_parent
from .heap import start_settled
from .index import EncodingAhead, KnowledgeIndex, QueryOptions, SearchCall
from .models import Chunk, SearchFilters, SearchHit, SearchResult
from .settings import Settings
from .store import IndexMeta, StoreError

log = logging.getLogger(__name__)

# Searches answered in one batch at most (the encoder's batches stop getting cheaper per query past this).
MAX_BATCH = 16
# Calls the child may run besides search (a whitelist: the pipe is not a general RPC).
_OPS = frozenset(
    {
        "upsert",
        "delete_document",
        "delete_stale",
        "delete_tenant",
        "chunks",
        "count",
        "maintain",
        "compact",
        "store_info",
    }
)
# Calls answered at once, beside the writer thread (every other call in _OPS is a write).
_READS = frozenset({"chunks", "count", "store_info"})
# Writes during which nothing else runs: compact closes the shard and opens its rewritten copy.
_EXCLUSIVE = frozenset({"compact"})
# Chunks per write call to the child: each engine write (it holds the GIL) stays short and progress is
# reported per step. Before writes had a thread of their own, a search waited for one such batch to be
# encoded (long passages: 64 chunks, searches waited p50 844 ms; 16 chunks, 212 ms).
WRITE_STEP = 16
_READY_POLL_S = 0.5
SWITCH_INTERVAL_S = 0.001
_CLOSE_TIMEOUT_S = 30.0
# How long closing waits for the reply reader to leave the connection it is about to close.
_READER_EXIT_S = 10.0


# ----- the child -----


def release(conn: Connection, reader: threading.Thread | None) -> None:
    """Close `conn` once the thread reading it has stopped.

    Closing a connection another thread is still reading frees its file descriptor while that thread
    can still read it: the next socket opened in this process takes the same number, and the old
    reader swallows its first bytes (a new connection then fails its handshake). So the reader is
    woken first (shutdown ends its read, the descriptor stays reserved), and the descriptor is freed
    only after it has gone.
    """
    if reader is not None and reader is not threading.current_thread():
        try:
            with socket.socket(fileno=os.dup(conn.fileno())) as sock:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed, or not a socket: the reader has seen the end
        reader.join(_READER_EXIT_S)
        if reader.is_alive():
            log.warning("the index reply reader did not stop; its connection is left open")
            return
    conn.close()


def _portable(exc: BaseException) -> Exception:
    """Return `exc` if it survives pickling, else a StoreError that names it."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return StoreError(f"{type(exc).__name__}: {exc}")
    return exc if isinstance(exc, Exception) else StoreError(f"{type(exc).__name__}: {exc}")


class _Replies:
    """Sends answers back to the parent from the reading loop and the writer thread, one at a time."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def send(self, call_id: int, value: Any, failed: bool = False) -> None:
        with self._lock:
            try:
                self._conn.send((call_id, failed, value))
            except (pickle.PicklingError, TypeError, AttributeError) as exc:
                self._conn.send((call_id, True, StoreError(f"The index could not send its answer: {exc}")))
            except OSError:
                pass  # the parent is gone; the reading loop sees it too and stops

    def close(self) -> None:
        """Close the connection between answers: one being sent is finished first, later ones fail
        quietly (a descriptor freed during a send could be taken by a new connection and get the rest)."""
        with self._lock:
            self._conn.close()


def _run(index: KnowledgeIndex, op: str, args: tuple[Any, ...]) -> Any:
    if op == "store_info":
        info: Callable[[], dict[str, Any]] = getattr(index.store, "info", dict)
        return {"backend": index.store.backend, **info()}
    return getattr(index, op)(*args)


def _answer(replies: _Replies, index: KnowledgeIndex, call_id: int, op: str, args: tuple[Any, ...]) -> None:
    try:
        replies.send(call_id, _run(index, op, args))
    except Exception as exc:
        replies.send(call_id, _portable(exc), True)


def _maintain(replies: _Replies, index: KnowledgeIndex, call_id: int) -> None:
    """Start maintain() and answer when its build is swapped in; the writer goes on with the next writes
    meanwhile (they are replayed onto the built copy)."""
    try:
        future = index.maintain_async()
    except Exception as exc:
        replies.send(call_id, _portable(exc), True)
        return

    def answer(f: Future[bool]) -> None:
        error = f.exception()
        replies.send(call_id, _portable(error) if error else f.result(), error is not None)

    future.add_done_callback(answer)


def _write_in_order(writes: queue.SimpleQueue[Any], index: KnowledgeIndex, replies: _Replies) -> None:
    while (call := writes.get()) is not None:
        call_id, op, args, done = call
        if op == "maintain":
            _maintain(replies, index, call_id)
        else:
            _answer(replies, index, call_id, op, args)
        if done is not None:
            done.set()


def _serve(conn: Connection, index: KnowledgeIndex) -> None:
    """Answer calls until the parent closes the index or goes away.

    Writes (encoding and storing chunks, deletes, maintain) run one after another in a writer thread, in
    the order they came; searches and reads are answered here meanwhile. Encoding spends most of its time
    in numpy, which releases the GIL, so a search no longer waits for a whole write batch to be encoded;
    maintain only starts a build aside, answered when it is swapped in.
    """
    replies = _Replies(conn)
    writes: queue.SimpleQueue[Any] = queue.SimpleQueue()
    writer = threading.Thread(
        target=_write_in_order, args=(writes, index, replies), name="index-writer", daemon=True
    )
    writer.start()
    closing = None
    try:
        closing = _read_calls(conn, index, replies, writes)
    finally:
        writes.put(None)  # the writes already sent are finished before the index closes
        writer.join()
    if closing is not None:
        replies.send(closing, None)


def _read_calls(
    conn: Connection, index: KnowledgeIndex, replies: _Replies, writes: queue.SimpleQueue[Any]
) -> int | None:
    """Answer searches and reads, hand writes to the writer; return the id of the close call, or None
    when the parent is gone."""
    while True:
        try:
            batch = [conn.recv()]
            while len(batch) < MAX_BATCH and conn.poll():
                batch.append(conn.recv())
        except (EOFError, OSError):
            return None  # the parent is gone
        i = 0
        while i < len(batch):
            call_id, op, args = batch[i]
            if op == "search":
                # Consecutive searches are answered together.
                j = i
                while j < len(batch) and batch[j][1] == "search":
                    j += 1
                group = batch[i:j]
                try:
                    results: list[Any] = index.search_many([SearchCall(*a) for _, _, a in group])
                except Exception as exc:  # e.g. the encoder failed on the batch: every call hears why
                    results = [exc] * len(group)
                for (cid, _, _), result in zip(group, results, strict=True):
                    failed = isinstance(result, Exception)
                    replies.send(cid, _portable(result) if failed else result, failed)
                i = j
                continue
            i += 1
            if op == "close":
                return int(call_id)
            if op not in _OPS:
                replies.send(call_id, StoreError(f"Unknown index call {op!r}"), True)
            elif op in _READS:
                _answer(replies, index, call_id, op, args)
            else:
                done = threading.Event() if op in _EXCLUSIVE else None
                writes.put((call_id, op, args, done))
                if done is not None:
                    done.wait()  # no search meanwhile: it would use the shard being swapped


def _host(conn: Connection, settings: Settings, parent: int) -> None:
    """The child's entry point: open the index, say it is ready (or why not), answer calls."""
    exit_with_parent(parent)
    # Started as a daemon (the server never waits for it at exit), which multiprocessing forbids to have
    # children; its encode workers (EncodePool) are its own, and they exit with it (exit_with_parent).
    multiprocessing.current_process().daemon = False
    # The writer thread's encoder takes the GIL back after every numpy call; with a search thread busy
    # beside it, the default 5 ms switch interval made it wait each time (96 passages encoded beside
    # back-to-back searches: 18.5 s at 5 ms, 11.8 s at 1 ms, with more searches answered meanwhile).
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        index = KnowledgeIndex(settings.model_copy(update={"encoder_process": False, "index_process": False}))
    except BaseException as exc:
        conn.send((None, True, _portable(exc)))
        return
    try:
        index.warm_up()
        start_settled("index opened")
        conn.send((None, False, index.meta))
        _serve(conn, index)
    finally:
        index.close()
        conn.close()


# ----- the server process's side -----


class HostedIndex:
    """A KnowledgeIndex in a child process, with the same methods; thread-safe.

    Opening raises what opening a KnowledgeIndex raises (StoreError for an index in use or damaged,
    EmbedderError for an unknown model).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._closed = False
        self._dead: str | None = None
        self._conn: Connection | None = None
        self._reader: threading.Thread | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self._pending: dict[int, Future[Any]] = {}
        self.meta: IndexMeta = self._start()

    @property
    def encodes_aside(self) -> bool:
        """True: the child process encodes what is written (see KnowledgeIndex.encodes_aside)."""
        return True

    @property
    def pid(self) -> int | None:
        """The child's process id (for memory reports and tests)."""
        return self._process.pid if self._process is not None else None

    def _start(self) -> IndexMeta:
        ctx = multiprocessing.get_context("spawn")
        conn, child_conn = ctx.Pipe()
        process = ctx.Process(
            target=_host, args=(child_conn, self.settings, os.getpid()), name="invekto-index", daemon=True
        )
        process.start()
        child_conn.close()
        try:
            while not conn.poll(_READY_POLL_S):
                if not process.is_alive():
                    raise StoreError(
                        f"The index process exited with code {process.exitcode} while opening the index"
                    )
            _, failed, value = conn.recv()
        except (EOFError, OSError) as exc:
            process.join(5)
            raise StoreError(f"The index process exited with code {process.exitcode} while opening") from exc
        except BaseException:
            process.kill()
            raise
        if failed:
            process.join(_CLOSE_TIMEOUT_S)
            conn.close()
            raise value
        self._serve_replies(conn, process)
        return value  # type: ignore[no-any-return]

    def _serve_replies(self, conn: Connection, process: Any) -> None:
        """Make `conn` (to `process`) the live connection and start the thread that reads its replies."""
        pending: dict[int, Future[Any]] = {}
        self._conn, self._process, self._pending, self._dead = conn, process, pending, None
        self._reader = threading.Thread(
            target=self._read, args=(conn, process, pending), name="index-replies", daemon=True
        )
        self._reader.start()

    def _read(self, conn: Connection, process: Any, pending: dict[int, Future[Any]]) -> None:
        # Hands each answer to the thread waiting for it; when the child goes, fails what it left.
        try:
            while True:
                call_id, failed, value = conn.recv()
                future = pending.pop(call_id, None)
                if future is None:
                    continue
                if failed:
                    future.set_exception(value)
                else:
                    future.set_result(value)
        except (EOFError, OSError):
            pass
        process.join(5)
        reason = f"The index process exited (code {process.exitcode}) during the call"
        with self._lock:
            if self._conn is conn:
                self._dead = reason
                if not self._closed:
                    log.error("%s; it starts again on the next call", reason)
            left = list(pending.items())
            pending.clear()
        for _, future in left:
            future.set_exception(StoreError(f"{reason}; retry the request"))

    def _submit(self, op: str, *args: Any) -> Future[Any]:
        with self._lock:
            if self._closed:
                raise StoreError("The index is closed")
            if self._dead is not None:
                self._restart()
            return self._send(op, args)

    def _send(self, op: str, args: tuple[Any, ...]) -> Future[Any]:
        # Called with the lock held: the reply finds its future by call id.
        assert self._conn is not None
        future: Future[Any] = Future()
        call_id = next(self._ids)
        self._pending[call_id] = future
        try:
            self._conn.send((call_id, op, args))
        except (OSError, ValueError) as exc:
            self._pending.pop(call_id, None)
            raise StoreError(f"The index process cannot be reached ({exc}); retry the request") from exc
        return future

    def _call(self, op: str, *args: Any) -> Any:
        return self._submit(op, *args).result()

    def _restart(self) -> None:
        # Called with the lock held; the old child has exited (its reader saw the pipe close).
        if self._conn is not None:
            release(self._conn, self._reader)
        log.warning("starting the index process again")
        meta = self._start()
        if meta != self.meta:
            raise StoreError("The index changed under the service (another embedder?); restart the service")

    # ----- KnowledgeIndex's methods -----

    def search(
        self,
        tenant_id: str,
        query: str,
        options: QueryOptions | None = None,
        filters: SearchFilters | None = None,
    ) -> SearchResult:
        """Return the best chunks of `tenant_id` for `query`; never another tenant's."""
        result: SearchResult = self._call("search", tenant_id, query, options, filters)
        return result

    def submit_search(
        self,
        tenant_id: str,
        query: str,
        options: QueryOptions | None = None,
        filters: SearchFilters | None = None,
    ) -> Future[SearchResult]:
        """search() without waiting: the future resolves when the child answers (an event loop awaits it
        with asyncio.wrap_future, holding no thread meanwhile)."""
        return self._submit("search", tenant_id, query, options, filters)

    def encode_ahead(self, chunks: Sequence[Chunk], *, batch_size: int = 64) -> EncodingAhead | None:
        """None: the index process encodes each step of an upsert as it arrives (KnowledgeIndex.encode_ahead)."""
        return None

    def upsert(
        self,
        chunks: Sequence[Chunk],
        *,
        batch_size: int = 64,
        progress: Callable[[int], None] | None = None,
        ahead: EncodingAhead | None = None,
    ) -> int:
        """Embed and store `chunks` (idempotent by point id); returns how many were written.

        Sent in steps of at most WRITE_STEP chunks, so searches interleave with a long ingestion. `ahead`
        is always None here (encode_ahead returns None): the signature is KnowledgeIndex.upsert's.
        """
        written, step = 0, max(1, min(batch_size, WRITE_STEP))
        for start in range(0, len(chunks), step):
            batch = list(chunks[start : start + step])
            written += int(self._call("upsert", batch))
            if progress:
                progress(len(batch))
        return written

    def delete_document(self, tenant_id: str, doc_id: str) -> None:
        self._call("delete_document", tenant_id, doc_id)

    def delete_stale(self, tenant_id: str, doc_id: str, keep_version: int) -> None:
        self._call("delete_stale", tenant_id, doc_id, keep_version)

    def delete_tenant(self, tenant_id: str) -> None:
        self._call("delete_tenant", tenant_id)

    def chunks(self, tenant_id: str, doc_id: str | None = None) -> list[SearchHit]:
        hits: list[SearchHit] = self._call("chunks", tenant_id, doc_id)
        return hits

    def count(self, tenant_id: str | None = None, filters: SearchFilters | None = None) -> int:
        return int(self._call("count", tenant_id, filters))

    def maintain(self) -> bool:
        """Build the HNSW index when enough points are unindexed; returns once the build (aside, in a process
        of its own) serves. The child's searches and other writes go on meanwhile."""
        return bool(self.maintain_async().result())

    def maintain_async(self) -> Future[Any]:
        """maintain() without waiting: the future is True once the build serves (KnowledgeIndex.maintain_async)."""
        return self._submit("maintain")

    def compact(self) -> int:
        """Rewrite the index without what was deleted (KnowledgeIndex.compact); blocks the child's searches."""
        return int(self._call("compact"))

    def store_info(self) -> dict[str, Any]:
        """The store's backend and point counts."""
        info: dict[str, Any] = self._call("store_info")
        return info

    def warm_up(self) -> None:
        """Nothing to do: the child loads the embedder before it says it is ready."""

    def close(self) -> None:
        """Stop the child (it flushes and closes the index, releasing its lock); idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            conn, process, reader = self._conn, self._process, self._reader
            if conn is None or process is None:
                return
            try:
                closing = self._send("close", ()) if self._dead is None else None
            except StoreError as exc:
                log.warning("the index process did not close cleanly: %s", exc)
                closing = None
        if closing is not None:
            try:
                closing.result(timeout=_CLOSE_TIMEOUT_S)
            except Exception as exc:  # a child that cannot close cleanly is stopped below
                log.warning("the index process did not close cleanly: %s", exc)
        process.join(_CLOSE_TIMEOUT_S)
        if process.is_alive():
            process.kill()
            process.join(5)
        release(conn, reader)

    def __enter__(self) -> HostedIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


AnyIndex = KnowledgeIndex | HostedIndex


def open_index(settings: Settings) -> AnyIndex:
    """Return the index `settings` ask for: in a child process (`index_process`) or in this one."""
    return HostedIndex(settings) if settings.index_process else KnowledgeIndex(settings)
