"""Agent assist: reply suggestions, and auto-resolution with handoff (optionally as server-sent events)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse

from assist.models import AssistRequest, ResolveResponse, SuggestResponse
from assist.policy import AutoAnswerPolicy
from assist.service import AssistService
from ingestion.registry_models import Tenant

from ..deps import AssistDep, ComputeDep, ComputeSlots, MetricsDep, TenantDep
from ..errors import TENANT_ERRORS, TYPE_PREFIX, ProblemError
from ..metrics import ServiceMetrics

router = APIRouter(prefix="/v1/assist", tags=["assist"], responses=TENANT_ERRORS)

EVENT_STREAM = "text/event-stream"
# One server-sent event (OpenAPI 3.2 `itemSchema`); `data` is JSON: the decision event holds a ResolveResponse.
SSE_EVENT = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["started", "decision", "done", "error"]},
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
    "required": ["event", "data"],
}
# A comment line this often keeps proxies from closing a stream while an LLM is thinking.
KEEPALIVE_S = 10.0


def _invalid(exc: ValueError) -> ProblemError:
    return ProblemError(422, "invalid-conversation", "Invalid conversation", str(exc))


@router.get("/policy", response_model=AutoAnswerPolicy)
async def policy(tenant: TenantDep, assist: AssistDep, compute: ComputeDep) -> AutoAnswerPolicy:
    """The tenant's auto-answer policy: its precision target, the threshold that meets it and the evidence.

    `mode` is `suggest_only` while the evidence (self-test on the tenant's knowledge, agents' feedback)
    cannot certify the target at any threshold; `note` says why, in Turkish.
    """
    result: AutoAnswerPolicy = await compute.run(assist.policy, tenant)
    return result


@router.post("/suggest", response_model=SuggestResponse)
async def suggest(
    body: AssistRequest, tenant: TenantDep, assist: AssistDep, metrics: MetricsDep, compute: ComputeDep
) -> SuggestResponse:
    """Up to three grounded reply suggestions for the agent, best first, each with its citations."""
    try:
        result = await assist.suggest_async(tenant, body, compute.run)
    except ValueError as exc:
        raise _invalid(exc) from exc
    metrics.observe_suggest(result)
    return result


def _event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _resolve_events(
    assist: AssistService, tenant: Tenant, body: AssistRequest, metrics: ServiceMetrics, compute: ComputeSlots
) -> AsyncIterator[str]:
    started = time.perf_counter()
    yield _event("started", {"conversation_id": body.conversation_id})
    work = asyncio.ensure_future(compute.run(assist.resolve, tenant, body))
    while not (await asyncio.wait({work}, timeout=KEEPALIVE_S))[0]:
        yield ": keep-alive\n\n"
    try:
        result = work.result()
    except Exception as exc:  # the status line is sent already: report the error as an event
        kind, title = (
            ("invalid-conversation", "Invalid conversation")
            if isinstance(exc, ValueError)
            else (
                "internal-error",
                "Internal server error",
            )
        )
        detail = str(exc) if isinstance(exc, ValueError) else "The server hit an unexpected error."
        yield _event("error", {"type": TYPE_PREFIX + kind, "title": title, "detail": detail})
        return
    metrics.observe_resolve(result)
    yield _event("decision", result.model_dump(mode="json"))
    yield _event("done", {"latency_ms": round((time.perf_counter() - started) * 1000, 1)})


@router.post(
    "/resolve",
    response_model=ResolveResponse,
    responses={200: {"content": {EVENT_STREAM: {"itemSchema": SSE_EVENT}}}},
)
async def resolve(
    body: AssistRequest,
    tenant: TenantDep,
    assist: AssistDep,
    metrics: MetricsDep,
    compute: ComputeDep,
    stream: Annotated[bool, Query(description="Answer as server-sent events.")] = False,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> ResolveResponse | StreamingResponse:
    """An answer the customer can be sent, or a handoff to a human with the reason and a summary.

    With `?stream=true` or `Accept: text/event-stream` the answer comes as server-sent events:
    `started`, then `decision` (this endpoint's JSON body), then `done`; `error` if it fails.
    """
    if stream or EVENT_STREAM in (accept or ""):
        return StreamingResponse(
            _resolve_events(assist, tenant, body, metrics, compute),
            media_type=EVENT_STREAM,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    try:
        result = await compute.run(assist.resolve, tenant, body)
    except ValueError as exc:
        raise _invalid(exc) from exc
    metrics.observe_resolve(result)
    return result
