"""Retrieval benchmark: engine latency (both prefetches + fusion + payloads of the top 5) (edge vs qdrant-client local mode) and end-to-end query latency.

Points are built from real embeddings: USE vectors and Turkish BM25 vectors of the xquad-tr-dev passages,
their sentences and questions, mixed with noise so every point is distinct. Latency depends on vector
count, dimension, sparsity and the tenant filter, not on what the text says, so this keeps the benchmark
honest without hours of encoding.
"""

from __future__ import annotations

import json
import platform
import re
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .embedders import Embedder
from .fusion import fuse
from .models import Chunk
from .settings import Settings
from .sparse import SparseVector, TurkishBm25
from .store import IndexMeta, StoredPoint, VectorStore

_SENTENCE = re.compile(r"(?<=[.!?])\s+")


@dataclass
class BenchRow:
    backend: str
    chunks: int
    tenants: int
    phase: str
    p50_ms: float
    p95_ms: float
    queries: int
    build_s: float

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def percentiles(samples: list[float]) -> tuple[float, float]:
    """Return (p50, p95) of `samples` in the samples' unit."""
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return statistics.median(ordered), p95


class PointFactory:
    """Makes distinct, realistic points (real dense + sparse vectors, perturbed) for any number of tenants."""

    def __init__(
        self, texts: list[str], queries: list[str], embedder: Embedder, bm25: TurkishBm25, seed: int = 7
    ) -> None:
        self.rng = np.random.default_rng(seed)
        self.texts = texts
        self.dense = embedder.embed_documents(texts)
        self.sparse = [bm25.embed_document(t) for t in texts]
        self.query_texts = queries
        self.query_dense = embedder.embed_documents(queries)
        self.query_sparse = [bm25.embed_query(q) for q in queries]

    def points(self, start: int, count: int, tenants: int) -> list[StoredPoint]:
        out = []
        for n in range(start, start + count):
            i, j = self.rng.integers(0, len(self.texts), size=2)
            vec = self.dense[i] + 0.35 * self.dense[j] + 0.05 * self.rng.standard_normal(self.dense.shape[1])
            vec = (vec / np.linalg.norm(vec)).astype(np.float32)
            a, b = self.sparse[i], self.sparse[j]
            merged: dict[int, float] = dict(zip(a.indices, a.values, strict=True))
            for k, v in zip(b.indices[: len(b.indices) // 3], b.values, strict=False):
                merged[k] = merged.get(k, 0.0) + v
            keys = sorted(merged)
            tenant = f"tenant-{n % tenants:02d}"
            chunk = Chunk(
                tenant,
                f"doc-{n // 8}",
                f"{n % 8:04d}",
                self.texts[i][:400],
                source="doc",
                title=f"Doc {n // 8}",
            )
            out.append(
                StoredPoint(
                    chunk.point_id, vec, SparseVector(keys, [merged[k] for k in keys]), chunk.payload()
                )
            )
        return out


def read_dataset(folder: Path) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """Return a dataset folder's corpus rows, its questions, and the texts that seed points (each passage
    and its longer sentences)."""
    corpus = [json.loads(x) for x in (folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines() if x]
    questions = [
        json.loads(x)["question"]
        for x in (folder / "queries.jsonl").read_text(encoding="utf-8").splitlines()
        if x
    ]
    texts = [c["text"] for c in corpus] + [
        s for c in corpus for s in _SENTENCE.split(c["text"]) if len(s) > 40
    ]
    return corpus, questions, texts


def _open(backend: str, path: Path, dim: int) -> VectorStore:
    meta = IndexMeta(embedder="bench", dim=dim, sparse="bm25")
    if backend == "edge":
        from .edge_store import EdgeStore

        return EdgeStore(path, meta)
    from .server_store import ServerStore, connect

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return ServerStore(connect(f"local:{path}"), "bench", meta, "local mode")


def _time_queries(store: VectorStore, factory: PointFactory, tenants: int, n: int, limit: int) -> list[float]:
    samples = []
    for q in range(n):
        k = q % len(factory.query_texts)
        tenant = f"tenant-{q % tenants:02d}"
        t0 = time.perf_counter()
        dense, sparse = store.candidates(tenant, factory.query_dense[k], factory.query_sparse[k], limit)
        store.hydrate(tenant, fuse("score", dense, sparse, dense_weight=0.4, rrf_k=60, top=5))
        samples.append((time.perf_counter() - t0) * 1e3)
    return samples


def run_benchmark(
    settings: Settings,
    embedder: Embedder,
    corpus_dir: Path,
    *,
    sizes: tuple[int, ...] = (10_000, 20_000, 100_000),
    local_sizes: tuple[int, ...] = (10_000, 20_000),
    tenants: int = 50,
    queries: int = 300,
    local_queries: int = 30,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the benchmark and return a JSON-ready dict with one row per (backend, size, phase)."""
    from .index import KnowledgeIndex

    _, qs, texts = read_dataset(corpus_dir)
    bm25 = TurkishBm25()
    progress(f"embedding {len(texts)} texts and {len(qs)} queries for point generation")
    factory = PointFactory(texts, qs, embedder, bm25)
    rows: list[BenchRow] = []
    limit = settings.prefetch_limit
    with tempfile.TemporaryDirectory(prefix="invekto-bench-") as tmp:
        for backend, backend_sizes, n_queries in (
            ("edge", sizes, queries),
            ("qdrant-client local", local_sizes, local_queries),
        ):
            store = _open(
                "edge" if backend == "edge" else "local", Path(tmp) / backend.replace(" ", "-"), embedder.dim
            )
            have = 0
            build = 0.0
            for size in sorted(backend_sizes):
                progress(f"{backend}: loading {size} points")
                t0 = time.perf_counter()
                while have < size:
                    batch = min(1000, size - have)
                    store.upsert(factory.points(have, batch, tenants))
                    have += batch
                build += time.perf_counter() - t0
                samples = _time_queries(store, factory, tenants, n_queries, limit)
                p50, p95 = percentiles(samples)
                phase = "plain segments" if backend == "edge" else "in-process python"
                rows.append(BenchRow(backend, size, tenants, phase, p50, p95, n_queries, round(build, 1)))
                progress(f"{backend} {size}: p50 {p50:.2f} ms, p95 {p95:.2f} ms")
                if backend == "edge":
                    t0 = time.perf_counter()
                    store.optimize()
                    opt = time.perf_counter() - t0
                    samples = _time_queries(store, factory, tenants, n_queries, limit)
                    p50, p95 = percentiles(samples)
                    rows.append(
                        BenchRow(
                            backend, size, tenants, "optimized (HNSW)", p50, p95, n_queries, round(opt, 1)
                        )
                    )
                    progress(f"{backend} {size} optimized in {opt:.0f}s: p50 {p50:.2f} ms, p95 {p95:.2f} ms")
            store.close()
        # End to end: a real index opened the way the service opens it, queried with real Turkish questions.
        e2e_settings = settings.model_copy(update={"data_dir": Path(tmp) / "e2e", "store": "edge"})
        e2e_size = max(sizes)
        with KnowledgeIndex(e2e_settings, embedder=embedder) as index:
            progress(f"end-to-end: loading {e2e_size} points")
            for start in range(0, e2e_size, 1000):
                index.store.upsert(factory.points(start, min(1000, e2e_size - start), tenants))
            index.store.optimize()
            samples, encode = [], []
            for q in range(queries):
                result = index.search(f"tenant-{q % tenants:02d}", qs[q % len(qs)])
                samples.append(result.timings_ms["total"])
                encode.append(result.timings_ms["encode"])
            p50, p95 = percentiles(samples)
            rows.append(
                BenchRow(
                    "edge end-to-end (encode + search + fusion)",
                    e2e_size,
                    tenants,
                    "optimized (HNSW)",
                    p50,
                    p95,
                    queries,
                    0.0,
                )
            )
            e50, e95 = percentiles(encode)
            rows.append(
                BenchRow("query encoding only (USE-m)", e2e_size, tenants, "-", e50, e95, queries, 0.0)
            )
    speedups = {}
    for size in local_sizes:
        edge = [r for r in rows if r.backend == "edge" and r.chunks == size]
        local = [r for r in rows if r.backend.startswith("qdrant-client") and r.chunks == size]
        if edge and local:
            speedups[str(size)] = round(local[0].p50_ms / min(r.p50_ms for r in edge), 1)
    return {
        "rows": [r.as_dict() for r in rows],
        "edge_speedup_vs_local_p50": speedups,
        "config": {
            "embedder": embedder.model_id,
            "prefetch_limit": limit,
            "fusion": settings.fusion,
            "tenants": tenants,
        },
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": __import__("os").cpu_count(),
        },
    }


def markdown_table(report: dict[str, Any]) -> str:
    """Return the benchmark rows as a Markdown table."""
    lines = [
        "| backend | chunks | tenants | phase | p50 ms | p95 ms | queries | build/optimize s |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['backend']} | {r['chunks']:,} | {r['tenants']} | {r['phase']} | {r['p50_ms']:.2f} | "
            f"{r['p95_ms']:.2f} | {r['queries']} | {r['build_s']} |"
        )
    for size, x in report.get("edge_speedup_vs_local_p50", {}).items():
        lines.append(f"\nEdge vs qdrant-client local mode at {int(size):,} chunks: **{x}× faster** (p50).")
    return "\n".join(lines) + "\n"
