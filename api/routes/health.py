"""Liveness, readiness and Prometheus metrics; no API key needed."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from ..deps import ContextDep, JobsDep, MetricsDep
from ..metrics import CONTENT_TYPE
from ..schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up."""
    return Health()


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
def readyz(context: ContextDep, jobs: JobsDep) -> JSONResponse:
    """Ready when the index and the registry database answer and the ingestion worker runs (else 503)."""
    checks: dict[str, str] = {}
    try:
        context.index.count()
        checks["index"] = "ok"
    except Exception as exc:
        checks["index"] = f"{exc.__class__.__name__}: {exc}"
    try:
        context.registry.get_tenant("readyz-probe")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"{exc.__class__.__name__}: {exc}"
    checks["ingestion"] = "ok" if jobs.alive else "stopped"
    ready = all(v == "ok" for v in checks.values())
    body = Readiness(status="ready" if ready else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE: {}}}})
def metrics(service_metrics: MetricsDep) -> Response:
    """Prometheus text exposition."""
    return Response(service_metrics.exposition(), media_type=CONTENT_TYPE)
