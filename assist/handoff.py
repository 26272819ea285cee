"""When auto-resolution hands a conversation to a human: the thresholds, the agent summary, the customer message."""

from __future__ import annotations

from dataclasses import dataclass, fields

from .models import HandoffReason, Language, Tone
from .policy import DEFAULT_PRECISION_TARGET

# What an agent reads in the summary's last line.
REASON_TEXT: dict[str, str] = {
    "no_knowledge": "bilgi bankasında bu konuyla ilgili içerik bulunamadı",
    "low_confidence": "bulunan içerik soruyu güvenle yanıtlamaya yetmedi",
    "sensitive_topic": "konu hassas olduğu için otomatik yanıt verilmedi",
    "customer_requested_human": "müşteri bir temsilciyle görüşmek istedi",
    "negative_sentiment": "müşteri memnuniyetsiz veya öfkeli görünüyor",
    "provider_error": "yanıt modeline ulaşılamadı veya model geçerli bir yanıt vermedi",
    "unsupported_language": "müşteri, otomatik yanıtın verilemediği bir dilde yazdı",
}

_CUSTOMER_MESSAGE: dict[tuple[str, str], str] = {
    ("tr", "siz"): "Sorunuzu bir müşteri temsilcimize aktarıyorum; en kısa sürede size yardımcı olacak.",
    ("tr", "sen"): "Sorunu bir müşteri temsilcimize aktarıyorum; en kısa sürede sana yardımcı olacak.",
    (
        "en",
        "siz",
    ): "I am passing your question to one of our customer representatives, who will help you shortly.",
    ("en", "sen"): "I'm passing your question to one of our team, who'll help you shortly.",
}

_SUMMARY_REQUEST_CHARS = 200


@dataclass(frozen=True)
class ResolveThresholds:
    """Per-tenant limits of auto-resolution; conservative by default (in doubt, a human answers).

    Set in TenantSettings.resolve_thresholds under the same names; missing names keep these defaults.
    """

    # A floor of the tenant's own under the precision target's threshold (assist.policy); 0: none.
    min_confidence: float = 0.0
    # Below this probability the knowledge base has nothing on the topic (no_knowledge, not low_confidence).
    min_relevance: float = 0.15
    # Hand off when the customer's anger score (assist.safety.negative_sentiment) reaches this.
    max_negative_sentiment: float = 0.5
    # Share of automatic answers that must be right; the threshold meeting it is chosen on evidence.
    precision_target: float = DEFAULT_PRECISION_TARGET
    # A threshold the tenant sets itself instead (0 < t <= 1); the policy still reports its evidence.
    auto_threshold: float | None = None

    @classmethod
    def from_tenant(cls, overrides: dict[str, float]) -> ResolveThresholds:
        """Return the defaults with the tenant's named overrides applied; unknown names are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: float(v) for k, v in overrides.items() if k in known})


def customer_message(language: Language, tone: Tone) -> str:
    """Return what the customer is told when a human takes over, in their language and the tenant's tone."""
    return _CUSTOMER_MESSAGE[(language, tone)]


def handoff_summary(request: str, reason: HandoffReason, tried: str | None, detail: str | None = None) -> str:
    """Return a three-line Turkish summary for the agent: what the customer wants, what was tried, why.

    `request` must already be PII-redacted; it is shortened to one line.
    """
    wanted = " ".join(request.split())
    if len(wanted) > _SUMMARY_REQUEST_CHARS:
        wanted = wanted[: _SUMMARY_REQUEST_CHARS - 1].rstrip() + "…"
    why = REASON_TEXT[reason] + (f" ({detail})" if detail else "")
    return "\n".join(
        (
            f"Müşterinin talebi: {wanted}",
            f"Denenen: {tried or 'otomatik yanıt denenmedi'}.",
            f"Aktarma nedeni: {why}.",
        )
    )
