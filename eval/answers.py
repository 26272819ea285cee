"""The answer suite: suggest and resolve on every question, through the same AssistService the API serves."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from assist.models import AssistRequest, ConversationTurn
from assist.service import AssistService
from retrieval.embedders import Embedder
from retrieval.index import QueryOptions
from retrieval.settings import Settings

from .datasets import EvalQuery, load_dataset
from .metrics import contains_reference, first_relevant_rank, latency_summary
from .report import QueryOutcome, RetrievedDoc
from .runner import EVAL_TENANT, _write_run, eval_index, package_versions, read_corpus, run_config


def _request(query: EvalQuery) -> AssistRequest:
    turns = [ConversationTurn(role=t.role, text=t.text) for t in query.history]  # type: ignore[arg-type]
    return AssistRequest(
        conversation_id=f"eval-{query.id}",
        messages=[*turns, ConversationTurn(role="customer", text=query.question)],
    )


def _rate(hits: Sequence[bool]) -> float | None:
    return round(sum(hits) / len(hits), 4) if hits else None


def run_answer_eval(
    settings: Settings,
    dataset_dir: Path,
    out_dir: Path,
    *,
    provider: str = "extractive",
    extra_corpus: Sequence[Path] = (),
    embedder: Embedder | None = None,
    judge: Any | None = None,
    show_progress: bool = True,
    seed: int = 13,
) -> dict[str, Any]:
    """Run suggest + resolve per question; write metrics.json, per_query.jsonl and the reports."""
    from .ragas_metrics import AnswerSample, ragas_llm_scores, ragas_nonllm_scores

    dataset = load_dataset(dataset_dir)
    corpus = list(dataset.corpus) + [d for extra in extra_corpus for d in read_corpus(extra)]
    texts = {d.id: d.text for d in corpus}
    run_settings = settings.model_copy(update={"llm_provider": provider})
    outcomes: list[QueryOutcome] = []
    samples: list[AnswerSample] = []
    contains, cited, answered, handed_off, latencies = [], [], [], [], []
    with eval_index(run_settings, corpus, embedder=embedder, show_progress=show_progress) as ev:
        service = AssistService(
            ev.settings.model_copy(update={"llm_provider": provider}), ev.index, ev.registry, ev.ingestor
        )
        for query in tqdm(dataset.queries, desc="answers", unit="q", disable=not show_progress):
            request = _request(query)
            started = time.perf_counter()
            suggested = service.suggest(EVAL_TENANT, request)
            latencies.append((time.perf_counter() - started) * 1e3)
            resolved = service.resolve(EVAL_TENANT, request)
            top = suggested.suggestions[0] if suggested.suggestions else None
            answer = top.text if top else ""
            cited_ids = [c.doc_id for c in top.citations] if top else []
            correct = None
            if query.answerable:
                answered.append(resolved.decision == "answer")
                cited.append(any(d in query.relevant_ids for d in cited_ids))
                if query.reference_answer:
                    correct = contains_reference(answer, query.reference_answer)
                    contains.append(correct)
            else:
                handed_off.append(resolved.decision == "handoff")
                correct = resolved.decision == "handoff"
            contexts = [
                h.text for h in ev.index.search(EVAL_TENANT, suggested.query, QueryOptions(limit=3)).hits
            ]
            samples.append(
                AnswerSample(
                    question=query.question,
                    answer=answer,
                    reference=query.reference_answer or "",
                    retrieved_contexts=contexts,
                    reference_contexts=[texts[r] for r in query.relevant_ids if r in texts],
                    query_id=query.id,
                )
            )
            outcomes.append(
                QueryOutcome(
                    query_id=query.id,
                    question=query.question,
                    relevant_ids=list(query.relevant_ids),
                    retrieved=[
                        RetrievedDoc(c.doc_id, c.title, c.snippet, 0.0)
                        for c in (top.citations if top else [])
                    ],
                    first_relevant_rank=first_relevant_rank(query.relevant_ids, cited_ids),
                    latency_ms=latencies[-1],
                    answer=answer,
                    confidence=top.confidence if top else 0.0,
                    correct=correct,
                    decision=f"{resolved.decision}:{resolved.reason}"
                    if resolved.reason
                    else resolved.decision,
                    reference_answer=query.reference_answer,
                )
            )
        mode = service.mode
    lat = latency_summary(latencies)
    metrics: dict[str, Any] = {
        "answer_contains_reference": _rate(contains),
        "citation_hit_rate": _rate(cited),
        "answered_rate_answerable": _rate(answered),
        "handoff_rate_unanswerable": _rate(handed_off),
        "n_queries": len(dataset.queries),
        "n_answerable": len(answered),
        "n_unanswerable": len(handed_off),
        "latency_ms_p50": lat["p50"],
        "latency_ms_p95": lat["p95"],
        "mode": mode,
    }
    metrics.update(ragas_nonllm_scores(samples))
    if judge is not None:
        metrics.update(ragas_llm_scores(samples, judge))
    metrics = {k: v for k, v in metrics.items() if v is not None}
    metrics["config"] = {
        **run_config(settings, dataset_dir, extra_corpus, QueryOptions(), seed),
        "provider": provider,
    }
    metrics["versions"] = package_versions()
    _write_run(out_dir, metrics, outcomes, {}, "answers")
    return metrics
