"""The vector store interface shared by the embedded Qdrant Edge shard and a Qdrant server."""

from __future__ import annotations

from collections.abc import Sequence
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

    def count(self, tenant_id: str | None = None, filters: SearchFilters | None = None) -> int: ...

    def candidates(
        self,
        tenant_id: str,
        dense: np.ndarray,
        sparse: SparseVector,
        limit: int,
        filters: SearchFilters | None = None,
    ) -> tuple[list[SearchHit], list[SearchHit]]:
        """Return (dense hits, sparse hits) for one tenant, each best first, both from one engine call."""
        ...

    def optimize(self) -> bool: ...

    def close(self) -> None: ...


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
