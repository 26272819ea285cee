"""What must not be answered automatically: sensitive topics, requests for a human, anger, prompt injection.

Every pattern runs on the match form of the text (Turkish lower case, no punctuation, apostrophes as
spaces, diacritics folded), so "Önceki TALİMATLARI yok say!", "onceki talimatlari yok say" and
"customers' data" all match plain patterns. Patterns are written with Turkish letters for reading and
folded when compiled, once at import: these checks run on every request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from retrieval.text import fold_turkish

from .language import match_form

# topic code -> pattern; the code goes into the handoff summary, never the customer's words.
_SENSITIVE_TOPICS: dict[str, str] = {
    "hukuki": (
        r"\bavukat|\bdava\b|\bdava(?:c|y|m|n|l)\w*|\bmahkeme|\bsavcı|\bicra\b|\bicraya|hakem heyeti"
        r"|yasal (?:işlem|yollara|süreç)|suç duyurusu|\blawyer|\blawsuit|\bsue\b|\bcourt\b|legal action"
    ),
    "dolandırıcılık": (
        r"dolandır|\bçalındı|\bçaldılar|\bçalıntı|ele geçir|hacklen|hack\w* (?:yedim|oldu)"
        r"|izinsiz (?:işlem|çekim|harcama)|yetkisiz (?:işlem|çekim|harcama)|benim yapmadığım"
        r"|\bfraud|\bscam\b|\bstolen\b|\bhacked\b|unauthori[sz]ed"
    ),
    "sağlık ve güvenlik": (
        r"\bintihar|kendimi öldür|\bvefat|\böldü\b|zehirlen|alerjik reaksiyon|\byaralan|\byangın"
        r"|\bsuicide|kill myself|\bdied\b|poison|\binjur"
    ),
    "kişisel veri talebi": (
        r"\bkvkk|kişisel veri|verilerimi (?:sil|silin|silmenizi|yok edin)|\bgdpr\b|personal data"
        r"|delete my data"
    ),
}


def _compile(pattern: str) -> re.Pattern[str]:
    # Patterns hold only lower-case letters and lower-case escapes (\b, \w), so folding is safe.
    return re.compile(fold_turkish(pattern))


_SENSITIVE = {topic: _compile(pattern) for topic, pattern in _SENSITIVE_TOPICS.items()}

_HUMAN_REQUEST = _compile(
    r"\btemsilci\w*|canlı deste[kğ]|gerçek (?:bir )?(?:insan|kişi)|insanla (?:görüş|konuş)"
    r"|\byetkili(?:yle|ye| biri)\w*|\boperatör|biriyle (?:görüş|konuş)|(?:beni|bana) bağla"
    r"|bot (?:değil|istemiyorum)|robotla (?:değil|konuşmak istemiyorum)"
    r"|\bhuman\b|real person|\b(?:an? |live |your )agent\b|representative|\boperator\b"
    r"|(?:talk|speak) to (?:someone|somebody|a person|a real)"
)

# Strong cues count 0.5 each, weak cues 0.2; the sum (capped at 1) is compared with a tenant threshold.
_STRONG_NEGATIVE = _compile(
    r"\brezalet|\bberbat|\bskandal|saçmalık|\bbıktım|bıkkın|dalga mı geçiyorsunuz|\bkızgınım"
    r"|sinir oldum|sinirlendim|utanmıyor musunuz|\bmağdur|kandırıldım|bir daha (?:asla )?(?:almam|alışveriş)"
    r"|şikayet ed(?:eceğim|iyorum)|\bterrible\b|\bawful\b|\bworst\b|\bridiculous\b|unacceptable"
    r"|disgusting|\bfurious\b|fed up|\bangry\b|\bscammed\b"
)
_WEAK_NEGATIVE = _compile(
    r"\bhala\b|\bhâlâ\b|günlerdir|haftalardır|kaç gündür|defalarca|\byine\b|maalesef|memnun değilim"
    r"|üzücü|hayal kırıklığı|\bstill\b|\bagain\b|disappoint|not happy|unhappy"
)
_SHOUTING = re.compile(r"!{2,}|\?{3,}")
_CAPS_WORD = re.compile(r"\b[A-ZÇĞİÖŞÜ]{4,}\b")

_INJECTION = _compile(
    r"(?:önceki|yukarıdaki|tüm|bütün|verilen|sana verilen) (?:talimat|komut|kural|yönerge)\w*"
    r"|talimat\w* (?:yok say|görmezden gel|unut|dikkate alma|uyma)"
    r"|sistem (?:istem|mesaj|talimat|prompt|komut)\w*|\bsystem prompt|gizli (?:talimat|kural)\w*"
    r"|(?:diğer|başka) (?:müşteri|kullanıcı|firma|şirket)\w* (?:veri|bilgi|kayıt|sipariş|adres|telefon)\w*"
    r"|geliştirici modu|sen artık|artık sen(?:in)? \w+ (?:değil|olarak)"
    r"|ignore (?:all |any |the |your )*(?:previous|prior|above|earlier|preceding) \w+"
    r"|disregard (?:all |any |the |your )*(?:previous|prior|above|earlier) \w+"
    r"|forget (?:all |your |the )*(?:previous |prior )?instructions"
    r"|(?:developer|hidden|secret) (?:prompt|message|instructions)"
    r"|(?:print|show|reveal|repeat|output|tell) (?:me )?(?:your|the) (?:\w+ )?(?:prompt|instructions|rules)"
    r"|other (?:customers|users|clients|tenants|companies) (?:data|information|records|details|orders)"
    r"|\byou are now\b|\bjailbreak|\bdan mode|developer mode"
)


@dataclass(frozen=True)
class SafetySignals:
    """What the latest customer messages show; `sensitive_topic` is a Turkish topic label or None."""

    sensitive_topic: str | None = None
    human_requested: bool = False
    negative_sentiment: float = 0.0
    injection: bool = False


def negative_sentiment(text: str) -> float:
    """Return a 0-1 anger score: strong cues 0.5, weak cues, shouting and capitals 0.2 each."""
    normalised = match_form(text)
    score = 0.5 * len(_STRONG_NEGATIVE.findall(normalised)) + 0.2 * len(_WEAK_NEGATIVE.findall(normalised))
    if _SHOUTING.search(text):
        score += 0.2
    if len(_CAPS_WORD.findall(text)) >= 2:
        score += 0.2
    return min(1.0, score)


def contains_injection(text: str) -> bool:
    """Return True when `text` tries to instruct the assistant (override rules, leak prompts or data)."""
    return injection_in_match_form(match_form(text))


def injection_in_match_form(form: str) -> bool:
    """Return `contains_injection` for text that is already in match form."""
    return _INJECTION.search(form) is not None


def assess(customer_text: str) -> SafetySignals:
    """Return the safety signals of the customer's latest messages."""
    normalised = match_form(customer_text)
    topic = next((name for name, pattern in _SENSITIVE.items() if pattern.search(normalised)), None)
    injection = _INJECTION.search(normalised) is not None
    return SafetySignals(
        sensitive_topic=topic,
        human_requested=_HUMAN_REQUEST.search(normalised) is not None,
        negative_sentiment=negative_sentiment(customer_text),
        injection=injection,
    )
