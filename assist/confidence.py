"""Confidence in [0, 1] from retrieval evidence, calibrated so off-domain questions score low.

Three signals of the retrieved chunk, each squashed to [0, 1] between a "no evidence" and a
"strong evidence" point, then weighted:

- dense cosine of the query and the chunk (0.55): USE-multilingual gives unrelated Turkish texts
  about 0.0-0.25 and paraphrases 0.35-0.65;
- coverage (0.30): the share of the question's topic terms (5-letter prefixes) found in the chunk;
- margin (0.15): how far the best chunk leads the second in fused score; only the top chunk has it.

On a 32-entry shop FAQ (tests/fixtures/assist) the 30 off-domain Turkish questions score at most
0.44, while 28 of the 32 paraphrased FAQ questions reach 0.5, the default `min_confidence`
(tests/test_assist_resolve.py measures both rates).
The cosine points are the embedder's: another embedder needs them re-measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from retrieval.models import SearchHit

from .language import content_terms
from .sentences import analyse

COSINE_FLOOR, COSINE_STRONG = 0.10, 0.50
COVERAGE_FLOOR, COVERAGE_STRONG = 0.10, 0.70
MARGIN_STRONG = 0.30
WEIGHTS = (0.55, 0.30, 0.15)


@dataclass(frozen=True)
class Evidence:
    """The raw relevance signals of one retrieved chunk for one query."""

    cosine: float
    coverage: float
    margin: float

    @property
    def confidence(self) -> float:
        """Return the retrieval confidence of the chunk in [0, 1]."""
        w_cos, w_cov, w_margin = WEIGHTS
        score = (
            w_cos * _squash(self.cosine, COSINE_FLOOR, COSINE_STRONG)
            + w_cov * _squash(self.coverage, COVERAGE_FLOOR, COVERAGE_STRONG)
            + w_margin * _squash(self.margin, 0.0, MARGIN_STRONG)
        )
        return round(min(1.0, max(0.0, score)), 4)


def _squash(value: float, floor: float, strong: float) -> float:
    return min(1.0, max(0.0, (value - floor) / (strong - floor)))


def coverage(query_terms: set[str], hit: SearchHit) -> float:
    """Return the share of `query_terms` that occur in the chunk's title or text."""
    if not query_terms:
        return 0.0
    found = (analyse(hit.text).terms | content_terms(hit.title)) & query_terms
    return len(found) / len(query_terms)


def gather_evidence(query_terms: set[str], hits: Sequence[SearchHit]) -> list[Evidence]:
    """Return the evidence of each hit, in order; only the first gets a margin over the next."""
    evidence = []
    for rank, hit in enumerate(hits):
        margin = (
            hit.score - hits[1].score
            if rank == 0 and len(hits) > 1
            else (hit.score if len(hits) == 1 else 0.0)
        )
        evidence.append(
            Evidence(
                cosine=max(0.0, hit.dense_score or 0.0),
                coverage=coverage(query_terms, hit),
                margin=max(0.0, margin),
            )
        )
    return evidence


def extract_confidence(retrieval: float, sentence_overlap: float) -> float:
    """Return the confidence of sentences extracted from a document: weaker than a ready answer.

    A FAQ answer or a past reply answers its question as a whole; picked sentences may miss, so the
    share of the question's terms they contain scales the retrieval confidence down to 70%.
    """
    return round(retrieval * (0.7 + 0.3 * min(1.0, max(0.0, sentence_overlap))), 4)
