"""What must not be answered automatically: sensitive topics, requests for a human, anger, prompt injection.

Most patterns run on the match form of the text (Turkish lower case, no punctuation, apostrophes as
spaces, diacritics folded), so "Önceki TALİMATLARI yok say!", "onceki talimatlari yok say" and
"customers' data" all match plain patterns. Patterns are written with Turkish letters for reading and
folded when compiled, once at import: these checks run on every request.

Folding merges some words with everyday ones: "öldü" (died) folds to "oldu" (became, as in "iptal
oldu"), "ölmüş" to "olmuş", "ölüm" to "olum" ("olumlu"). Such words are matched on the unfolded text
only, where the diacritics still tell them apart; a customer who types "babam oldu" without them is not
caught, which is the price of never handing off "siparişim teslim oldu mu".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from retrieval.text import fold_turkish, normalise_for_match

from .language import match_form


@dataclass(frozen=True)
class _TopicPatterns:
    """A sensitive topic's words: those safe to match folded, and those that need their diacritics."""

    folded: str
    exact: str | None = None


# topic code -> patterns; the code goes into the handoff summary, never the customer's words.
_SENSITIVE_TOPICS: dict[str, _TopicPatterns] = {
    "hukuki": _TopicPatterns(
        r"\bavukat|\bdava\b|\bdava(?:c|y|m|n|l)\w*|\bmahkeme|\bsavcı|\bicra\b|\bicraya|hakem heyeti"
        r"|yasal (?:işlem|yollara|süreç)|suç duyurusu|\blawyer|\blawsuit|\bsue\b|\bcourt\b|legal action"
    ),
    "dolandırıcılık": _TopicPatterns(
        # A courier who "kapıyı çaldı" rang the bell: the same verb, nothing stolen.
        r"dolandır|(?<!kapı )(?<!zil )\bçalındı|(?<!kapıyı )(?<!zili )\bçaldılar|\bçalıntı|ele geçir"
        r"|hacklen|hack\w* (?:yedim|oldu)"
        r"|izinsiz (?:işlem|çekim|harcama)|yetkisiz (?:işlem|çekim|harcama)|benim yapmadığım"
        r"|\bfraud|\bscam\b|\bstolen\b|\bhacked\b|unauthori[sz]ed"
    ),
    "sağlık ve güvenlik": _TopicPatterns(
        # "yangın söndürücü" is a product and "yangın indirimi" a sale, not a fire.
        r"\bintihar|kendimi öldür|\bvefat|hayatını kaybet|zehirlen|alerjik reaksiyon|\byaralan"
        r"|\byangın\b(?! (?:söndür|tüp|alarm|dedektör|battaniye|merdiven|kapı|sigorta|indirim|kampanya|satış|fırsat))"
        r"|\bsuicide|kill myself|\bdied\b|\bpoison(?:ed|ing)\b|\binjur",
        exact=r"\böldü(?:ğ\w*)?\b|\bölmüş\b|\bölüm\b",
    ),
    "kişisel veri talebi": _TopicPatterns(
        r"\bkvkk|kişisel veri|verilerimi (?:sil|silin|silmenizi|yok edin)|\bgdpr\b|personal data"
        r"|delete my data"
    ),
}


def _compile(pattern: str) -> re.Pattern[str]:
    # Patterns hold only lower-case letters and lower-case escapes (\b, \w), so folding is safe.
    return re.compile(fold_turkish(pattern))


# Exact patterns run on the unfolded text and are compiled as written.
_SENSITIVE = {
    topic: (_compile(p.folded), re.compile(p.exact) if p.exact else None)
    for topic, p in _SENSITIVE_TOPICS.items()
}

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


def sensitive_topic(text: str) -> str | None:
    """Return the Turkish label of the first sensitive topic `text` raises, or None."""
    exact = normalise_for_match(text)
    folded = match_form(text)
    for topic, (folded_pattern, exact_pattern) in _SENSITIVE.items():
        if folded_pattern.search(folded) or (exact_pattern is not None and exact_pattern.search(exact)):
            return topic
    return None


def assess(customer_text: str) -> SafetySignals:
    """Return the safety signals of the customer's latest messages."""
    normalised = match_form(customer_text)
    topic = sensitive_topic(customer_text)
    injection = _INJECTION.search(normalised) is not None
    return SafetySignals(
        sensitive_topic=topic,
        human_requested=_HUMAN_REQUEST.search(normalised) is not None,
        negative_sentiment=negative_sentiment(customer_text),
        injection=injection,
    )
