"""Second-stage ranking: optional cross-encoder rerank and MMR diversification."""

from __future__ import annotations

from pathlib import Path

from .embedders import EmbedderError
from .extras import MissingExtraError, require_module
from .models import SearchHit
from .text import normalise_for_match


class CrossEncoderReranker:
    """Scores (query, chunk) pairs with a sentence-transformers CrossEncoder (hub id or local folder)."""

    def __init__(self, name_or_path: str, device: str = "cpu") -> None:
        try:
            st = require_module("sentence_transformers", "st", "INVEKTO_RERANK_MODEL (a cross-encoder)")
        except MissingExtraError as exc:
            raise EmbedderError(str(exc)) from exc
        try:
            CrossEncoder = st.CrossEncoder
            local = Path(name_or_path).expanduser()
            self._model = CrossEncoder(str(local) if local.exists() else name_or_path, device=device)
        except Exception as exc:
            raise EmbedderError(
                f"Could not load cross-encoder {name_or_path!r}: {exc}. Offline, download it elsewhere and set "
                "INVEKTO_RERANK_MODEL to its local folder."
            ) from exc

    def rerank(self, query: str, hits: list[SearchHit]) -> list[SearchHit]:
        """Return `hits` re-scored by the cross-encoder, best first."""
        if not hits:
            return hits
        scores = self._model.predict([(query, h.text) for h in hits])
        rescored = [h.rescored(float(s)) for h, s in zip(hits, scores, strict=True)]
        return sorted(rescored, key=lambda h: -h.score)


def _tokens(text: str) -> set[str]:
    return set(normalise_for_match(text).split())


def mmr(hits: list[SearchHit], *, lam: float, limit: int) -> list[SearchHit]:
    """Return up to `limit` hits picked by maximal marginal relevance.

    Redundancy is word overlap (Jaccard) between chunks: it needs no vectors from the store and catches the
    near-duplicate FAQ answers and past replies that make suggestions repetitive.
    """
    if not hits:
        return []
    top = max(h.score for h in hits) or 1.0
    pool = [(h, h.score / top, _tokens(h.text)) for h in hits]
    chosen: list[tuple[SearchHit, float, set[str]]] = []
    while pool and len(chosen) < limit:

        def gain(item: tuple[SearchHit, float, set[str]]) -> float:
            redundancy = max(
                (len(item[2] & c[2]) / max(1, len(item[2] | c[2])) for c in chosen),
                default=0.0,
            )
            return lam * item[1] - (1 - lam) * redundancy

        best = max(pool, key=gain)
        pool.remove(best)
        chosen.append(best)
    return [c[0] for c in chosen]
