"""The default store: an embedded Qdrant Edge shard on disk under the data dir."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import qdrant_edge as qe

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

_META_FILE = "index.json"
_LOCK_FILE = ".lock"
_SHARD_DIR = "shard"
# Merge policy. An optimize indexes a new tail as a segment of its own and merges only small segments:
# with up to SEGMENTS segments before the smallest are merged, and no merge making a segment larger than
# MERGE_LIMIT_KB of dense vectors (about 8k points of 512-d), a large segment is never rewritten for a
# small tail. Measured at 20k points, a 1k-chunk job's optimize: 3.3-5.9 s merging the tail into the
# large segment (the engine's default of as many segments as cores), 0.4-1.1 s with this policy.
SEGMENTS = 8
MERGE_LIMIT_KB = 16_000
# compact() writes the new shard here, then swaps it in; the old one waits here until it is removed.
_NEW_SHARD_DIR = "shard.compact"
_OLD_SHARD_DIR = "shard.old"


def edge_filter(tenant_id: str, filters: SearchFilters | None = None, doc_id: str | None = None) -> qe.Filter:
    """Return the engine filter: always the tenant, then optional source/doc/metadata conditions."""
    must: list[qe.FieldCondition] = [qe.FieldCondition(key="tenant_id", match=qe.MatchValue(tenant_id))]
    if doc_id is not None:
        must.append(qe.FieldCondition(key="doc_id", match=qe.MatchValue(doc_id)))
    if filters is not None:
        if filters.sources:
            must.append(qe.FieldCondition(key="source", match=qe.MatchAny(list(filters.sources))))
        if filters.doc_ids:
            must.append(qe.FieldCondition(key="doc_id", match=qe.MatchAny(list(filters.doc_ids))))
        for key, value in filters.metadata.items():
            must.append(qe.FieldCondition(key=f"metadata.{key}", match=qe.MatchValue(value)))
    return qe.Filter(must=must)  # type: ignore[arg-type]


class EdgeStore:
    """Qdrant Edge shard in `index_dir/shard`, locked to one process, with the index metadata beside it."""

    backend = "edge"

    def __init__(self, index_dir: Path, meta: IndexMeta) -> None:
        self.index_dir = Path(index_dir)
        self._write_lock = threading.Lock()
        try:
            self.index_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"Cannot create the index directory {self.index_dir}: {exc}") from exc
        self._lock_fd = self._acquire_process_lock()
        try:
            self._finish_interrupted_compaction()
            self._meta = self._load_meta()
            shard_dir = self.index_dir / _SHARD_DIR
            if self._meta is None:
                if shard_dir.exists() and any(shard_dir.iterdir()):
                    raise StoreError(
                        f"The index at {self.index_dir} has shard data but no {_META_FILE}: it is damaged or "
                        "was not written by this service. Move it away and ingest again."
                    )
                self._shard = qe.EdgeShard.create(str(shard_dir), self._config(meta.dim))
                for field in KEYWORD_FIELDS:
                    schema = qe.KeywordIndexParams(is_tenant=field == "tenant_id")
                    self._shard.update(qe.UpdateOperation.create_field_index(field, schema))
                self._write_meta(meta)
                self._meta = meta
            else:
                try:
                    # The config is re-applied: an index written by an older release gets today's settings.
                    self._shard = qe.EdgeShard.load(str(shard_dir), self._config(self._meta.dim))
                except Exception as exc:
                    raise StoreError(
                        f"The index at {shard_dir} cannot be opened ({exc}). It may be corrupt: restore a "
                        "backup or move it away and ingest again."
                    ) from exc
        except BaseException:
            self._release_process_lock()
            raise

    @staticmethod
    def _config(dim: int) -> qe.EdgeConfig:
        return qe.EdgeConfig(
            vectors={DENSE: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)},
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            # payload_m builds per-tenant links so filtered HNSW search stays exact within a tenant.
            hnsw_config=qe.HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=10_000, payload_m=16),
            # optimize() indexes every segment it finds unindexed; *when* it runs is KnowledgeIndex.maintain's
            # call (INVEKTO_OPTIMIZE_THRESHOLD), not the engine's default 20 MB segment size.
            optimizers=qe.EdgeOptimizersConfig(
                indexing_threshold=1, default_segment_number=SEGMENTS, max_segment_size=MERGE_LIMIT_KB
            ),
            max_search_threads=1,
        )

    def _acquire_process_lock(self) -> int:
        path = self.index_dir / _LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreError(
                f"The index at {self.index_dir} is in use (lock held by pid {holder}). "
                "Stop it, or point INVEKTO_DATA_DIR at another directory."
            ) from exc
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        return fd

    def _release_process_lock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None  # type: ignore[assignment]

    def _load_meta(self) -> IndexMeta | None:
        path = self.index_dir / _META_FILE
        if not path.exists():
            return None
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return IndexMeta(
                embedder=raw["embedder"], dim=int(raw["dim"]), sparse=raw["sparse"], schema=raw["schema"]
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(
                f"The index metadata {path} is corrupt ({exc}); move the index away and re-ingest."
            ) from exc

    def _write_meta(self, meta: IndexMeta) -> None:
        path = self.index_dir / _META_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(meta.as_dict(), indent=2), encoding="utf-8")
        os.replace(tmp, path)

    def meta(self) -> IndexMeta | None:
        return self._meta

    def upsert(self, points: Sequence[StoredPoint]) -> None:
        if not points:
            return
        batch = [
            qe.Point(
                id=p.id,
                vector={
                    DENSE: p.dense.astype(np.float32).tolist(),
                    SPARSE: qe.SparseVector(p.sparse.indices, p.sparse.values),
                },
                payload=p.payload,
            )
            for p in points
        ]
        with self._write_lock:
            self._shard.update(qe.UpdateOperation.upsert_points(batch))

    def delete_document(self, tenant_id: str, doc_id: str) -> None:
        flt = edge_filter(require_tenant(tenant_id), doc_id=doc_id)
        with self._write_lock:
            self._shard.update(qe.UpdateOperation.delete_points_by_filter(flt))

    def delete_stale(self, tenant_id: str, doc_id: str, keep_version: int) -> None:
        flt = edge_filter(require_tenant(tenant_id), doc_id=doc_id)
        keep = qe.FieldCondition(key="metadata.doc_version", match=qe.MatchValue(keep_version))
        with self._write_lock:
            self._shard.update(
                qe.UpdateOperation.delete_points_by_filter(qe.Filter(must=flt.must, must_not=[keep]))
            )

    def delete_tenant(self, tenant_id: str) -> None:
        with self._write_lock:
            self._shard.update(
                qe.UpdateOperation.delete_points_by_filter(edge_filter(require_tenant(tenant_id)))
            )

    def count(self, tenant_id: str | None = None, filters: SearchFilters | None = None) -> int:
        flt = edge_filter(require_tenant(tenant_id), filters) if tenant_id is not None else None
        return int(self._shard.count(qe.CountRequest(exact=True, filter=flt)))

    def candidates(
        self,
        tenant_id: str,
        dense: np.ndarray,
        sparse: SparseVector,
        limit: int,
        filters: SearchFilters | None = None,
    ) -> tuple[list[SearchHit], list[SearchHit]]:
        flt = edge_filter(require_tenant(tenant_id), filters)
        requests = [
            qe.QueryRequest(
                limit=limit,
                query=qe.Query.Nearest(dense.astype(np.float32).tolist(), using=DENSE),
                filter=flt,
                with_payload=False,
            )
        ]
        if sparse:
            requests.append(
                qe.QueryRequest(
                    limit=limit,
                    query=qe.Query.Nearest(qe.SparseVector(sparse.indices, sparse.values), using=SPARSE),
                    filter=flt,
                    with_payload=False,
                )
            )
        results = self._shard.query_batch(qe.QueryBatchRequest(requests))
        dense_hits = [bare_hit(p.id, p.score) for p in results[0]]
        sparse_hits = [bare_hit(p.id, p.score) for p in results[1]] if sparse else []
        return dense_hits, sparse_hits

    def hydrate(self, tenant_id: str, hits: Sequence[SearchHit]) -> list[SearchHit]:
        if not hits:
            return []
        records = self._shard.retrieve([h.point_id for h in hits], with_payload=True, with_vector=False)
        return hydrated(hits, {str(r.id): r.payload or {} for r in records}, require_tenant(tenant_id))

    def chunks(self, tenant_id: str, doc_id: str | None = None) -> list[SearchHit]:
        flt = edge_filter(require_tenant(tenant_id), doc_id=doc_id)
        out: list[SearchHit] = []
        offset = None
        while True:
            records, offset = self._shard.scroll(
                qe.ScrollRequest(offset=offset, limit=512, filter=flt, with_payload=True)
            )
            out.extend(SearchHit.from_payload(r.id, 0.0, r.payload or {}) for r in records)
            if offset is None:
                return out

    def _finish_interrupted_compaction(self) -> None:
        shard, old = self.index_dir / _SHARD_DIR, self.index_dir / _OLD_SHARD_DIR
        if not shard.exists() and old.exists():  # stopped between the two renames: keep the old shard
            os.rename(old, shard)
        for leftover in (old, self.index_dir / _NEW_SHARD_DIR):
            shutil.rmtree(leftover, ignore_errors=True)

    def compact(self) -> int:
        """Rewrite the shard with its live points only and return their number.

        Deleting points only marks them: their payloads stay in the segments and the write-ahead log
        until the engine reuses the space. After an erasure nothing of them may stay on disk, so the live
        points are copied into a new shard, which replaces the old one; the old one is removed. The new
        shard's dense vectors are not in HNSW yet (the next KnowledgeIndex.maintain builds it).
        """
        shard_dir = self.index_dir / _SHARD_DIR
        new_dir, old_dir = self.index_dir / _NEW_SHARD_DIR, self.index_dir / _OLD_SHARD_DIR
        assert self._meta is not None
        config = self._config(self._meta.dim)
        with self._write_lock:
            shutil.rmtree(new_dir, ignore_errors=True)
            new = qe.EdgeShard.create(str(new_dir), config)
            copied = 0
            try:
                for field in KEYWORD_FIELDS:
                    schema = qe.KeywordIndexParams(is_tenant=field == "tenant_id")
                    new.update(qe.UpdateOperation.create_field_index(field, schema))
                offset = None
                while True:
                    records, offset = self._shard.scroll(
                        qe.ScrollRequest(offset=offset, limit=256, with_payload=True, with_vector=True)
                    )
                    if records:
                        points = [qe.Point(id=r.id, vector=r.vector, payload=r.payload) for r in records]
                        new.update(qe.UpdateOperation.upsert_points(points))
                        copied += len(points)
                    if offset is None:
                        break
                new.flush()
            finally:
                new.close()
            self._shard.close()
            os.rename(shard_dir, old_dir)
            os.rename(new_dir, shard_dir)
            shutil.rmtree(old_dir)
            self._shard = qe.EdgeShard.load(str(shard_dir), config)
        return copied

    def optimize(self) -> bool:
        """Build HNSW for unindexed segments and merge small ones; blocks, holding the GIL, until done.

        The engine frees the segments an optimize replaced (their files and memory mappings) when it next
        flushes, so it flushes at once: without that, each optimize left the replaced copy behind until
        the index was closed (measured at 20k points, 4 jobs of 1k chunks: disk 327 -> 2,078 MiB and
        RSS 284 -> 1,064 MiB, 18 segment folders for 2 live ones).
        """
        with self._write_lock:
            ran = bool(self._shard.optimize())
            if ran:
                self._shard.flush()
            return ran

    def flush(self) -> None:
        with self._write_lock:
            self._shard.flush()

    def info(self) -> dict[str, int]:
        info = self._shard.info()
        return {
            "points": info.points_count,
            "indexed_vectors": info.indexed_vectors_count,
            # Sparse vectors are indexed as they are written; dense ones only by optimize() (HNSW), so the
            # engine's count is points (sparse) + dense vectors in an HNSW segment.
            "unindexed_dense": max(0, 2 * info.points_count - info.indexed_vectors_count),
            "segments": info.segments_count,
        }

    def close(self) -> None:
        shard = getattr(self, "_shard", None)
        if shard is not None:
            with self._write_lock:
                shard.flush()
                shard.close()
            self._shard = None  # type: ignore[assignment]
        self._release_process_lock()
