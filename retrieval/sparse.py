"""Turkish BM25 sparse vectors from Qdrant's own `Bm25` embedder, so the edge and server backends share a tokenizer.

Each text gives two token streams in one sparse vector:
- Snowball Turkish stems (Qdrant's `language="turkish"` pipeline), and
- 5-character word prefixes, stop-words removed, no stemmer.

Prefix truncation is a strong stemmer for an agglutinative language (Can et al., 2008, "Information
retrieval on Turkish texts"): Snowball leaves forms such as "kredisi" and "kredi" apart, the prefix joins
them. On xquad-tr-dev BM25 R@1 went 0.918 (Snowball) → 0.943 (prefix) → 0.948 (both); see docs/fusion.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qdrant_edge import Bm25, Bm25Config, DisabledStemmer

from .text import turkish_lower

_WORD = re.compile(r"\w+", re.UNICODE)
_APOSTROPHE = re.compile(r"[’‘'`´]")


@dataclass(frozen=True)
class SparseVector:
    """Token ids and weights; the engine applies IDF at query time (Modifier.IDF)."""

    indices: list[int]
    values: list[float]

    def __bool__(self) -> bool:
        return bool(self.indices)


@dataclass(frozen=True)
class Bm25Params:
    """BM25 term-frequency saturation `k`, length normalisation `b`, expected chunk length and prefix size."""

    k: float = 1.2
    b: float = 0.75
    avg_len: float = 150.0
    language: str = "turkish"
    prefix_len: int = 5


def _merge(*vectors: object) -> SparseVector:
    weights: dict[int, float] = {}
    for vec in vectors:
        for index, value in zip(vec.indices, vec.values, strict=True):  # type: ignore[attr-defined]
            weights[index] = weights.get(index, 0.0) + value
    ordered = sorted(weights)
    return SparseVector(ordered, [weights[i] for i in ordered])


class TurkishBm25:
    """BM25 encoder: Turkish lower-casing (İ→i, I→ı), then Snowball stems plus word prefixes."""

    def __init__(self, params: Bm25Params | None = None) -> None:
        self.params = p = params or Bm25Params()
        common = {"k": p.k, "b": p.b, "avg_len": p.avg_len, "language": p.language}
        self._stems = Bm25(Bm25Config(**common))
        self._prefixes = Bm25(Bm25Config(**common, stemmer=DisabledStemmer())) if p.prefix_len else None

    @property
    def model_id(self) -> str:
        p = self.params
        return f"bm25-{p.language}-stem+p{p.prefix_len}-k{p.k}-b{p.b}-avg{p.avg_len:g}"

    def _prefixed(self, lowered: str) -> str:
        n = self.params.prefix_len
        # The "p:" mark keeps prefix tokens apart from identical stems ("kart" stem vs "kart" prefix).
        return " ".join(f"p{w[:n]}" for w in _WORD.findall(lowered))

    def _encode(self, text: str, query: bool) -> SparseVector:
        # Qdrant lower-cases with Unicode rules (I→i); Turkish needs I→ı and İ→i, so we lower first.
        lowered = _APOSTROPHE.sub(" ", turkish_lower(text))
        embed = "embed_query" if query else "embed_document"
        parts = [getattr(self._stems, embed)(lowered)]
        if self._prefixes is not None:
            parts.append(getattr(self._prefixes, embed)(self._prefixed(lowered)))
        return _merge(*parts)

    def embed_document(self, text: str) -> SparseVector:
        return self._encode(text, query=False)

    def embed_query(self, text: str) -> SparseVector:
        return self._encode(text, query=True)
