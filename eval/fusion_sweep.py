"""Compare fusion methods and weights on one dataset: candidates are fetched once, every method ranks them.

Folds split the queries by corpus document title (the article), so a weight picked on one half is
scored on articles it never saw: a gap between the two is the sign of tuning to the split.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from retrieval.embedders import Embedder
from retrieval.fusion import fuse
from retrieval.models import SearchHit
from retrieval.settings import Settings

from .datasets import load_dataset
from .metrics import retrieval_metrics
from .runner import EVAL_TENANT, conversation_query, eval_index

METHODS: tuple[tuple[str, tuple[float, ...]], ...] = (
    ("bm25", (0.0,)),
    ("dense", (1.0,)),
    ("rrf", (0.5,)),
    ("wrrf", (0.2, 0.3, 0.4)),
    ("dbsf", (0.2, 0.3, 0.4, 0.5)),
    ("score", (0.2, 0.3, 0.4, 0.5, 0.6)),
)


def _doc_run(ranked: Sequence[SearchHit], doc_of: dict[str, str]) -> list[tuple[str, float]]:
    seen: dict[str, float] = {}
    for hit in ranked[:20]:
        seen.setdefault(doc_of[hit.point_id], hit.score)
    return list(seen.items())[:10]


def sweep(settings: Settings, dataset_dir: Path, embedder: Embedder | None = None) -> dict[str, Any]:
    """Return metrics for every (method, weight) on the whole set and on two title folds."""
    dataset = load_dataset(dataset_dir)
    queries = [q for q in dataset.queries if q.answerable]
    title_of = {d.id: d.title or d.id for d in dataset.corpus}
    titles = sorted({title_of[q.relevant_ids[0]] for q in queries})
    fold_of = {t: i % 2 for i, t in enumerate(titles)}
    with eval_index(settings, dataset.corpus, embedder=embedder, show_progress=False) as ev:
        doc_of = {h.point_id: h.doc_id for h in ev.index.chunks(EVAL_TENANT)}
        candidates = {}
        for q in queries:
            text = conversation_query(q)
            dense_vec, sparse_vec = ev.index.embedder.embed_query(text), ev.index.bm25.embed_query(text)
            candidates[q.id] = ev.index.store.candidates(
                EVAL_TENANT, dense_vec, sparse_vec, settings.prefetch_limit
            )
    rows = []
    for method, weights in METHODS:
        for w in weights:
            run = {
                qid: _doc_run(fuse(method, d, s, dense_weight=w, rrf_k=settings.rrf_k, top=20), doc_of)
                for qid, (d, s) in candidates.items()
            }
            row: dict[str, Any] = {"method": method, "dense_weight": w}
            row.update(retrieval_metrics({q.id: q.relevant_ids for q in queries}, run))
            for fold in (0, 1):
                part = [q for q in queries if fold_of[title_of[q.relevant_ids[0]]] == fold]
                fold_run = {q.id: run[q.id] for q in part}
                row[f"fold{fold}_recall@1"] = retrieval_metrics(
                    {q.id: q.relevant_ids for q in part}, fold_run
                )["recall@1"]
            rows.append(row)
    return {"dataset": str(dataset_dir), "n_queries": len(queries), "rows": rows}


def markdown(report: dict[str, Any]) -> str:
    """Return the sweep as a Markdown table, best recall@1 first within each method."""
    lines = [
        f"Dataset `{report['dataset']}`, {report['n_queries']} questions.\n",
        "| method | dense weight | R@1 | R@5 | MRR@10 | nDCG@10 | R@1 fold A | R@1 fold B |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['method']} | {r['dense_weight']:.2f} | {r['recall@1']:.3f} | {r['recall@5']:.3f} | "
            f"{r['mrr@10']:.3f} | {r['ndcg@10']:.3f} | {r['fold0_recall@1']:.3f} | {r['fold1_recall@1']:.3f} |"
        )
    return "\n".join(lines) + "\n"
