"""Ingestion benchmark: the whole pipeline's throughput against the raw encoder's on the same texts."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from retrieval.embedders import Embedder
from retrieval.index import KnowledgeIndex, indexed_text
from retrieval.settings import Settings

from .pipeline import Ingestor
from .registry import Registry
from .sources import TextDocument, text_items


def run_ingest_benchmark(
    settings: Settings, embedder: Embedder, corpus_file: Path, *, chunks: int = 3000, rounds: int = 6
) -> dict[str, Any]:
    """Return chunks/s of raw encoding and of the full pipeline (parse → redact → chunk → embed → upsert → registry)."""
    rows = [json.loads(line) for line in corpus_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    docs = [
        TextDocument(
            f"{rows[i % len(rows)]['id']}#{i // len(rows)}",
            rows[i % len(rows)]["text"],
            rows[i % len(rows)].get("title", ""),
        )
        for i in range(chunks)
    ]
    with tempfile.TemporaryDirectory(prefix="invekto-bench-ingest-") as tmp:
        run_settings = settings.model_copy(
            update={"data_dir": Path(tmp), "database_url": None, "store": "edge"}
        )
        index = KnowledgeIndex(run_settings, embedder=embedder)
        registry = Registry(run_settings.registry_url)
        ingestor = Ingestor(index, registry)
        ingestor.ensure_tenant("bench")
        items = text_items("bench", docs)
        built = [[indexed_text(c) for c in item.build()] for item in items]
        embedder.embed_documents(built[0][:1])  # warm-up for both sides
        index.warm_up()  # and the BM25 word frequencies, which a server loads once at start
        if index.encode_pool is not None:
            index.encode_pool.encode(built[0][:1])  # its workers start and load the model
        # Raw encoding and the pipeline alternate in rounds, so load from other processes falls on both
        # sides alike instead of on whichever ran second.
        raw_s = pipeline_s = 0.0
        written = 0
        step = max(1, len(items) // rounds)
        for start in range(0, len(items), step):
            texts = [t for texts in built[start : start + step] for t in texts]
            began = time.perf_counter()
            for i in range(0, len(texts), 64):
                embedder.embed_documents(texts[i : i + 64])
            raw_s += time.perf_counter() - began
            began = time.perf_counter()
            job = ingestor.run("bench", "files", items[start : start + step])
            index.maintain()  # the HNSW build the job started counts, and is not left to the next raw round
            pipeline_s += time.perf_counter() - began
            written += job.chunks_written
        index.close()
        registry.close()
    texts_total = sum(len(t) for t in built)
    raw_rate, pipe_rate = texts_total / raw_s, written / pipeline_s
    return {
        "documents": len(docs),
        "chunks": written,
        "rounds": rounds,
        "raw_encoder_chunks_per_s": round(raw_rate, 1),
        "pipeline_chunks_per_s": round(pipe_rate, 1),
        "ratio": round(pipe_rate / raw_rate, 3),
        "raw_s": round(raw_s, 2),
        "pipeline_s": round(pipeline_s, 2),
        "embedder": embedder.model_id,
        "encode_workers": settings.encode_workers or 0,
    }


def markdown_table(report: dict[str, Any]) -> str:
    """Return the ingestion benchmark as a Markdown table."""
    return (
        "| documents | chunks | encode workers | raw encoder chunks/s | pipeline chunks/s | pipeline / raw |\n"
        "|---:|---:|---:|---:|---:|---:|\n"
        f"| {report['documents']:,} | {report['chunks']:,} | {report.get('encode_workers', 0)} | "
        f"{report['raw_encoder_chunks_per_s']} | {report['pipeline_chunks_per_s']} | {report['ratio']:.3f} |\n"
    )
