"""`serve --workers N`: several HTTP worker processes in front of one index process.

One Python process tops out at one core. Here the supervisor (the `serve` process) starts:

- the index process (retrieval/index_server.py): it owns the index and its lock, encodes and searches for
  every worker (searches from all of them batched together), and holds the shared rate limiters;
- N uvicorn workers on one listening socket, each with the whole app: HTTP, assist, ingestion jobs. They
  share the registry database, the index (over a key-authenticated Unix socket), the per-tenant rate
  limit and the failed-authentication budget (token buckets in shared memory, api/ratelimit.py), and
  the Prometheus metrics (summed over workers from PROMETHEUS_MULTIPROC_DIR). Worker 0 starts first and alone resumes the ingestion jobs
  an earlier run left open and prunes old records; the others start once it is ready.

A worker that dies is started again; SIGTERM or Ctrl-C stops the workers (their open requests get the
graceful-shutdown time, their running jobs stay open and resume at the next start), then the index process,
which closes the index. Each worker is a full app, so memory grows by one app (~150 MiB) per worker.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import secrets
import shutil
import signal
import socket
import tempfile
import threading
import time
from typing import Any

from prometheus_client.multiprocess import mark_process_dead

from retrieval.settings import Settings

from .ratelimit import AUTH_FAILURES, RateLimit, SharedBuckets, SharedRateLimiter
from .server import ServeOptions

log = logging.getLogger("invekto.serve")

READY_TIMEOUT_S = 300.0
_POLL_S = 0.5


def _worker_main(
    number: int,
    settings: Settings,
    address: str,
    authkey: bytes,
    sock: socket.socket,
    options: ServeOptions,
    ready: Any,
    buckets: dict[str, SharedBuckets],
    parent: int,
) -> None:
    """One worker process: the app over the shared index, serving the supervisor's socket.

    It exits when the supervisor (`parent`) is gone: a supervisor killed with SIGKILL cannot stop its
    workers, and an orphaned worker would keep the port and answer without its index.
    """
    import uvicorn

    from retrieval.embed_process import exit_with_parent

    exit_with_parent(parent)

    from ingestion.pipeline import Ingestor
    from ingestion.pseudonym import guard_for, install_log_redaction
    from ingestion.registry import Registry
    from retrieval.index_server import RemoteIndex

    from .app import WorkerRole, create_app
    from .context import ServiceContext

    install_log_redaction()
    index = RemoteIndex(settings, address, authkey)
    registry = Registry(settings.registry_url, ids=guard_for(settings))
    context = ServiceContext(settings, index, registry, Ingestor(index, registry))
    shared = {name: SharedRateLimiter.attach(spec) for name, spec in buckets.items()}
    app = create_app(
        settings,
        context,
        owns_context=True,
        worker=WorkerRole(number, ready),
        shared_limiters=shared,
        settle_heap=True,
    )
    config = options.config(app, settings)
    uvicorn.Server(config).run(sockets=[sock])


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class Supervisor:
    """Starts and watches the index process and the workers; `run` returns once they are stopped."""

    def __init__(self, settings: Settings, workers: int, options: ServeOptions) -> None:
        if workers < 2:
            raise ValueError(
                "Supervisor is for 2 or more workers; one worker runs in the serve process itself"
            )
        self.settings, self.n, self.options = settings, workers, options
        self._ctx = multiprocessing.get_context("spawn")
        self._stop = threading.Event()
        self._folder = tempfile.mkdtemp(prefix="invekto-serve-")
        os.chmod(self._folder, 0o700)
        self._address = os.path.join(self._folder, "index.sock")
        self._authkey = secrets.token_bytes(32)
        self._workers: dict[int, multiprocessing.process.BaseProcess] = {}
        # Kept while the worker lives: a child unpickles its Event after it starts.
        self._ready: dict[int, Any] = {}
        self._index: multiprocessing.process.BaseProcess | None = None
        self._sock: socket.socket | None = None
        self._limiters: dict[str, SharedRateLimiter] = {}

    def _start_worker(self, number: int) -> tuple[multiprocessing.process.BaseProcess, Any]:
        ready = self._ctx.Event()
        process = self._ctx.Process(
            target=_worker_main,
            args=(
                number,
                self.settings,
                self._address,
                self._authkey,
                self._sock,
                self.options,
                ready,
                {name: limiter.buckets for name, limiter in self._limiters.items()},
                os.getpid(),
            ),
            name=f"invekto-http-{number}",
        )
        process.start()
        self._workers[number], self._ready[number] = process, ready
        return process, ready

    def _wait_ready(self, process: multiprocessing.process.BaseProcess, ready: Any, number: int) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready.wait(_POLL_S):
            if self._stop.is_set():
                return
            if not process.is_alive():
                raise RuntimeError(f"HTTP worker {number} exited with code {process.exitcode} while starting")
            if time.monotonic() > deadline:
                raise RuntimeError(f"HTTP worker {number} was not ready after {READY_TIMEOUT_S:.0f} s")

    def run(self) -> None:
        from retrieval.index_server import start_index_server

        # Metrics of every worker, summed at /metrics (api/metrics.py); set before any worker starts.
        metrics_dir = os.path.join(self._folder, "metrics")
        os.mkdir(metrics_dir)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        previous = {
            sig: signal.signal(sig, lambda *_: self._stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            tenant_limit = RateLimit(self.settings.rate_limit, self.settings.rate_burst)
            self._limiters = {
                "tenant": SharedRateLimiter.create(tenant_limit, self._ctx.Lock()),
                "auth": SharedRateLimiter.create(AUTH_FAILURES, self._ctx.Lock()),
            }
            self._index = start_index_server(self.settings, self._address, self._authkey)
            self._sock = _listen(self.options.host, self.options.port)
            first, ready = self._start_worker(0)
            self._wait_ready(first, ready, 0)
            started = [self._start_worker(n) for n in range(1, self.n)]
            for number, (process, ready) in enumerate(started, start=1):
                self._wait_ready(process, ready, number)
            log.info(
                "serving http://%s:%d with %d workers (index process %s)",
                self.options.host,
                self.options.port,
                self.n,
                self._index.pid,
            )
            self._watch()
        finally:
            self._shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _watch(self) -> None:
        while not self._stop.wait(_POLL_S):
            if self._index is not None and not self._index.is_alive():
                # The workers cannot serve without it; exit with an error so a supervisor restarts all.
                raise RuntimeError(f"The index process exited (code {self._index.exitcode}); stopping")
            for number, process in list(self._workers.items()):
                if not process.is_alive() and not self._stop.is_set():
                    log.error("HTTP worker %d exited (code %s); starting it again", number, process.exitcode)
                    if process.pid is not None:  # its job gauges no longer count
                        mark_process_dead(process.pid, os.environ["PROMETHEUS_MULTIPROC_DIR"])
                    del self._workers[number], self._ready[number]
                    # A worker started again is never the first: it must not take running jobs for interrupted.
                    self._start_worker(number or max(self._workers, default=0) + 1)

    def _shutdown(self) -> None:
        grace = max(1.0, self.settings.shutdown_timeout_s) * 2 + 5
        for process in self._workers.values():
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + grace
        for process in self._workers.values():
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(5)
        if self._sock is not None:
            self._sock.close()
        if self._index is not None and self._index.is_alive():
            self._index.terminate()  # it finishes the writes it has, then closes the index
            self._index.join(60)
            if self._index.is_alive():
                self._index.kill()
                self._index.join(5)
        for limiter in self._limiters.values():
            limiter.close()
        shutil.rmtree(self._folder, ignore_errors=True)
