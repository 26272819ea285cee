"""Prometheus metrics: HTTP traffic per route template, assist outcomes and ingestion progress.

Labels are bounded: the route template (`/v1/documents/{doc_id}`), never the raw path, and never a
tenant id, so a scrape stays small however many tenants and documents there are.
"""

from __future__ import annotations

import os
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assist.models import ResolveResponse, SuggestResponse

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ServiceMetrics:
    """The service's metrics in their own registry (one per app, so tests can build many apps).

    Behind several worker processes (`serve --workers N` sets PROMETHEUS_MULTIPROC_DIR before they start)
    each writes its values to that folder and `/metrics` reports the sum over all of them, whichever
    worker answers the scrape; the job gauges count the live workers' jobs.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)  # process_resident_memory_bytes, cpu seconds, open fds
        self.requests = Counter(
            "invekto_http_requests",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "invekto_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.suggest = Counter(
            "invekto_assist_suggest",
            "Suggest responses by the strategy of the first suggestion (none: empty).",
            ["strategy"],
            registry=r,
        )
        self.resolve = Counter(
            "invekto_assist_resolve",
            "Resolve decisions, with the handoff reason (empty for answers).",
            ["decision", "reason"],
            registry=r,
        )
        self.ingest_files = Counter(
            "invekto_ingestion_files",
            "Ingested files by job kind and outcome (indexed, skipped, failed).",
            ["kind", "status"],
            registry=r,
        )
        self.ingest_chunks = Counter(
            "invekto_ingestion_chunks_written",
            "Chunks written to the index by ingestion jobs.",
            ["kind"],
            registry=r,
        )
        self.jobs = Gauge(
            "invekto_ingestion_jobs",
            "Ingestion jobs that are queued or running.",
            ["state"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.callbacks = Counter(
            "invekto_job_callbacks",
            "Job callbacks to tenants' callback URLs by outcome (delivered, refused: a 4xx, failed: retries spent).",
            ["outcome"],
            registry=r,
        )
        self.files_pending = Gauge(
            "invekto_ingestion_files_pending",
            "Files of queued and running jobs not processed yet.",
            registry=r,
            multiprocess_mode="livesum",
        )

    def file_processed(self, kind: str, outcome: str, chunks: int) -> None:
        """Count one file an ingestion job processed (`ingestion.jobs.JobMetrics`)."""
        self.ingest_files.labels(kind, outcome).inc()
        self.ingest_chunks.labels(kind).inc(chunks)

    def jobs_now(self, running: int, queued: int, files_pending: int) -> None:
        """Set the ingestion job gauges (`ingestion.jobs.JobMetrics`)."""
        self.jobs.labels("running").set(running)
        self.jobs.labels("queued").set(queued)
        self.files_pending.set(files_pending)

    def callback_delivered(self, outcome: str) -> None:
        """Count one job callback's final outcome (`api.callbacks.CallbackMetrics`)."""
        self.callbacks.labels(outcome).inc()

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in _METHODS else "OTHER"
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def observe_suggest(self, result: SuggestResponse) -> None:
        self.suggest.labels(result.suggestions[0].strategy if result.suggestions else "none").inc()

    def observe_resolve(self, result: ResolveResponse) -> None:
        self.resolve.labels(result.decision, result.reason or "").inc()

    def exposition(self) -> bytes:
        folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if folder:
            merged = CollectorRegistry()
            MultiProcessCollector(merged, path=folder)
            return generate_latest(merged)
        return generate_latest(self.registry)


class WorkerHeaderMiddleware:
    """Names the worker process that answered (`X-Invekto-Worker`) when several serve one port."""

    def __init__(self, app: ASGIApp, number: int) -> None:
        self.app = app
        self.value = str(number).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_named(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-invekto-worker", self.value)]
            await send(message)

        await self.app(scope, receive, send_named)


class MetricsMiddleware:
    """Pure ASGI middleware timing every HTTP request and labelling it with its route template."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            # The router stores the matched route in the scope; unmatched paths share one label.
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.observe_request(scope["method"], route, status, time.perf_counter() - started)
