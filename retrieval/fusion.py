"""Fusion of dense and sparse candidate lists into one ranking.

Fusion runs here rather than in the engine so both backends rank identically and every method can be
compared on the same candidates. See docs/fusion.md for the measured comparison that picked the default.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from .models import SearchHit

Ranked = list[SearchHit]


def _ranked(
    scores: dict[str, float], dense: Sequence[SearchHit], sparse: Sequence[SearchHit], top: int | None
) -> Ranked:
    """Return the `top` best hits carrying the fused score and both raw scores.

    Only the hits that are returned are rebuilt: this runs on every query, over up to 2 × prefetch hits.
    """
    order = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    cosine = {h.point_id: h for h in dense}
    bm25 = {h.point_id: h for h in sparse}
    out = []
    for pid, score in order:
        d, b = cosine.get(pid), bm25.get(pid)
        base = d or b
        assert base is not None
        out.append(
            base.rescored(score, dense_score=d.score if d else None, sparse_score=b.score if b else None)
        )
    return out


def weighted_rrf(
    dense: Sequence[SearchHit],
    sparse: Sequence[SearchHit],
    *,
    k: int = 60,
    dense_weight: float = 0.5,
    top: int | None = None,
) -> Ranked:
    """Return hits ranked by weighted reciprocal rank fusion: w/(k+rank) summed over the two lists."""
    weights = (dense_weight, 1.0 - dense_weight)
    scores: dict[str, float] = {}
    for weight, hits in zip(weights, (dense, sparse), strict=True):
        for rank, hit in enumerate(hits, start=1):
            scores[hit.point_id] = scores.get(hit.point_id, 0.0) + weight / (k + rank)
    return _ranked(scores, dense, sparse, top)


def _dbsf_normalised(hits: Sequence[SearchHit]) -> dict[str, float]:
    if not hits:
        return {}
    values = [h.score for h in hits]
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    low, high = mean - 3 * std, mean + 3 * std
    span = high - low
    return {h.point_id: (h.score - low) / span if span > 0 else 0.5 for h in hits}


def dbsf(
    dense: Sequence[SearchHit],
    sparse: Sequence[SearchHit],
    *,
    dense_weight: float = 0.5,
    top: int | None = None,
) -> Ranked:
    """Return hits ranked by distribution-based score fusion (mean ± 3σ normalisation), weighted."""
    scores: dict[str, float] = {}
    for weight, hits in zip((dense_weight, 1.0 - dense_weight), (dense, sparse), strict=True):
        for pid, value in _dbsf_normalised(hits).items():
            scores[pid] = scores.get(pid, 0.0) + weight * value
    return _ranked(scores, dense, sparse, top)


def score_fusion(
    dense: Sequence[SearchHit],
    sparse: Sequence[SearchHit],
    *,
    dense_weight: float = 0.4,
    top: int | None = None,
) -> Ranked:
    """Return hits ranked by w·cosine + (1-w)·BM25/max(BM25): raw cosine keeps its absolute meaning.

    BM25 scores are unbounded, so they are divided by the best score of this query; cosine is already in
    [-1, 1] and is used as is, so a weak semantic match cannot be inflated by normalisation. A hit missing
    from one list scores 0 there.
    """
    top_sparse = max((h.score for h in sparse), default=0.0)
    scores: dict[str, float] = {}
    for hit in dense:
        scores[hit.point_id] = dense_weight * max(hit.score, 0.0)
    if top_sparse > 0:
        for hit in sparse:
            scores[hit.point_id] = (
                scores.get(hit.point_id, 0.0) + (1.0 - dense_weight) * hit.score / top_sparse
            )
    return _ranked(scores, dense, sparse, top)


def _single(
    scores: Sequence[SearchHit], dense: Sequence[SearchHit], sparse: Sequence[SearchHit], top: int | None
) -> Ranked:
    return _ranked({h.point_id: h.score for h in scores}, dense, sparse, top)


def fuse(
    method: str,
    dense: Sequence[SearchHit],
    sparse: Sequence[SearchHit],
    *,
    dense_weight: float,
    rrf_k: int,
    top: int | None = None,
) -> Ranked:
    """Return the `top` best hits for `method` (score | wrrf | rrf | dbsf | bm25 | dense), best first."""
    methods: dict[str, Callable[[], Ranked]] = {
        "score": lambda: score_fusion(dense, sparse, dense_weight=dense_weight, top=top),
        "wrrf": lambda: weighted_rrf(dense, sparse, k=rrf_k, dense_weight=dense_weight, top=top),
        "rrf": lambda: weighted_rrf(dense, sparse, k=rrf_k, dense_weight=0.5, top=top),
        "dbsf": lambda: dbsf(dense, sparse, dense_weight=dense_weight, top=top),
        "bm25": lambda: _single(sparse, dense, sparse, top),
        "dense": lambda: _single(dense, dense, sparse, top),
    }
    if method not in methods:
        raise ValueError(f"Unknown fusion method {method!r}; choose one of {', '.join(methods)}")
    return methods[method]()


def weighted_by_source(hits: Sequence[SearchHit], weights: Mapping[str, float]) -> Ranked:
    """Return hydrated `hits` with each fused score multiplied by its source's weight (1.0 when not named),
    best first; ties keep their order. The raw cosine and BM25 stay as they were: they are absolute
    evidence for assist, not ranks."""
    scaled = [h.rescored(h.score * weights.get(h.source, 1.0)) for h in hits]
    return sorted(scaled, key=lambda h: -h.score)
