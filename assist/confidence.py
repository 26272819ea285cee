"""Evidence for each retrieved chunk: the calibrated probability that answering with it is right, what it
lacks, and whether it may ever be sent to a customer without an agent.

The probability comes from the answer verifier (`assist.verify`), a model trained on labelled customer
questions and on hard negatives made from a tenant's own knowledge; it is what the tenant's precision
target is applied to (`assist.policy`). Some sources are never sent automatically whatever their
probability; they stay available as suggestions for an agent, with the reason shown:

- knowledge flagged at ingestion (it addresses the assistant, asks the customer for secrets, or links
  outside the tenant's domains: metadata "flagged");
- a past-chat reply that only makes sense in its conversation (metadata "auto_answer" False);
- a reply that would contain a redaction placeholder ([TELEFON], [IBAN], ...);
- a source with an open conflict: another source of the tenant states a different value about the same
  thing (`assist.conflicts`), so one of the two is wrong until the tenant fixes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from retrieval.models import SearchHit

from .language import detect_language
from .verify import (
    TenantVocabulary,
    VerifierModel,
    candidate_features,
    default_model,
    has_placeholder,
    missing_words,
    source_answer,
)

# The most a source in another language than the question can score (see cross_language_probability).
CROSS_LANGUAGE_CAP = 0.5

BLOCK_REASONS: dict[str, str] = {
    "flagged": "kaynak, içerik denetiminde işaretlendi",
    "needs_context": "geçmiş sohbetteki yanıt yalnızca kendi konuşmasında anlamlı",
    "placeholder": "yanıt, maskelenmiş kişisel veri içeriyor",
    "conflict": "kaynak, aynı konuda başka bir kaynakla çelişiyor",
}


@dataclass(frozen=True)
class Evidence:
    """What one retrieved chunk offers for one question."""

    cosine: float
    probability: float
    # The question's words this source does not contain (what may make it answer another question).
    missing: tuple[str, ...] = ()
    # Why this source may never be sent automatically ("flagged", "needs_context", "placeholder"), or None.
    blocked: str | None = None

    @property
    def confidence(self) -> float:
        """Return the probability, in [0, 1], that answering with this chunk is right."""
        return self.probability


def cross_language_probability(hit: SearchHit) -> float:
    """Return the probability for a source in another language than the question (English asked, Turkish known).

    The verifier's word evidence means nothing across languages and no labelled data measures it, so only
    the multilingual embedding speaks: enough to suggest the source to an agent (or to an LLM that
    translates), capped below any threshold a precision target certifies.
    """
    cosine = max(0.0, hit.dense_score or 0.0)
    return round(CROSS_LANGUAGE_CAP * min(1.0, max(0.0, (cosine - 0.1) / 0.4)), 4)


def blocked_reason(hit: SearchHit, conflicted: frozenset[str] = frozenset()) -> str | None:
    """Return why a source may only be suggested to an agent, never sent automatically (None: it may be).

    `conflicted` holds the refs of the tenant's sources with an open conflict."""
    if hit.metadata.get("flagged"):
        return "flagged"
    if hit.source == "chat" and hit.metadata.get("auto_answer") is False:
        return "needs_context"
    if has_placeholder(source_answer(hit)):
        return "placeholder"
    if hit.ref in conflicted:
        return "conflict"
    return None


def gather_evidence(
    question: str,
    hits: Sequence[SearchHit],
    vocabulary: TenantVocabulary | None = None,
    model: VerifierModel | None = None,
    conflicted: frozenset[str] = frozenset(),
) -> tuple[list[SearchHit], list[Evidence]]:
    """Return the hits most probable first (ties keep retrieval order) and the evidence of each.

    `vocabulary` is the tenant's (word rarity); without it the verifier scores without those features.
    `conflicted` holds the refs of the tenant's sources with an open conflict.
    """
    if not hits:
        return [], []
    model = model or default_model()
    rows = candidate_features(question, hits, vocabulary)
    probabilities = model.probabilities(rows)
    asked_in = detect_language(question)
    if asked_in is not None:
        probabilities = [
            cross_language_probability(hit)
            if detect_language(source_answer(hit)) not in (None, asked_in)
            else p
            for hit, p in zip(hits, probabilities, strict=True)
        ]
    evidence = [
        Evidence(
            cosine=max(0.0, hit.dense_score or 0.0),
            probability=p,
            missing=missing_words(question, hit),
            blocked=blocked_reason(hit, conflicted),
        )
        for hit, p in zip(hits, probabilities, strict=True)
    ]
    order = sorted(range(len(hits)), key=lambda i: -evidence[i].probability)
    return [hits[i] for i in order], [evidence[i] for i in order]
