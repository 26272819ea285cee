"""Train the answer verifier (`assist.verify`): a calibrated probability that answering with a retrieved
source is right.

Rows are (query, retrieved source) pairs, searched exactly as the assistant searches, labelled 1 when the
source is among the query's relevant ids. They come from

- labelled tenant bundles (customer messages with relevant sources, `[]` for hand-offs), and
- hard cases made from each bundle's own knowledge: every FAQ row's, quick reply's and past chat's
  question asked the way customers type (lower case, no diacritics, no punctuation) is a positive for its
  source; the same question with its most distinctive term swapped for another entry's term is a
  negative for it (same topic, different question: "öğrenci indirimi" → "öğretmen indirimi").

`cross_validate` reports the out-of-fold quality (queries grouped, so no query is scored by a model
that saw it), which is the honest estimate for unseen tenants; the shipped model is fitted on all rows.
`simulate_policy` checks the promise the auto-answer policy makes: a new tenant's threshold comes from
its self-test, so with every probe and every labelled query held out, does the threshold the probes
certify keep the labelled customer messages at the precision target?
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from assist.policy import EvidenceSample, choose_policy
from assist.self_test import answers_probe, knowledge_probes
from assist.service import SEARCH_LIMIT, AssistService
from assist.verify import FEATURES, TenantVocabulary, VerifierModel, candidate_features
from retrieval.embedders import Embedder
from retrieval.index import QueryOptions
from retrieval.language import detect_language
from retrieval.settings import Settings

from .answers import eval_request
from .bundle import load_bundle
from .decisions import DecisionRecord, SuggestionRecord, calibration, risk_coverage
from .runner import EVAL_TENANT, eval_index

# Labelled customer messages count more than the rows made from the knowledge itself.
LABELLED_WEIGHT = 1.0
SYNTHETIC_WEIGHT = 0.5
REGULARISATION_C = 0.5


@dataclass
class TrainingRows:
    """Feature rows, labels, weights and the query each row belongs to (for grouped folds)."""

    x: list[list[float]] = field(default_factory=list)
    y: list[int] = field(default_factory=list)
    weight: list[float] = field(default_factory=list)
    group: list[str] = field(default_factory=list)
    labelled: list[bool] = field(default_factory=list)
    # Per labelled query: its relevant ids, tags and the refs of its rows, to rebuild decisions.
    queries: dict[str, tuple[frozenset[str], tuple[str, ...], list[str]]] = field(default_factory=dict)

    def add(
        self, group: str, rows: list[dict[str, float]], labels: list[int], weight: float, labelled: bool
    ) -> None:
        for row, label in zip(rows, labels, strict=True):
            self.x.append([row[f] for f in FEATURES])
            self.y.append(label)
            self.weight.append(weight)
            self.group.append(group)
            self.labelled.append(labelled)


def collect_rows(
    settings: Settings,
    bundles: Sequence[Path],
    *,
    embedder: Embedder | None = None,
    seed: int = 13,
    show_progress: bool = True,
) -> TrainingRows:
    """Return the training rows of `bundles` (labelled queries plus hard cases from their knowledge)."""
    rows = TrainingRows()
    options = QueryOptions(limit=SEARCH_LIMIT)
    for path in bundles:
        bundle = load_bundle(path)
        offline = settings.model_copy(update={"llm_provider": "extractive"})
        with eval_index(offline, bundle=bundle, embedder=embedder, show_progress=show_progress) as ev:
            service = AssistService(ev.settings, ev.index, ev.registry, ev.ingestor)
            chunks = ev.index.chunks(EVAL_TENANT)
            vocabulary = TenantVocabulary(chunks)
            for query in tqdm(bundle.queries, desc=f"labelled {path.name}", disable=not show_progress):
                text = service.search_query(EVAL_TENANT, eval_request(query)).text
                if detect_language(text) == "en":
                    # The features compare Turkish words: for an English question they are all zero
                    # whether the source is right or not, and the rows would only blur the Turkish ones.
                    continue
                hits = ev.index.search(EVAL_TENANT, text, options).hits
                relevant = frozenset(query.relevant_ids)
                group = f"{path.name}:{query.id}"
                labels = [int(h.ref in relevant) for h in hits]
                rows.add(group, candidate_features(text, hits, vocabulary), labels, LABELLED_WEIGHT, True)
                rows.queries[group] = (relevant, query.tags, [h.ref for h in hits])
            for probe in tqdm(
                knowledge_probes(chunks, vocabulary, seed),
                desc=f"knowledge {path.name}",
                disable=not show_progress,
            ):
                hits = ev.index.search(EVAL_TENANT, probe.question, options).hits
                labels = [int(answers_probe(probe, h)) for h in hits]
                features = candidate_features(probe.question, hits, vocabulary)
                rows.add(f"{path.name}:probe:{probe.question}", features, labels, SYNTHETIC_WEIGHT, False)
    return rows


def fit(rows: TrainingRows, trained_on: dict[str, Any], mask: np.ndarray | None = None) -> VerifierModel:
    """Return the logistic regression fitted on `rows` (those selected by `mask`)."""
    from sklearn.linear_model import LogisticRegression

    x = np.array(rows.x, dtype=float)
    y = np.array(rows.y)
    w = np.array(rows.weight)
    if mask is not None:
        x, y, w = x[mask], y[mask], w[mask]
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=REGULARISATION_C, max_iter=2000)
    model.fit((x - mean) / scale, y, sample_weight=w)
    return VerifierModel(FEATURES, mean, scale, model.coef_[0], float(model.intercept_[0]), trained_on)


def decision_records(
    rows: TrainingRows, probabilities: np.ndarray, threshold: float = 0.0
) -> list[DecisionRecord]:
    """Return one DecisionRecord per labelled query: the most probable source answered at `threshold`."""
    by_group: dict[str, list[int]] = {}
    for i, (group, labelled) in enumerate(zip(rows.group, rows.labelled, strict=True)):
        if labelled:
            by_group.setdefault(group, []).append(i)
    records = []
    for group, (relevant, tags, refs) in rows.queries.items():
        idx = by_group.get(group, [])
        if not idx:
            records.append(DecisionRecord(group, relevant, tags, "handoff", "no_knowledge", 0.0, ()))
            continue
        order = sorted(range(len(idx)), key=lambda j: -probabilities[idx[j]])
        best = order[0]
        p = float(probabilities[idx[best]])
        answered = p >= threshold
        records.append(
            DecisionRecord(
                group,
                relevant,
                tags,
                "answer" if answered else "handoff",
                None if answered else "low_confidence",
                p,
                (refs[best],) if answered else (),
                [SuggestionRecord((refs[j],), float(probabilities[idx[j]]), "extractive") for j in order],
            )
        )
    return records


def fold_of_group(group: str, folds: int, seed: int = 13) -> int:
    """Return the fold of a row group, from its name alone: adding or removing a query or a probe leaves
    every other group in its fold, so two runs on changed data compare the same splits."""
    return zlib.crc32(f"{seed}:{group}".encode()) % folds


def cross_validate(rows: TrainingRows, folds: int = 5, seed: int = 13) -> dict[str, Any]:
    """Return out-of-fold quality: risk–coverage, calibration and the top candidate's hit rate."""
    groups = np.array(rows.group)
    labelled = np.array(rows.labelled)
    oof = np.zeros(len(rows.y))
    # Folds over labelled queries only: the rows made from the knowledge always stay in training.
    fold_of = {q: fold_of_group(q, folds, seed) for q in rows.queries}
    for k in range(folds):
        test = np.array([labelled[i] and fold_of.get(groups[i]) == k for i in range(len(groups))])
        model = fit(rows, {}, mask=~test)
        x = np.array(rows.x, dtype=float)[test]
        oof[test] = model.probabilities([dict(zip(FEATURES, r, strict=True)) for r in x.tolist()])
    records = decision_records(rows, oof)
    curve = risk_coverage(records)
    top_right = [r.suggest_hit(1) for r in records if r.answerable]
    return {
        "folds": folds,
        "n_queries": len(records),
        "top_candidate_right": round(sum(top_right) / len(top_right), 4) if top_right else None,
        **{f"coverage_at_precision_{t:.2f}": curve.coverage_at(t) for t in (0.9, 0.95, 0.98)},
        **{f"calibration_{k}": v for k, v in calibration(records).items()},
        "risk_coverage": curve.as_dict(),
    }


SIMULATED_TARGETS = (0.9, 0.95, 0.98)


def simulate_policy(
    rows: TrainingRows, folds: int = 5, seed: int = 13, targets: Sequence[float] = SIMULATED_TARGETS
) -> list[dict[str, Any]]:
    """Return, per precision target, what the self-test policy does to held-out customer messages.

    Every row group (a labelled query or a self-test probe) is scored by a model fitted without it, as
    for a tenant the verifier never saw. The probes give the self-test evidence exactly as the service
    builds it (the most probable source of each probe, right or not) and `choose_policy` its threshold;
    the labelled queries then show the precision that threshold really gives: `wrong` of `answered`.
    """
    fold_of = {g: fold_of_group(g, folds, seed) for g in set(rows.group)}
    fold = np.array([fold_of[g] for g in rows.group])
    oof = np.zeros(len(rows.y))
    x = np.array(rows.x, dtype=float)
    for k in range(folds):
        test = fold == k
        model = fit(rows, {}, mask=~test)
        oof[test] = model.probabilities([dict(zip(FEATURES, r, strict=True)) for r in x[test].tolist()])
    best: dict[str, int] = {}
    for i, (group, labelled) in enumerate(zip(rows.group, rows.labelled, strict=True)):
        if not labelled and (group not in best or oof[i] > oof[best[group]]):
            best[group] = i
    samples = [EvidenceSample(float(oof[i]), bool(rows.y[i]), "self_test") for i in best.values()]
    records = decision_records(rows, oof)
    answerable = [r for r in records if r.answerable]
    out: list[dict[str, Any]] = []
    for target in targets:
        policy = choose_policy(samples, target)
        if policy.mode != "auto" or policy.threshold is None:
            out.append({"target": target, "mode": policy.mode, "self_test": len(samples)})
            continue
        sent = [r for r in records if r.confidence >= policy.threshold]
        wrong = [r for r in sent if not (r.relevant & set(r.suggestions[0].refs))]
        out.append(
            {
                "target": target,
                "mode": "auto",
                "self_test": len(samples),
                "threshold": round(policy.threshold, 4),
                "answered": len(sent),
                "wrong": len(wrong),
                "precision": round(1 - len(wrong) / len(sent), 4) if sent else None,
                "coverage": round(
                    sum(1 for r in answerable if r.confidence >= policy.threshold) / len(answerable), 4
                )
                if answerable
                else 0.0,
            }
        )
    return out
