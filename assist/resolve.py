"""The auto-resolution decision: answer the customer, or hand off to a human and say why.

In order, a conversation is handed off when
1. the customer asks for a human, raises a sensitive topic (or tries to instruct the assistant), or
   is angry beyond the tenant's threshold: no retrieval at all;
2. the knowledge base has nothing relevant (no_knowledge), or no source that may be sent automatically
   reaches the threshold of the tenant's precision target (low_confidence; in suggest-only mode always);
3. the LLM fails (provider_error), says the context cannot answer (no_knowledge), or answers with
   citations or facts the retrieved chunks do not support (low_confidence);
4. the reply would carry a redaction placeholder, or is not in the customer's language (extractive
   text cannot be translated: unsupported_language).
Otherwise the answer goes out with its citations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from retrieval.models import SearchHit

from .confidence import BLOCK_REASONS, Evidence
from .extractive import extractive_replies
from .generate import generate_answer
from .handoff import ResolveThresholds
from .language import content_terms, detect_language
from .models import ConversationTurn, HandoffReason, Language, Tone
from .policy import CALIBRATING_NOTE, AutoAnswerPolicy
from .providers import LLMProvider
from .safety import SafetySignals
from .verify import has_placeholder

EXTRACTIVE = "extractive"


@dataclass(frozen=True)
class Decision:
    """An answer (`reason` None) or a handoff, with what the summary needs to explain it."""

    mode: str
    text: str | None = None
    cited: tuple[SearchHit, ...] = ()
    confidence: float | None = None
    reason: HandoffReason | None = None
    detail: str | None = None
    tried: str | None = None

    @property
    def is_answer(self) -> bool:
        return self.reason is None


def safety_handoff(signals: SafetySignals, thresholds: ResolveThresholds) -> Decision | None:
    """Return the handoff the customer's latest messages call for before any retrieval, or None."""
    if signals.human_requested:
        return Decision(EXTRACTIVE, reason="customer_requested_human")
    if signals.sensitive_topic or signals.injection:
        topic = signals.sensitive_topic or "asistana talimat verme girişimi"
        return Decision(EXTRACTIVE, reason="sensitive_topic", detail=topic)
    if signals.negative_sentiment >= thresholds.max_negative_sentiment:
        return Decision(
            EXTRACTIVE, reason="negative_sentiment", detail=f"öfke puanı {signals.negative_sentiment:.1f}"
        )
    return None


_GENERATION_FAILURE: dict[str, HandoffReason] = {
    "provider_error": "provider_error",
    "malformed": "provider_error",
    "not_answerable": "no_knowledge",
    "ungrounded": "low_confidence",
}


def knowledge_decision(
    query: str,
    hits: Sequence[SearchHit],
    evidence: Sequence[Evidence],
    thresholds: ResolveThresholds,
    policy: AutoAnswerPolicy,
    provider: LLMProvider | None,
    messages: Sequence[ConversationTurn],
    language: Language,
    tone: Tone,
) -> Decision:
    """Return the decision the retrieved knowledge supports (`hits` most probable first, as gather_evidence
    orders them); the LLM is only called when a source clears the tenant's threshold."""
    top = evidence[0].confidence if evidence else 0.0
    if not hits:
        return Decision(
            EXTRACTIVE,
            confidence=0.0,
            reason="no_knowledge",
            tried="bilgi bankasında arandı, eşleşen içerik yok",
        )
    tried = f'bilgi bankasında arandı, en yakın içerik "{hits[0].title or hits[0].doc_id}" (güven {top:.2f})'
    if top < thresholds.min_relevance:
        return Decision(EXTRACTIVE, confidence=top, reason="no_knowledge", tried=tried)
    if policy.threshold is None:
        detail: str | None = "otomatik yanıt kapalı: " + (
            "bilgi tabanı değişti, politika yeniden hesaplanıyor"
            if policy.note == CALIBRATING_NOTE
            else "hassasiyet hedefi için yeterli kanıt yok"
        )
        return Decision(EXTRACTIVE, confidence=top, reason="low_confidence", detail=detail, tried=tried)
    # A tenant may set a stricter floor of its own; the precision target's threshold always applies.
    threshold = max(policy.threshold, thresholds.min_confidence)
    eligible = [(h, e) for h, e in zip(hits, evidence, strict=True) if e.blocked is None]
    if not eligible or eligible[0][1].confidence < threshold:
        return Decision(
            EXTRACTIVE, confidence=top, reason="low_confidence", detail=_weakness(evidence[0]), tried=tried
        )
    usable_hits = [h for h, _ in eligible]
    usable_evidence = [e for _, e in eligible]

    if provider is not None:
        tried = f"{tried}; {provider.name} ile yanıt üretilmeye çalışıldı"
        generation = generate_answer(
            provider, "resolve", usable_hits, usable_evidence, messages, language, tone
        )
        answer = generation.answer
        if answer is None:
            failure = generation.failure or "ungrounded"
            detail = (
                "yanıt, bulunan kaynaklarca desteklenmedi" if failure == "ungrounded" else generation.detail
            )
            return Decision(provider.name, reason=_GENERATION_FAILURE[failure], detail=detail, tried=tried)
        if answer.confidence < threshold:
            return Decision(provider.name, confidence=answer.confidence, reason="low_confidence", tried=tried)
        if has_placeholder(answer.text):
            detail = BLOCK_REASONS["placeholder"]
            return Decision(
                provider.name, confidence=answer.confidence, reason="low_confidence", detail=detail
            )
        return Decision(provider.name, text=answer.text, cited=answer.cited, confidence=answer.confidence)

    replies = extractive_replies(query, content_terms(query), usable_hits, usable_evidence, limit=1)
    if not replies or replies[0].confidence < threshold:
        confidence = replies[0].confidence if replies else top
        return Decision(EXTRACTIVE, confidence=confidence, reason="low_confidence", tried=tried)
    best = replies[0]
    if has_placeholder(best.text):
        detail = BLOCK_REASONS["placeholder"]
        return Decision(
            EXTRACTIVE, confidence=best.confidence, reason="low_confidence", detail=detail, tried=tried
        )
    answer_language = detect_language(best.text)
    if answer_language not in (None, language):
        # Extractive text cannot be translated; an English customer is not answered in Turkish.
        detail = f"bulunan yanıt müşterinin dilinde değil ({answer_language})"
        return Decision(
            EXTRACTIVE, confidence=best.confidence, reason="unsupported_language", detail=detail, tried=tried
        )
    return Decision(EXTRACTIVE, text=best.text, cited=(best.hit,), confidence=best.confidence)


def _weakness(evidence: Evidence) -> str:
    """Return why the best source was not enough, for the agent's summary."""
    if evidence.blocked:
        return BLOCK_REASONS[evidence.blocked]
    if evidence.missing:
        words = ", ".join(evidence.missing[:3])
        return f"en yakın kaynak sorudaki şu kelimeleri içermiyor: {words}"
    return "en yakın kaynağın bu soruyu yanıtladığı yeterince kesin değil"
