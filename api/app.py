"""The HTTP app: `create_app(settings)` wires routers, errors, metrics and the service parts.

Run it with `invekto-knowledge serve` (uvicorn; `--workers N` runs N of these apps over one index process).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from assist.language import warm_up as warm_up_language
from assist.retention import RetentionPruner
from assist.service import AssistService
from ingestion.jobs import UPLOADS_DIR, IngestionJobs
from ingestion.parse_worker import ParseLimits
from retrieval import tracing
from retrieval.heap import start_settled
from retrieval.settings import Settings

from .callbacks import RETRY_DELAYS_S, CallbackSender
from .context import ServiceContext
from .deps import ApiKeys, ComputeSlots
from .errors import install_error_handlers
from .logs import RequestContextMiddleware
from .metrics import MetricsMiddleware, ServiceMetrics, WorkerHeaderMiddleware
from .openapi import SERVERS, install_docs, install_openapi, operation_id
from .ratelimit import AUTH_FAILURES, RateLimit, RateLimiter
from .routes import (
    admin,
    assist,
    conversations,
    documents,
    erasure,
    feedback,
    health,
    jobs,
    knowledge,
    playground,
    search,
)
from .server import admin_token_problem
from .uploads import MAX_JSON_BYTES

log = logging.getLogger(__name__)

API_VERSION = "1.0.0"
# Threads that run Python for requests at once. Index in the server process (it encodes on these threads):
# 1 slot 83 req/s, 2 slots 89, 4 fewer. Index in its own process (searches are awaited without a slot):
# 2 slots 248 req/s, 4 slots 265 (suggest, 32 clients, 2 cores).
COMPUTE_SLOTS = 2
HOSTED_INDEX_COMPUTE_SLOTS = 4
DESCRIPTION = """\
Knowledge and agent assist for Invekto tenants: upload knowledge, search it, get grounded reply
suggestions, resolve conversations or hand them off.

Every `/v1` endpoint except `/v1/admin` takes the tenant's API key (`Authorization: Bearer <key>` or
`X-API-Key`); the tenant is always the key's. A backend acting for many tenants uses one service key
(`isk_...`) instead and names the tenant of each request in `X-Invekto-Tenant`. `/v1/admin` takes the admin
token. Errors are RFC 9457 problems (`application/problem+json`).
"""


@dataclass(frozen=True)
class WorkerRole:
    """One of several HTTP worker processes (`serve --workers N`): worker 0 resumes interrupted ingestion
    jobs and prunes old records; `ready` (a multiprocessing Event) is set once the service is open."""

    number: int
    ready: Any = None

    @property
    def first(self) -> bool:
        return self.number == 0


def _open_service(
    app: FastAPI, context: ServiceContext, metrics: ServiceMetrics, worker: WorkerRole | None = None
) -> None:
    settings = context.settings
    app.state.context = context
    app.state.api_keys = ApiKeys(context.registry)
    app.state.assist = AssistService(
        settings,
        context.index,
        context.registry,
        ingestor=context.ingestor,
        knowledge_wait_s=settings.knowledge_wait_s,
    )
    app.state.callbacks = CallbackSender(
        context.registry, metrics, retry_delays=app.state.callback_retry_delays
    )
    app.state.jobs = IngestionJobs(
        context.ingestor,
        settings.data_dir / UPLOADS_DIR,
        metrics,
        single_process=settings.store == "edge",
        limits=ParseLimits.of(settings),
        shutdown_timeout_s=settings.shutdown_timeout_s,
        on_finished=app.state.callbacks.job_finished,
    )
    app.state.retention = RetentionPruner(context.registry, settings.retention_prune_hours * 3600)
    # With several workers only the first, started before the others, resumes and prunes: another worker
    # would take the jobs the first one already runs for interrupted ones.
    if worker is None or worker.first:
        app.state.retention.start()
        resumed = app.state.jobs.resume_interrupted()
        if resumed:
            log.info("resumed %d interrupted ingestion jobs", resumed)
    # The embedder loads its weights on first use; pay that at startup, not on the first request.
    context.index.warm_up()
    warm_up_language()


def create_app(
    settings: Settings,
    context: ServiceContext | None = None,
    *,
    rate_limit: RateLimit | None = None,
    auth_failure_limit: RateLimit | None = None,
    compute_slots: int | None = None,
    owns_context: bool = False,
    callback_retry_delays: Sequence[float] = RETRY_DELAYS_S,
    worker: WorkerRole | None = None,
    shared_limiters: Mapping[str, Any] | None = None,
    settle_heap: bool = False,
) -> FastAPI:
    """Return the app; it opens a ServiceContext at startup unless given one, which the caller then closes
    (or the app at shutdown, with `owns_context`: uvicorn ends the process with the signal it caught, so
    code after uvicorn.run never runs). `callback_retry_delays`: the waits between job callback attempts.
    `worker` and `shared_limiters` ("tenant", "auth"): one of several worker processes (api/workers.py).
    `settle_heap`: a long-running server; what startup built is kept out of full garbage collections
    (retrieval/heap.py)."""
    problem = admin_token_problem(settings)
    if problem:
        raise ValueError(problem)
    metrics = ServiceMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = context if context is not None else await run_in_threadpool(ServiceContext.open, settings)
        try:
            await run_in_threadpool(_open_service, app, ctx, metrics, worker)
            if settle_heap:
                start_settled("server started")
            if worker is not None and worker.ready is not None:
                worker.ready.set()
            yield
        finally:
            retention: RetentionPruner | None = getattr(app.state, "retention", None)
            if retention is not None:
                await run_in_threadpool(retention.close)
            jobs: IngestionJobs | None = getattr(app.state, "jobs", None)
            if jobs is not None:
                await run_in_threadpool(jobs.close)
            callbacks: CallbackSender | None = getattr(app.state, "callbacks", None)
            if callbacks is not None:
                callbacks.close()
            assist: AssistService | None = getattr(app.state, "assist", None)
            if assist is not None:
                assist.close()
            if context is None or owns_context:
                ctx.close()

    app = FastAPI(
        title="Invekto Knowledge API",
        version=API_VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        servers=SERVERS,
        # /docs comes from install_docs (Swagger UI from the package); ReDoc would load from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    install_openapi(app)
    install_docs(app)
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.callback_retry_delays = tuple(callback_retry_delays)
    if shared_limiters is not None:
        app.state.rate_limiter = shared_limiters["tenant"]
        app.state.auth_failures = shared_limiters["auth"]
    else:
        app.state.rate_limiter = RateLimiter(
            rate_limit or RateLimit(settings.rate_limit, settings.rate_burst)
        )
        app.state.auth_failures = RateLimiter(auth_failure_limit or AUTH_FAILURES)
    default_slots = HOSTED_INDEX_COMPUTE_SLOTS if settings.index_process else COMPUTE_SLOTS
    app.state.compute = ComputeSlots(compute_slots or settings.compute_slots or default_slots)
    install_error_handlers(app)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    if worker is not None:
        app.add_middleware(WorkerHeaderMiddleware, number=worker.number)
    # Outermost of ours: the request id and log context cover the other middlewares' lines too.
    app.add_middleware(RequestContextMiddleware)
    tracing.configure(settings)
    for module in (
        documents,
        jobs,
        conversations,
        erasure,
        search,
        assist,
        feedback,
        knowledge,
        admin,
        health,
        playground,
    ):
        # Per router, not per app: the app-wide limiter answers in plain text, outside our error handlers.
        app.include_router(module.router, max_body_size=MAX_JSON_BYTES)
    return app
