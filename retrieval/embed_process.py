"""An embedder that runs in a child process, so encoding stops competing with request handling for the GIL.

The HTTP server is bound by Python's GIL: query encoding (numpy, mostly small operations that hold the
GIL) was about a quarter of a suggest request's GIL time. In a child process it runs on the second core
while the server process goes on with other requests; ingestion jobs inside the server stop starving
requests the same way. The child is started with `spawn` (never fork a process that runs threads), loads
the model once, and is restarted once if it dies.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np

from .embedders import Embedder, EmbedderError, embed_queries, load_embedder
from .sparse import SparseVector, TurkishBm25

_models: dict[str, Embedder] = {}
_bm25: TurkishBm25 | None = None
# How often the child checks that the process that started it is still there.
_PARENT_CHECK_S = 1.0


def exit_with_parent(parent: int) -> None:
    """Exit this process as soon as `parent` is no longer its parent (checked every second).

    Runs in a child: a server killed with SIGKILL cannot stop its children, so each notices by itself.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_CHECK_S)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _model(spec: str) -> Embedder:
    # Runs in the child: the model loads on the first call and stays.
    if spec not in _models:
        _models[spec] = load_embedder(spec)
    return _models[spec]


def _describe(spec: str) -> tuple[str, int]:
    model = _model(spec)
    return model.model_id, model.dim


def _embed_documents(spec: str, texts: list[str]) -> np.ndarray:
    return _model(spec).embed_documents(texts)


def _encode_chunks(spec: str, texts: list[str]) -> tuple[np.ndarray, list[SparseVector]]:
    global _bm25
    if _bm25 is None:
        _bm25 = TurkishBm25()
    return _model(spec).embed_documents(texts), [_bm25.embed_document(t) for t in texts]


def _embed_query(spec: str, text: str) -> np.ndarray:
    return _model(spec).embed_query(text)


def _embed_queries(spec: str, texts: list[str]) -> np.ndarray:
    return embed_queries(_model(spec), texts)


def start_idle_timer(seconds: float, stop: Callable[[], None]) -> threading.Timer:
    """Start and return a daemon timer calling `stop` after `seconds`: an idle pool's shutdown, cancelled
    by the next piece of work."""
    timer = threading.Timer(seconds, stop)
    timer.daemon = True
    timer.start()
    return timer


def spawned_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes started with `spawn` (never fork a process that runs threads) that exit with this one."""
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=exit_with_parent,
        initargs=(os.getpid(),),
    )


class ProcessEmbedder:
    """The embedder named by `spec` (see load_embedder), computed in one child process; thread-safe."""

    def __init__(self, spec: str) -> None:
        self._spec = spec
        self._lock = threading.Lock()
        self._pool = self._start()
        try:
            self._model_id, self._dim = self._call(_describe)
        except BaseException:
            self.close()
            raise

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dim(self) -> int:
        return self._dim

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        return self._call(_embed_documents, list(texts))

    def embed_query(self, text: str) -> np.ndarray:
        return self._call(_embed_query, text)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        return self._call(_embed_queries, list(texts))

    @property
    def pid(self) -> int | None:
        """The child's process id once it runs (for memory reports), else None."""
        processes = getattr(self._pool, "_processes", None) or {}
        return next(iter(processes), None)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _start(self) -> ProcessPoolExecutor:
        return spawned_pool(1)

    def _call(self, fn: Any, *args: Any) -> Any:
        for attempt in (1, 2):
            pool = self._pool
            try:
                return pool.submit(fn, self._spec, *args).result()
            except BrokenProcessPool as exc:
                with self._lock:
                    if self._pool is pool:  # the first thread to notice restarts it
                        pool.shutdown(wait=False, cancel_futures=True)
                        self._pool = self._start()
                if attempt == 2:
                    raise EmbedderError(
                        f"The encoder process for {self._spec!r} died twice in a row (out of memory?); "
                        "set INVEKTO_ENCODER_PROCESS=false to encode in the server process"
                    ) from exc
        raise AssertionError("unreachable")


# Chunks encoded by EncodePool: their dense vectors (one row each) and their BM25 vectors.
Encoded = tuple[np.ndarray, list[SparseVector]]


def _joined(parts: list[Encoded]) -> Encoded:
    return np.concatenate([dense for dense, _ in parts]), [v for _, sparse in parts for v in sparse]


class EncodePool:
    """Encodes chunks for ingestion (dense and BM25 vectors) in `workers` child processes, a batch split
    between them; thread-safe.

    The process that writes waits for the encoded vectors without holding its GIL, so the searches it
    answers meanwhile compete for CPU only, and a batch is encoded on as many cores as there are workers.
    The workers start on the first batch, check that they load the model the index was built with, and
    stop after `idle_s` without work (each holds a copy of the model); the next batch starts them again.
    """

    def __init__(self, spec: str, workers: int, *, expect_model: str, idle_s: float = 120.0) -> None:
        if workers < 1:
            raise ValueError(f"an encode pool needs at least one worker, got {workers}")
        self.spec, self.workers, self.idle_s = spec, workers, idle_s
        self._expect = expect_model
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._idle: threading.Timer | None = None
        self._busy = 0

    def encode(self, texts: Sequence[str]) -> Encoded:
        return self.submit(texts)()

    def submit(self, texts: Sequence[str]) -> Callable[[], Encoded]:
        """Start encoding `texts` (dense and BM25 vectors) and return what waits for them (call it exactly
        once), so the caller can store the previous batch meanwhile."""
        if not texts:
            raise ValueError("nothing to encode")
        per_worker = -(-len(texts) // self.workers)
        parts = [list(texts[i : i + per_worker]) for i in range(0, len(texts), per_worker)]
        pool = self._acquire()
        try:
            futures = self._send(pool, parts)
        except BrokenProcessPool:
            futures = []

        def result() -> Encoded:
            try:
                if futures:
                    with contextlib.suppress(BrokenProcessPool):
                        return _joined([f.result() for f in futures])
                self._discard(pool)  # a worker died (out of memory?): once more on a new pool
            finally:
                self._release()
            return self._encode_again(parts)

        return result

    def _encode_again(self, parts: list[list[str]]) -> Encoded:
        pool = self._acquire()
        try:
            return _joined([f.result() for f in self._send(pool, parts)])
        except BrokenProcessPool as exc:
            self._discard(pool)
            raise EmbedderError(
                f"The encode workers for {self.spec!r} died twice in a row (out of memory?); "
                "set INVEKTO_ENCODE_WORKERS=0 to encode in the index's own process"
            ) from exc
        finally:
            self._release()

    def _send(self, pool: ProcessPoolExecutor, parts: list[list[str]]) -> list[Future[Encoded]]:
        return [pool.submit(_encode_chunks, self.spec, part) for part in parts]

    @property
    def pids(self) -> list[int]:
        """The workers' process ids while they run (for memory reports and tests)."""
        return list(getattr(self._pool, "_processes", None) or {})

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
            if self._idle is not None:
                self._idle.cancel()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _acquire(self) -> ProcessPoolExecutor:
        with self._lock:
            self._busy += 1
            if self._idle is not None:
                self._idle.cancel()
                self._idle = None
            if self._pool is None:
                try:
                    self._pool = self._start()
                except BaseException:
                    self._busy -= 1
                    raise
            return self._pool

    def _start(self) -> ProcessPoolExecutor:
        """Return a new pool whose workers loaded the index's model; shut down again if they did not."""
        pool = spawned_pool(self.workers)
        try:
            model_id, _ = pool.submit(_describe, self.spec).result()
            if model_id != self._expect:
                raise EmbedderError(
                    f"The encode workers load {model_id!r} but the index holds {self._expect!r} vectors"
                )
        except BrokenProcessPool as exc:
            pool.shutdown(wait=False, cancel_futures=True)
            raise EmbedderError(
                f"The encode workers for {self.spec!r} stopped while loading the model "
                "(out of memory?); set INVEKTO_ENCODE_WORKERS=0 to encode in the index's own process"
            ) from exc
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        return pool

    def _release(self) -> None:
        with self._lock:
            self._busy -= 1
            if self._busy == 0 and self._pool is not None and self.idle_s > 0:
                self._idle = start_idle_timer(self.idle_s, self._stop_if_idle)

    def _stop_if_idle(self) -> None:
        with self._lock:
            if self._busy or self._pool is None:
                return
            pool, self._pool, self._idle = self._pool, None, None
        pool.shutdown(wait=False, cancel_futures=True)

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:  # the first thread to notice starts a new pool on its next batch
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)
