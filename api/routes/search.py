"""Retrieval over the tenant's knowledge, for debugging and for Invekto."""

from __future__ import annotations

from fastapi import APIRouter

from retrieval.index import QueryOptions
from retrieval.models import SearchFilters

from ..deps import ComputeDep, ContextDep, TenantDep
from ..errors import TENANT_ERRORS, ProblemError
from ..schemas import SearchRequest, SearchResponse

router = APIRouter(prefix="/v1", tags=["search"], responses=TENANT_ERRORS)


@router.post("/search", response_model=SearchResponse)
async def search(
    body: SearchRequest, tenant: TenantDep, context: ContextDep, compute: ComputeDep
) -> SearchResponse:
    """Hybrid search (dense + Turkish BM25) over this tenant's chunks only."""
    try:
        result = await compute.run(
            context.index.search,
            tenant.id,
            body.query,
            QueryOptions(limit=body.limit),
            SearchFilters(sources=tuple(body.sources or ())),
        )
    except ValueError as exc:
        raise ProblemError(422, "invalid-query", "Invalid search", str(exc)) from exc
    return SearchResponse.of(result)
