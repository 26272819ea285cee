"""The answer suite: suggest and resolve on every question, through the same AssistService the API serves.

A dataset is a flat corpus (corpus.jsonl, sources named by document id) or a tenant bundle (FAQ sheet,
quick replies, documents, past chats; sources named `faq:…`, `qr:…`, `doc:…`, `chat:…`). Per query the
run records the query the assistant built, the decision, the cited sources, the confidence, the answer and
the suggestions; metrics come overall and per tag (`eval.decisions`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from assist.models import AssistRequest, Citation, ConversationTurn
from assist.service import AssistService
from retrieval.embedders import Embedder
from retrieval.index import QueryOptions
from retrieval.settings import Settings

from .bundle import is_bundle, load_bundle
from .datasets import EvalQuery, load_dataset
from .decisions import DecisionRecord, SuggestionRecord, answer_run_metrics
from .metrics import contains_reference, first_relevant_rank, latency_summary
from .report import QueryOutcome, RetrievedDoc
from .runner import EVAL_TENANT, _write_run, eval_index, package_versions, read_corpus, run_config


def eval_request(query: EvalQuery) -> AssistRequest:
    """Return the conversation a labelled query stands for: its history, then the question."""
    turns = [ConversationTurn(role=t.role, text=t.text) for t in query.history]  # type: ignore[arg-type]
    return AssistRequest(
        conversation_id=f"eval-{query.id}",
        messages=[*turns, ConversationTurn(role="customer", text=query.question)],
    )


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
    precision_target: float | None = None,
) -> dict[str, Any]:
    """Run suggest + resolve per question; write metrics.json, per_query.jsonl and the reports.

    `precision_target` sets the eval tenant's target (default: the product default) before it runs.
    """
    from .ragas_metrics import AnswerSample, ragas_llm_scores, ragas_nonllm_scores

    bundle = load_bundle(dataset_dir) if is_bundle(dataset_dir) else None
    dataset = None if bundle else load_dataset(dataset_dir)
    queries = bundle.queries if bundle else dataset.queries  # type: ignore[union-attr]
    corpus = (list(dataset.corpus) if dataset else []) + [d for x in extra_corpus for d in read_corpus(x)]
    texts = {d.id: d.text for d in corpus}
    # Bundles name sources as the tenant does; a flat corpus by document id.
    source_of: Callable[[Citation], str] = (lambda c: c.ref) if bundle else (lambda c: c.doc_id)
    run_settings = settings.model_copy(update={"llm_provider": provider})
    outcomes: list[QueryOutcome] = []
    samples: list[AnswerSample] = []
    records: list[DecisionRecord] = []
    latencies: list[float] = []
    with eval_index(
        run_settings, corpus, bundle=bundle, embedder=embedder, show_progress=show_progress
    ) as ev:
        service = AssistService(
            ev.settings.model_copy(update={"llm_provider": provider}), ev.index, ev.registry, ev.ingestor
        )
        if precision_target is not None:
            ev.registry.update_tenant_settings(
                EVAL_TENANT, {"resolve_thresholds": {"precision_target": precision_target}}
            )
        policy = service.policy(EVAL_TENANT)
        for query in tqdm(queries, desc="answers", unit="q", disable=not show_progress):
            request = eval_request(query)
            started = time.perf_counter()
            suggested = service.suggest(EVAL_TENANT, request)
            latencies.append((time.perf_counter() - started) * 1e3)
            resolved = service.resolve(EVAL_TENANT, request)
            top = suggested.suggestions[0] if suggested.suggestions else None
            answer = top.text if top else ""
            reference = query.reference_answer
            record = DecisionRecord(
                query_id=query.id,
                relevant=frozenset(query.relevant_ids),
                tags=query.tags,
                decision=resolved.decision,
                reason=resolved.reason,
                confidence=resolved.confidence,
                cited=tuple(source_of(c) for c in resolved.citations),
                suggestions=[
                    SuggestionRecord(tuple(source_of(c) for c in s.citations), s.confidence, s.strategy)
                    for s in suggested.suggestions
                ],
                contains_reference=contains_reference(answer, reference) if reference else None,
                auto_contains_reference=contains_reference(resolved.text or "", reference)
                if reference and resolved.decision == "answer"
                else None,
            )
            records.append(record)
            contexts = [
                h.text for h in ev.index.search(EVAL_TENANT, suggested.query, QueryOptions(limit=3)).hits
            ]
            samples.append(
                AnswerSample(
                    question=query.question,
                    answer=answer,
                    reference=reference or "",
                    retrieved_contexts=contexts,
                    reference_contexts=[texts[r] for r in query.relevant_ids if r in texts],
                    query_id=query.id,
                )
            )
            shown = resolved.citations if resolved.decision == "answer" else (top.citations if top else [])
            outcomes.append(
                QueryOutcome(
                    query_id=query.id,
                    question=query.question,
                    relevant_ids=list(query.relevant_ids),
                    retrieved=[RetrievedDoc(source_of(c), c.title, c.snippet, 0.0) for c in shown],
                    first_relevant_rank=first_relevant_rank(
                        query.relevant_ids, [ref for s in record.suggestions for ref in s.refs]
                    ),
                    latency_ms=latencies[-1],
                    answer=resolved.text if resolved.decision == "answer" else answer,
                    confidence=resolved.confidence,
                    # Judged is the automatic decision: a wrong answer is False, a right handoff True;
                    # a handoff of an answerable query is missed coverage, not a mistake.
                    correct=(not record.wrong) if record.answered else (None if query.answerable else True),
                    decision=f"{resolved.decision}:{resolved.reason}"
                    if resolved.reason
                    else resolved.decision,
                    reference_answer=reference,
                    tags=list(query.tags),
                    extra={
                        "query": suggested.query,
                        "cited": list(record.cited),
                        "suggestions": [
                            {"refs": list(s.refs), "confidence": s.confidence, "strategy": s.strategy}
                            for s in record.suggestions
                        ],
                        "suggestion": answer,
                        "wrong": record.wrong,
                    },
                )
            )
        mode = service.mode
    lat = latency_summary(latencies)
    metrics: dict[str, Any] = answer_run_metrics(records)
    metrics.update(
        latency_ms_p50=lat["p50"],
        latency_ms_p95=lat["p95"],
        mode=mode,
        policy_mode=policy.mode,
        policy_precision_target=policy.precision_target,
        policy_threshold=policy.threshold,
        policy_precision_lower_bound=policy.precision_lower_bound,
        policy_evidence=policy.evidence,
        # Kept under its earlier name: auto_answer_rate over the answerable queries.
        answered_rate_answerable=metrics.get("auto_answer_rate"),
    )
    metrics.update(ragas_nonllm_scores(samples))
    if judge is not None:
        metrics.update(ragas_llm_scores(samples, judge))
    metrics = {k: v for k, v in metrics.items() if v is not None}
    metrics["config"] = {
        **run_config(settings, dataset_dir, extra_corpus, QueryOptions(), seed),
        "provider": provider,
        **({"bundle_sources": bundle.parts()} if bundle else {}),
    }
    metrics["versions"] = package_versions()
    _write_run(out_dir, metrics, outcomes, {}, "answers")
    return metrics
