"""Metrics of what the assistant decided, per query and per tag: automatic answers, handoffs, suggestions,
risk–coverage and calibration; and source-level hit@k / MRR for tenant bundles.

An automatic answer is *wrong* when it cites no relevant source, or when the query has no relevant
source at all (it should have gone to a human). That rate, per kind of question, is what decides
whether auto-resolution can be switched on for a tenant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

PRECISION_TARGETS = (0.95, 0.98, 0.99)
HIT_KS = (1, 3, 5, 10)
CALIBRATION_BINS = 10


@dataclass(frozen=True)
class SuggestionRecord:
    """One suggestion shown to the agent: the sources it cites and its confidence."""

    refs: tuple[str, ...]
    confidence: float
    strategy: str


@dataclass
class DecisionRecord:
    """What suggest and resolve did with one labelled query."""

    query_id: str
    relevant: frozenset[str]
    tags: tuple[str, ...]
    decision: str  # "answer" | "handoff"
    reason: str | None
    confidence: float
    cited: tuple[str, ...]
    suggestions: list[SuggestionRecord] = field(default_factory=list)
    contains_reference: bool | None = None  # top suggestion (None: the query has no reference answer)
    auto_contains_reference: bool | None = None  # the automatic answer, when there is one

    @property
    def answerable(self) -> bool:
        return bool(self.relevant)

    @property
    def answered(self) -> bool:
        return self.decision == "answer"

    @property
    def wrong(self) -> bool:
        """True for an automatic answer that cites nothing relevant or answers what must be handed off."""
        return self.answered and not (self.answerable and bool(self.relevant & set(self.cited)))

    def suggest_hit(self, k: int) -> bool:
        return any(self.relevant & set(s.refs) for s in self.suggestions[:k])

    @property
    def candidate(self) -> tuple[float, bool] | None:
        """(confidence, right) of the answer a threshold decides on; None when no threshold could send one.

        Automatic answers and handoffs for low confidence are candidates; for a low-confidence handoff
        the answer it would have sent is the top suggestion.
        """
        if self.answered:
            return self.confidence, not self.wrong
        if self.reason == "low_confidence" and self.suggestions:
            top = self.suggestions[0]
            return self.confidence, self.answerable and bool(self.relevant & set(top.refs))
        return None


def _rate(values: Sequence[bool]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def decision_metrics(records: Sequence[DecisionRecord]) -> dict[str, Any]:
    """Return the answer-quality metrics of `records` (rates are None where they have no denominator).

    With no automatic answer at all, wrong_answer_rate is 0: no wrong answer reached a customer.
    """
    answerable = [r for r in records if r.answerable]
    unanswerable = [r for r in records if not r.answerable]
    autos = [r for r in records if r.answered]
    wrong = sum(r.wrong for r in autos)
    wrong_rate = round(wrong / len(autos), 4) if autos else 0.0
    metrics: dict[str, Any] = {
        "n_queries": len(records),
        "n_answerable": len(answerable),
        "n_unanswerable": len(unanswerable),
        "n_auto_answers": len(autos),
        "n_wrong_answers": wrong,
        "auto_answer_rate": _rate([r.answered for r in answerable]),
        "wrong_answer_rate": wrong_rate,
        "auto_answer_precision": round(1.0 - wrong_rate, 4),
        "handoff_rate_unanswerable": _rate([not r.answered for r in unanswerable]),
        "answer_contains_reference": _rate(
            [r.contains_reference for r in answerable if r.contains_reference is not None]
        ),
        "auto_answer_contains_reference": _rate(
            [r.auto_contains_reference for r in answerable if r.auto_contains_reference is not None]
        ),
        "citation_hit_rate": _rate([r.suggest_hit(1) for r in answerable]),
        "suggest_hit@1": _rate([r.suggest_hit(1) for r in answerable]),
        "suggest_hit@3": _rate([r.suggest_hit(3) for r in answerable]),
        "suggest_noise_rate": _rate([bool(r.suggestions) for r in unanswerable]),
    }
    return {k: v for k, v in metrics.items() if v is not None}


@dataclass(frozen=True)
class RiskCoverage:
    """Precision and coverage of automatic answers at each confidence threshold, highest threshold first."""

    thresholds: list[float]
    coverage: list[float]  # automatic answers / answerable queries
    precision: list[float]  # right automatic answers / automatic answers

    def coverage_at(self, precision: float) -> float:
        """Return the largest coverage whose precision reaches `precision` (0 when none does)."""
        reach = [c for c, p in zip(self.coverage, self.precision, strict=True) if p >= precision]
        return max(reach, default=0.0)

    def as_dict(self) -> dict[str, list[float]]:
        return {"thresholds": self.thresholds, "coverage": self.coverage, "precision": self.precision}


def risk_coverage(records: Sequence[DecisionRecord]) -> RiskCoverage:
    """Return the risk–coverage curve over the candidates' confidences (see DecisionRecord.candidate)."""
    n_answerable = sum(r.answerable for r in records) or 1
    candidates = sorted((c for r in records if (c := r.candidate) is not None), key=lambda c: -c[0])
    thresholds: list[float] = []
    coverage: list[float] = []
    precision: list[float] = []
    right = 0
    for i, (confidence, ok) in enumerate(candidates):
        right += ok
        # Ties share one threshold: the point is taken after the last candidate of that confidence.
        if i + 1 < len(candidates) and candidates[i + 1][0] == confidence:
            continue
        thresholds.append(round(confidence, 4))
        coverage.append(round((i + 1) / n_answerable, 4))
        precision.append(round(right / (i + 1), 4))
    return RiskCoverage(thresholds, coverage, precision)


def calibration(records: Sequence[DecisionRecord]) -> dict[str, Any]:
    """Return the Brier score and expected calibration error of the candidates' confidences, with the bins."""
    candidates = [c for r in records if (c := r.candidate) is not None]
    if not candidates:
        return {}
    brier = sum((conf - ok) ** 2 for conf, ok in candidates) / len(candidates)
    bins: dict[int, list[tuple[float, bool]]] = {}
    for conf, ok in candidates:
        bins.setdefault(min(int(conf * CALIBRATION_BINS), CALIBRATION_BINS - 1), []).append((conf, ok))
    ece = sum(
        len(b) / len(candidates) * abs(sum(c for c, _ in b) / len(b) - sum(ok for _, ok in b) / len(b))
        for b in bins.values()
    )
    return {"brier": round(brier, 4), "ece": round(ece, 4), "n_candidates": len(candidates)}


def with_tags(
    records: Sequence[Any], compute: Callable[[Sequence[Any]], dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Return `compute` over the records of each tag (records carry `tags`), tags sorted by name."""
    tags = sorted({t for r in records for t in r.tags})
    return {tag: compute([r for r in records if tag in r.tags]) for tag in tags}


def answer_run_metrics(records: Sequence[DecisionRecord]) -> dict[str, Any]:
    """Return the overall metrics, risk–coverage summary, calibration and per-tag metrics of an answer run."""
    metrics = decision_metrics(records)
    curve = risk_coverage(records)
    for target in PRECISION_TARGETS:
        metrics[f"coverage_at_precision_{target:.2f}"] = curve.coverage_at(target)
    metrics.update({f"calibration_{k}": v for k, v in calibration(records).items()})
    metrics["risk_coverage"] = curve.as_dict()
    metrics["per_tag"] = with_tags(records, decision_metrics)
    return metrics


# --- retrieval over sources ----------------------------------------------------------------------


@dataclass(frozen=True)
class SourceRanking:
    """The sources one query's search returned, best first (each source once), and the labels."""

    query_id: str
    relevant: frozenset[str]
    ranked: tuple[str, ...]
    tags: tuple[str, ...] = ()

    @property
    def first_relevant_rank(self) -> int | None:
        return next((i for i, ref in enumerate(self.ranked, start=1) if ref in self.relevant), None)


def source_metrics(rankings: Sequence[SourceRanking]) -> dict[str, Any]:
    """Return hit@k and MRR@10 over answerable queries: several sources may answer one query, any counts."""
    answerable = [r for r in rankings if r.relevant]
    if not answerable:
        return {"n_queries": 0}
    ranks = [r.first_relevant_rank for r in answerable]
    metrics: dict[str, Any] = {
        f"hit@{k}": round(sum(1 for rank in ranks if rank is not None and rank <= k) / len(ranks), 4)
        for k in HIT_KS
    }
    metrics["mrr@10"] = round(
        sum(1 / rank for rank in ranks if rank is not None and rank <= 10) / len(ranks), 4
    )
    metrics["n_queries"] = len(answerable)
    return metrics
