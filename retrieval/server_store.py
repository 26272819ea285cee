"""The scale-out store: a Qdrant server or cluster through qdrant-client (or its local mode for tests)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from .models import SearchFilters, SearchHit
from .sparse import SparseVector
from .store import (
    DENSE,
    KEYWORD_FIELDS,
    SPARSE,
    IndexMeta,
    StoredPoint,
    StoreError,
    bare_hit,
    hydrated,
    require_tenant,
)


def server_filter(
    tenant_id: str, filters: SearchFilters | None = None, doc_id: str | None = None
) -> qm.Filter:
    """Return the qdrant-client filter: always the tenant, then optional source/doc/metadata conditions."""
    must: list[Any] = [qm.FieldCondition(key="tenant_id", match=qm.MatchValue(value=tenant_id))]
    if doc_id is not None:
        must.append(qm.FieldCondition(key="doc_id", match=qm.MatchValue(value=doc_id)))
    if filters is not None:
        if filters.sources:
            must.append(qm.FieldCondition(key="source", match=qm.MatchAny(any=list(filters.sources))))
        if filters.doc_ids:
            must.append(qm.FieldCondition(key="doc_id", match=qm.MatchAny(any=list(filters.doc_ids))))
        for key, value in filters.metadata.items():
            must.append(qm.FieldCondition(key=f"metadata.{key}", match=qm.MatchValue(value=value)))
    return qm.Filter(must=must)


def connect(url: str, api_key: str | None = None, timeout: int = 10) -> QdrantClient:
    """Return a client for `url`: http(s)://host:port, or `:memory:` / `local:<path>` for qdrant-client's local mode."""
    if url == ":memory:":
        return QdrantClient(location=":memory:")
    if url.startswith("local:"):
        return QdrantClient(path=url[len("local:") :])
    return QdrantClient(url=url, api_key=api_key, timeout=timeout)


class ServerStore:
    """One collection for all tenants, `tenant_id` keyword index marked is_tenant, named vectors dense + sparse."""

    backend = "server"

    def __init__(self, client: QdrantClient, collection: str, meta: IndexMeta, where: str) -> None:
        self._client = client
        self._collection = collection
        self._where = where
        try:
            exists = client.collection_exists(collection)
        except Exception as exc:
            raise StoreError(f"Cannot reach Qdrant at {where}: {exc}") from exc
        if exists:
            self._meta = self._read_meta()
        else:
            client.create_collection(
                collection,
                vectors_config={DENSE: qm.VectorParams(size=meta.dim, distance=qm.Distance.COSINE)},
                sparse_vectors_config={SPARSE: qm.SparseVectorParams(modifier=qm.Modifier.IDF)},
                hnsw_config=qm.HnswConfigDiff(payload_m=16, m=16),
                metadata=meta.as_dict(),
            )
            for field in KEYWORD_FIELDS:
                client.create_payload_index(
                    collection,
                    field_name=field,
                    field_schema=qm.KeywordIndexParams(
                        type=qm.KeywordIndexType.KEYWORD, is_tenant=field == "tenant_id"
                    ),
                )
            self._meta = meta

    def _read_meta(self) -> IndexMeta | None:
        info = self._client.get_collection(self._collection)
        raw = getattr(info.config, "metadata", None) or {}
        if not raw:
            return None
        return IndexMeta(
            embedder=raw["embedder"],
            dim=int(raw["dim"]),
            sparse=raw.get("sparse", ""),
            schema=int(raw.get("schema", 1)),
        )

    def meta(self) -> IndexMeta | None:
        return self._meta

    def upsert(self, points: Sequence[StoredPoint]) -> None:
        if not points:
            return
        self._client.upsert(
            self._collection,
            points=[
                qm.PointStruct(
                    id=p.id,
                    vector={
                        DENSE: p.dense.astype(np.float32).tolist(),
                        SPARSE: qm.SparseVector(indices=p.sparse.indices, values=p.sparse.values),
                    },
                    payload=p.payload,
                )
                for p in points
            ],
            wait=True,
        )

    def delete_document(self, tenant_id: str, doc_id: str) -> None:
        selector = qm.FilterSelector(filter=server_filter(require_tenant(tenant_id), doc_id=doc_id))
        self._client.delete(self._collection, points_selector=selector, wait=True)

    def delete_stale(self, tenant_id: str, doc_id: str, keep_version: int) -> None:
        flt = server_filter(require_tenant(tenant_id), doc_id=doc_id)
        flt.must_not = [
            qm.FieldCondition(key="metadata.doc_version", match=qm.MatchValue(value=keep_version))
        ]
        self._client.delete(self._collection, points_selector=qm.FilterSelector(filter=flt), wait=True)

    def delete_tenant(self, tenant_id: str) -> None:
        selector = qm.FilterSelector(filter=server_filter(require_tenant(tenant_id)))
        self._client.delete(self._collection, points_selector=selector, wait=True)

    def count(self, tenant_id: str | None = None, filters: SearchFilters | None = None) -> int:
        flt = server_filter(require_tenant(tenant_id), filters) if tenant_id is not None else None
        return int(self._client.count(self._collection, count_filter=flt, exact=True).count)

    def candidates(
        self,
        tenant_id: str,
        dense: np.ndarray,
        sparse: SparseVector,
        limit: int,
        filters: SearchFilters | None = None,
    ) -> tuple[list[SearchHit], list[SearchHit]]:
        flt = server_filter(require_tenant(tenant_id), filters)
        requests = [
            qm.QueryRequest(
                query=dense.astype(np.float32).tolist(),
                using=DENSE,
                filter=flt,
                limit=limit,
                with_payload=False,
            )
        ]
        if sparse:
            requests.append(
                qm.QueryRequest(
                    query=qm.SparseVector(indices=sparse.indices, values=sparse.values),
                    using=SPARSE,
                    filter=flt,
                    limit=limit,
                    with_payload=False,
                )
            )
        responses = self._client.query_batch_points(self._collection, requests=requests)
        dense_hits = [bare_hit(p.id, p.score) for p in responses[0].points]
        sparse_hits = [bare_hit(p.id, p.score) for p in responses[1].points] if sparse else []
        return dense_hits, sparse_hits

    def hydrate(self, tenant_id: str, hits: Sequence[SearchHit]) -> list[SearchHit]:
        if not hits:
            return []
        records = self._client.retrieve(self._collection, ids=[h.point_id for h in hits], with_payload=True)
        return hydrated(hits, {str(r.id): r.payload or {} for r in records}, require_tenant(tenant_id))

    def chunks(self, tenant_id: str, doc_id: str | None = None) -> list[SearchHit]:
        flt = server_filter(require_tenant(tenant_id), doc_id=doc_id)
        out: list[SearchHit] = []
        offset = None
        while True:
            records, offset = self._client.scroll(
                self._collection, scroll_filter=flt, limit=512, offset=offset, with_payload=True
            )
            out.extend(SearchHit.from_payload(r.id, 0.0, r.payload or {}) for r in records)
            if offset is None:
                return out

    def reencode_sparse(
        self,
        encode: Callable[[dict[str, Any]], SparseVector],
        meta: IndexMeta,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Replace every point's BM25 vector with one encoded again from its payload by `encode` (dense
        vectors and payloads kept), then record `meta` in the collection; return the number of points.

        The metadata is written last: stopped half way, the collection is still refused on open as
        holding the old encoding, and running this again finishes the job.
        """
        done = 0
        offset = None
        while True:
            records, offset = self._client.scroll(
                self._collection, limit=256, offset=offset, with_payload=True, with_vectors=False
            )
            if records:
                updates = []
                for r in records:
                    sparse = encode(r.payload or {})
                    vector = qm.SparseVector(indices=sparse.indices, values=sparse.values)
                    updates.append(qm.PointVectors(id=r.id, vector={SPARSE: vector}))
                self._client.update_vectors(self._collection, points=updates, wait=True)
                done += len(updates)
                if progress is not None:
                    progress(len(updates))
            if offset is None:
                break
        self._client.update_collection(self._collection, metadata=meta.as_dict())
        self._meta = meta
        return done

    def optimize(self) -> bool:
        # A Qdrant server runs its optimizers by itself.
        return False

    def close(self) -> None:
        self._client.close()
