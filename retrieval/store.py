"""The vector store interface shared by the embedded Qdrant Edge shard and a Qdrant server."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .models import SearchFilters, SearchHit
from .sparse import SparseVector

DENSE = "dense"
SPARSE = "sparse"
# Payload fields with a keyword index; tenant_id is the tenant key (is_tenant) on both backends.
KEYWORD_FIELDS = ("tenant_id", "source", "doc_id")


class StoreError(RuntimeError):
    """The index cannot be opened or used; the message names the path or URL and what to do."""


@dataclass(frozen=True)
class IndexMeta:
    """What built an index, so it is never queried or extended with vectors of another model."""

    embedder: str
    dim: int
    sparse: str
    schema: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {"embedder": self.embedder, "dim": self.dim, "sparse": self.sparse, "schema": self.schema}


@dataclass(frozen=True)
class StoredPoint:
    id: str
    dense: np.ndarray
    sparse: SparseVector
    payload: dict[str, Any] = field(default_factory=dict)


class VectorStore(Protocol):
    """Operations every backend offers; every read is scoped to one tenant."""

    backend: str

    def meta(self) -> IndexMeta | None: ...

    def upsert(self, points: Sequence[StoredPoint]) -> None: ...

    def delete_document(self, tenant_id: str, doc_id: str) -> None: ...

    def delete_tenant(self, tenant_id: str) -> None: ...

    def delete_stale(self, tenant_id: str, doc_id: str, keep_version: int) -> None:
        """Delete the document's chunks written by any version other than `keep_version`."""
        ...

    def count(self, tenant_id: str | None = None, filters: SearchFilters | None = None) -> int: ...

    def candidates(
        self,
        tenant_id: str,
        dense: np.ndarray,
        sparse: SparseVector,
        limit: int,
        filters: SearchFilters | None = None,
    ) -> tuple[list[SearchHit], list[SearchHit]]:
        """Return (dense, sparse) candidates of one tenant, best first, from one engine call.

        Candidates carry only point id and score: payloads are fetched for the final hits alone
        (`hydrate`), which is most of the engine time saved (measured: 2.7 ms → 0.13 ms at 20k points).
        """
        ...

    def hydrate(self, tenant_id: str, hits: Sequence[SearchHit]) -> list[SearchHit]:
        """Return `hits` with their payloads filled in, dropping any that are not the tenant's."""
        ...

    def chunks(self, tenant_id: str, doc_id: str | None = None) -> list[SearchHit]:
        """Return every stored chunk of the tenant (or of one of its documents), score 0, in id order."""
        ...

    def reencode_sparse(
        self,
        encode: Callable[[dict[str, Any]], SparseVector],
        meta: IndexMeta,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Replace every point's BM25 vector with `encode(payload)`, keep the dense vectors and payloads,
        record `meta` last; return the number of points (`retrieval.index.reencode_sparse`)."""
        ...

    def optimize(self) -> bool: ...

    def close(self) -> None: ...


def bare_hit(pid: object, score: float) -> SearchHit:
    """Return a candidate that knows only its point id and score."""
    return SearchHit(point_id=str(pid), tenant_id="", doc_id="", chunk_id="", text="", score=float(score))


def hydrated(
    hits: Sequence[SearchHit], payloads: dict[str, dict[str, Any]], tenant_id: str
) -> list[SearchHit]:
    """Return hits rebuilt from their payloads, keeping order and score; the tenant is checked a second time."""
    out = []
    for hit in hits:
        payload = payloads.get(hit.point_id)
        if payload is not None and payload.get("tenant_id") == tenant_id:
            out.append(
                SearchHit.from_payload(hit.point_id, hit.score, payload, hit.dense_score, hit.sparse_score)
            )
    return out


def require_tenant(tenant_id: str) -> str:
    """Return the tenant id stripped, or raise ValueError: no store read or write runs without one."""
    if not isinstance(tenant_id, str) or not tenant_id.strip():
        raise ValueError("A tenant id is required for every index operation")
    return tenant_id.strip()


def check_meta(found: IndexMeta | None, wanted: IndexMeta, where: str) -> None:
    """Raise StoreError when an existing index was built by another embedder than the one configured."""
    if found is None:
        return
    if found.embedder != wanted.embedder or found.dim != wanted.dim:
        raise StoreError(
            f"The index at {where} was built with embedder {found.embedder!r} ({found.dim}-d) but "
            f"{wanted.embedder!r} ({wanted.dim}-d) is configured. Set INVEKTO_EMBEDDER back, or re-index "
            "into a new data dir / collection (invekto-knowledge index reset, then ingest again)."
        )
