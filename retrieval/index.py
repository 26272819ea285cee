"""The knowledge index: embed and store chunks, and answer tenant-scoped hybrid queries."""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np

from .embed_process import EncodePool, ProcessEmbedder
from .embedders import Embedder, embed_queries, load_embedder
from .fusion import fuse, weighted_by_source
from .language import detect_language
from .models import Chunk, SearchFilters, SearchHit, SearchResult
from .ranking import CrossEncoderReranker, mmr
from .settings import Settings
from .sparse import TurkishBm25
from .store import IndexMeta, StoredPoint, StoreError, VectorStore, check_meta, require_tenant
from .text import strip_placeholders

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 4_000
# Batches an upsert keeps with the encode workers beyond the one it stores: each worker has its next part
# queued when it finishes one, so none waits while this process stores.
AHEAD_BATCHES = 2


def indexed_text(chunk: Chunk) -> str:
    """Return the text that is embedded for a chunk: title and section give it context."""
    return _with_head(chunk.title, chunk.section, chunk.text)


def payload_text(payload: Mapping[str, Any]) -> str:
    """Return the text both encoders read for a stored point, from its payload (as for `indexed_text`)."""
    return encoder_text(
        _with_head(
            str(payload.get("title") or ""), str(payload.get("section") or ""), str(payload.get("text") or "")
        )
    )


def _with_head(title: str, section: str, text: str) -> str:
    head = " — ".join(part for part in (title, section) if part)
    return f"{head}\n{text}" if head else text


def encoder_text(text: str) -> str:
    """Return `text` as both encoders see it: redaction placeholders left out (the stored text keeps them)."""
    return strip_placeholders(text)


def _batches(chunks: Sequence[Chunk], size: int) -> list[list[Chunk]]:
    return [list(chunks[start : start + size]) for start in range(0, len(chunks), size)]


def _encoder_texts(chunks: Sequence[Chunk]) -> list[str]:
    return [encoder_text(indexed_text(c)) for c in chunks]


@dataclass
class EncodingAhead:
    """Chunks whose encoding the encode workers started (`KnowledgeIndex.encode_ahead`): one waiting
    call per batch, each to be called once, by the upsert that stores them or by `discard`."""

    batches: list[list[Chunk]]
    pending: list[Callable[[], tuple[np.ndarray, list[Any]]]]

    def discard(self) -> None:
        """Wait for and drop what is still being encoded (its workers are released all the same)."""
        waiting, self.pending = self.pending, []
        for result in waiting:
            with contextlib.suppress(Exception):
                result()


@dataclass(frozen=True)
class QueryOptions:
    """Per-query knobs; defaults come from Settings."""

    limit: int = 5
    fusion: str | None = None
    dense_weight: float | None = None
    rerank: bool | None = None
    mmr_lambda: float | None = None
    # Per-source multipliers of the fused score (Settings.source_weights when None; {} for none).
    source_weights: Mapping[str, float] | None = None


@dataclass(frozen=True)
class SearchCall:
    """One search of `KnowledgeIndex.search_many`: the arguments of `search`."""

    tenant_id: str
    query: str
    options: QueryOptions | None = None
    filters: SearchFilters | None = None


def open_store(settings: Settings, meta: IndexMeta, *, check_encoding: bool = True) -> VectorStore:
    """Return the configured store backend, refusing an index built by another embedder (and, unless
    `check_encoding` is False, one whose BM25 vectors were encoded otherwise: `reencode_sparse` opens it)."""
    if settings.store == "edge":
        from .edge_store import EdgeStore

        store: VectorStore = EdgeStore(settings.index_dir, meta)
        where = str(settings.index_dir)
    else:
        from .server_store import ServerStore, connect

        if not settings.qdrant_url:
            raise StoreError(
                "INVEKTO_STORE=server needs INVEKTO_QDRANT_URL (http(s)://host:6333, :memory: or local:<path>)"
            )
        key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        with warnings.catch_warnings():
            # Local mode warns that payload indexes are no-ops there; a real server uses them.
            warnings.simplefilter("ignore", UserWarning)
            store = ServerStore(
                connect(settings.qdrant_url, key), settings.collection, meta, settings.qdrant_url
            )
        where = f"{settings.qdrant_url} collection {settings.collection!r}"
    try:
        check_meta(store.meta(), meta, where)
        if check_encoding:
            check_sparse(store.meta(), meta, where)
    except StoreError:
        store.close()
        raise
    return store


def check_sparse(found: IndexMeta | None, wanted: IndexMeta, where: str) -> None:
    """Raise StoreError when an existing index holds BM25 vectors of another sparse encoding than this one.

    Old and new vectors share no token ids, so mixing them would silently make every old chunk
    unfindable by its words; the index has to be rebuilt instead.
    """
    if found is None or found.sparse == wanted.sparse:
        return
    raise StoreError(
        f"The index at {where} holds BM25 vectors encoded as {found.sparse or 'an unrecorded encoding'!r}, "
        f"but this release encodes {wanted.sparse!r}; the two cannot be searched together. Run "
        "`invekto-knowledge index reencode` once (with the service stopped): it encodes every stored "
        "chunk's BM25 vector again from its text, keeping the dense vectors, and nothing is ingested again."
    )


def reencode_sparse(
    settings: Settings, progress: Callable[[int], None] | None = None, embedder: Embedder | None = None
) -> tuple[int, str]:
    """Encode every stored point's BM25 vector again with this release's encoding (after an upgrade that
    changed it) and record the encoding in the index; return (points re-encoded, the encoding before).

    Dense vectors and payloads are kept; the text is read back from each payload. An index that already
    holds this encoding is left as it is (0 points). Both backends; the edge index is rewritten into a new
    generation, swapped in and optimised (blocking, as `index optimize`), a Qdrant server collection is
    updated in place.
    """
    bm25 = TurkishBm25()
    embedder = embedder or load_embedder(settings.embedder)  # its id and size: an index of another is refused
    meta = IndexMeta(embedder=embedder.model_id, dim=embedder.dim, sparse=bm25.model_id)
    store = open_store(settings, meta, check_encoding=False)
    try:
        found = store.meta()
        before = (found.sparse if found else "") or "an unrecorded encoding"
        if found is not None and found.sparse == meta.sparse:
            return 0, before
        done = store.reencode_sparse(
            lambda payload: bm25.embed_document(payload_text(payload)), meta, progress
        )
        log.info("BM25 vectors re-encoded: %d points, %s -> %s", done, before, meta.sparse)
        # The edge index was rewritten into a new shard: its HNSW is built now, while the service is stopped,
        # not by the first searches scanning every point (a Qdrant server builds its own).
        store.optimize()
        return done, before
    finally:
        store.close()


class KnowledgeIndex:
    """Hybrid (dense + Turkish BM25) index over every tenant's chunks; every read needs a tenant."""

    def __init__(
        self, settings: Settings, embedder: Embedder | None = None, store: VectorStore | None = None
    ) -> None:
        self.settings = settings
        self._owned_embedder: ProcessEmbedder | None = None
        if embedder is None and settings.encoder_process:
            embedder = self._owned_embedder = ProcessEmbedder(settings.embedder)
        self.embedder = embedder or load_embedder(settings.embedder)
        self.bm25 = TurkishBm25()
        self.meta = IndexMeta(
            embedder=self.embedder.model_id, dim=self.embedder.dim, sparse=self.bm25.model_id
        )
        try:
            self.store = store or open_store(settings, self.meta)
        except BaseException:
            if self._owned_embedder is not None:
                self._owned_embedder.close()
            raise
        self._reranker: CrossEncoderReranker | None = None
        workers = settings.encode_workers or 0
        self.encode_pool = (
            EncodePool(settings.embedder, workers, expect_model=self.meta.embedder) if workers else None
        )

    @property
    def encodes_aside(self) -> bool:
        """True when chunks are encoded in worker processes, so a writer need not hold this process's GIL."""
        return self.encode_pool is not None

    # ----- writes -----
    def encode_ahead(self, chunks: Sequence[Chunk], *, batch_size: int = 64) -> EncodingAhead | None:
        """Start encoding `chunks` in the encode workers now and return what `upsert(chunks, ahead=...)`
        stores; None without workers (in-process encoding happens in upsert).

        A writer calls it for its next batch before it waits for the one being stored, so the workers
        encode while this process stores, writes the registry and reads the next documents.
        """
        pool = self.encode_pool
        if pool is None or not chunks:
            return None
        batches = _batches(chunks, batch_size)
        return EncodingAhead(batches, [pool.submit(_encoder_texts(b)) for b in batches])

    def upsert(
        self,
        chunks: Sequence[Chunk],
        *,
        batch_size: int = 64,
        progress: Callable[[int], None] | None = None,
        ahead: EncodingAhead | None = None,
    ) -> int:
        """Embed and store `chunks` (idempotent by point id); returns how many were written.

        With encode workers, they compute both vectors, up to AHEAD_BATCHES batches ahead of the one being
        stored; `ahead` (from encode_ahead on these same chunks) was started earlier."""
        if ahead is not None and (
            not ahead.pending
            or [c.point_id for b in ahead.batches for c in b] != [c.point_id for c in chunks]
        ):
            ahead.discard()  # already used, or started for other chunks
            ahead = None
        pool = self.encode_pool
        # `texts`: what is still to be sent to the workers, or encoded here (none when it came ahead).
        if ahead is not None:
            batches, texts = ahead.batches, []
            pending, ahead.pending = ahead.pending, []
        else:
            batches = _batches(chunks, batch_size)
            texts = [_encoder_texts(batch) for batch in batches]
            pending = [pool.submit(t) for t in texts[:AHEAD_BATCHES]] if pool is not None else []
        written = 0
        try:
            for n, batch in enumerate(batches):
                if pending:
                    dense, sparse = pending.pop(0)()
                    queued = n + 1 + len(pending)
                    if pool is not None and queued < len(texts):
                        pending.append(pool.submit(texts[queued]))
                else:
                    dense = self.embedder.embed_documents(texts[n])
                    sparse = [self.bm25.embed_document(text) for text in texts[n]]
                points = [
                    StoredPoint(c.point_id, dense[i], sparse[i], c.payload()) for i, c in enumerate(batch)
                ]
                self.store.upsert(points)
                written += len(points)
                if progress:
                    progress(len(points))
        finally:
            for waiting in pending:
                with contextlib.suppress(Exception):
                    waiting()  # a batch no longer stored: its workers are released all the same
        return written

    def delete_document(self, tenant_id: str, doc_id: str) -> None:
        self.store.delete_document(require_tenant(tenant_id), doc_id)

    def delete_stale(self, tenant_id: str, doc_id: str, keep_version: int) -> None:
        self.store.delete_stale(require_tenant(tenant_id), doc_id, keep_version)

    def delete_tenant(self, tenant_id: str) -> None:
        self.store.delete_tenant(require_tenant(tenant_id))

    def chunks(self, tenant_id: str, doc_id: str | None = None) -> list[SearchHit]:
        """Return every stored chunk of a tenant, or of one of its documents."""
        return self.store.chunks(require_tenant(tenant_id), doc_id)

    def count(self, tenant_id: str | None = None, filters: SearchFilters | None = None) -> int:
        return self.store.count(tenant_id, filters)

    def maintain(self) -> bool:
        """Build the HNSW index when enough points are unindexed (edge only); returns True if it ran.

        Called at the end of an ingestion job, never per batch; below the threshold the engine's exact
        search over the tenant's points is already fast. Waits for the build (maintain_async does not).
        """
        return self.maintain_async().result()

    def maintain_async(self) -> Future[bool]:
        """maintain() without waiting: the build runs aside (edge: a copy optimised in a process of its own,
        swapped in when built), so searches and writes go on meanwhile; the future says whether it ran."""
        info: dict[str, Any] = getattr(self.store, "info", lambda: {})()
        done: Future[bool] = Future()
        if info.get("unindexed_dense", 0) < self.settings.optimize_threshold:
            done.set_result(False)
            return done
        started = time.perf_counter()
        aside: Callable[[], Future[bool]] | None = getattr(self.store, "optimize_aside", None)
        if aside is None:
            done.set_result(self.store.optimize())
            return done
        future = aside()

        def report(f: Future[bool]) -> None:
            if f.exception() is not None:
                return  # whoever waits on the future gets the error (an ingestion job logs it)
            log.info(
                "index optimised: %d points in %.1fs (%s)",
                info.get("points", 0),
                time.perf_counter() - started,
                "built" if f.result() else "not built",
            )

        future.add_done_callback(report)
        return future

    def compact(self) -> int:
        """Rewrite the store without deleted points (edge: a new shard, WAL and segments included); return
        the live points. After an erasure nothing deleted may stay on disk. HNSW for the new shard is left
        to the next maintain() (an ingestion job, `index optimize`): until then queries scan with the tenant
        filter, which is exact. A Qdrant server keeps its own files and vacuums them itself: there this
        only reports the count."""
        rewrite = getattr(self.store, "compact", None)
        if rewrite is None:
            return self.store.count()
        started = time.perf_counter()
        live = int(rewrite())
        log.info("index compacted: %d live points in %.1fs", live, time.perf_counter() - started)
        return live

    # ----- reads -----
    def search(
        self,
        tenant_id: str,
        query: str,
        options: QueryOptions | None = None,
        filters: SearchFilters | None = None,
    ) -> SearchResult:
        """Return the best chunks of `tenant_id` for `query`; never another tenant's."""
        result = self.search_many([SearchCall(tenant_id, query, options, filters)])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def search_many(self, calls: Sequence[SearchCall]) -> list[SearchResult | Exception]:
        """Answer several searches, their queries encoded as one batch (cheaper per query than one by one).

        Each item is the call's result or the exception it raised (a bad query fails only its own call).
        """
        checked: list[tuple[str, QueryOptions] | ValueError] = []
        for call in calls:
            try:
                checked.append(self._checked(call.tenant_id, call.query, call.options))
            except ValueError as exc:
                checked.append(exc)
        queries = [
            encoder_text(call.query)
            for call, c in zip(calls, checked, strict=True)
            if not isinstance(c, ValueError)
        ]
        t0 = time.perf_counter()
        vectors = iter(embed_queries(self.embedder, queries) if queries else [])
        encode_ms = (time.perf_counter() - t0) * 1e3 / max(1, len(queries))
        results: list[SearchResult | Exception] = []
        for call, check in zip(calls, checked, strict=True):
            if isinstance(check, ValueError):
                results.append(check)
                continue
            tenant_id, opts = check
            try:
                results.append(
                    self._search(tenant_id, call.query, opts, call.filters, next(vectors), encode_ms)
                )
            except Exception as exc:  # reported to that caller; the other calls still get answers
                results.append(exc)
        return results

    def _checked(self, tenant_id: str, query: str, options: QueryOptions | None) -> tuple[str, QueryOptions]:
        tenant_id = require_tenant(tenant_id)
        if not isinstance(query, str) or not query.strip():
            raise ValueError("The query is empty: type a question or customer message to search for")
        if len(query) > MAX_QUERY_CHARS:
            raise ValueError(f"The query is {len(query)} characters long; the limit is {MAX_QUERY_CHARS}")
        opts = options or QueryOptions()
        if opts.limit < 1 or opts.limit > 100:
            raise ValueError("limit must be between 1 and 100")
        return tenant_id, opts

    def _search(
        self,
        tenant_id: str,
        query: str,
        opts: QueryOptions,
        filters: SearchFilters | None,
        dense_vec: np.ndarray,
        encode_ms: float,
    ) -> SearchResult:
        s = self.settings
        t1 = time.perf_counter()
        sparse_vec = self.bm25.embed_query(query)
        prefetch = max(s.prefetch_limit, opts.limit)
        dense_hits, sparse_hits = self.store.candidates(tenant_id, dense_vec, sparse_vec, prefetch, filters)
        t2 = time.perf_counter()
        method = opts.fusion or s.fusion
        weight = opts.dense_weight
        if weight is None:
            weight = s.english_dense_weight if detect_language(query) == "en" else s.dense_weight
        rerank = opts.rerank if opts.rerank is not None else bool(s.rerank_model)
        lam = opts.mmr_lambda if opts.mmr_lambda is not None else s.mmr_lambda
        weights = {
            k: w
            for k, w in (s.source_weights if opts.source_weights is None else opts.source_weights).items()
            if w != 1.0
        }
        # Second-stage ranking reads the chunk's payload, so it gets a wider hydrated pool than the final limit.
        pool = max(opts.limit * 4, 20) if (rerank or lam is not None or weights) else opts.limit
        # Each fused hit keeps its raw cosine and BM25: assist uses them as absolute relevance evidence.
        ranked = fuse(method, dense_hits, sparse_hits, dense_weight=weight, rrf_k=s.rrf_k, top=pool)
        if weights and not rerank and lam is None and len(ranked) > opts.limit:
            # Only a hit whose best weighted score can reach the limit-th hit's worst one can enter the
            # final list: the rest are not read from the store (same ranking, fewer payloads).
            reach = max(1.0, *weights.values()) / min(1.0, *weights.values())
            floor = ranked[opts.limit - 1].score / reach
            ranked = [h for h in ranked if h.score >= floor]
        ranked = self.store.hydrate(tenant_id, ranked)
        if weights:
            ranked = weighted_by_source(ranked, weights)
        if rerank:
            ranked = self._rerank(query, ranked)
        if lam is not None:
            ranked = mmr(ranked, lam=lam, limit=opts.limit)
        hits: list[SearchHit] = ranked[: opts.limit]
        t3 = time.perf_counter()
        timings = {
            "encode": encode_ms,
            "engine": (t2 - t1) * 1e3,
            "fuse": (t3 - t2) * 1e3,
            "total": encode_ms + (t3 - t1) * 1e3,
        }
        result = SearchResult(hits=hits, tenant_id=tenant_id, query=query, timings_ms=timings)
        if not hits and self.store.count(tenant_id) == 0:
            result.tenant_known = False
            result.note = f"Tenant {tenant_id!r} has no indexed knowledge yet: ingest documents first."
        elif not hits:
            result.note = "No indexed chunk matches this query and these filters."
        return result

    def warm_up(self) -> None:
        """Load the embedder's weights and the Turkish word frequencies now (both load on first use, the
        frequencies in about 0.4 s), so no request pays for them."""
        self.embedder.embed_query("hazır")
        self.bm25.embed_query("hazir")

    def _rerank(self, query: str, hits: list[SearchHit]) -> list[SearchHit]:
        if self._reranker is None:
            if not self.settings.rerank_model:
                raise ValueError("Reranking needs INVEKTO_RERANK_MODEL (a cross-encoder id or local folder)")
            self._reranker = CrossEncoderReranker(self.settings.rerank_model)
        return self._reranker.rerank(query, hits)

    def close(self) -> None:
        try:
            self.store.close()
        finally:
            if self.encode_pool is not None:
                self.encode_pool.close()
            if self._owned_embedder is not None:
                self._owned_embedder.close()

    def __enter__(self) -> KnowledgeIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
