"""An embedder that runs in a child process, so encoding stops competing with request handling for the GIL.

The HTTP server is bound by Python's GIL: query encoding (numpy, mostly small operations that hold the
GIL) was about a quarter of a suggest request's GIL time. In a child process it runs on the second core
while the server process goes on with other requests; ingestion jobs inside the server stop starving
requests the same way. The child is started with `spawn` (never fork a process that runs threads), loads
the model once, and is restarted once if it dies.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np

from .embedders import Embedder, EmbedderError, embed_queries, load_embedder

_models: dict[str, Embedder] = {}
# How often the child checks that the process that started it is still there.
_PARENT_CHECK_S = 1.0


def _exit_with_parent(parent: int) -> None:
    # Runs in the child: a server killed with SIGKILL cannot shut its pool down, so the child notices.
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


def _embed_query(spec: str, text: str) -> np.ndarray:
    return _model(spec).embed_query(text)


def _embed_queries(spec: str, texts: list[str]) -> np.ndarray:
    return embed_queries(_model(spec), texts)


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
        return ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_exit_with_parent,
            initargs=(os.getpid(),),
        )

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
