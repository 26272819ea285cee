"""Spoken and clipped Turkish as customers type it on WhatsApp, rewritten to the written forms documents use.

Rules work on one Turkish-lower-cased word at a time, with or without diacritics ("yapıyo" and "yapiyo"),
and return the written word(s); a word no rule recognises comes back unchanged. They are general Turkish
(suffix shapes, the question particle, common chat spellings), never a tenant's or a data set's vocabulary.

- letters typed three or more times collapse: "çoook" → "çok";
- common chat spellings: "nerde" → "nerede", "nası" → "nasıl", "bi" → "bir", "napıyım" → "ne yapayım";
- the present tense clipped to "-yo": "geliyo" → "geliyor", "istiyom" → "istiyorum";
- the future clipped: "yapcam" / "yapıcam" → "yapacağım", "gelcez" → "geleceğiz";
- the question particle glued to the verb: "olurmu" → "olur mu", "yapiyomusunuz" → "yapiyor musunuz".

Each rule needs the shape of a verb ending, so nouns that merely end alike stay as they are ("hocam",
"amcam", "yirmi", "platformu", "radyo", "şampiyon", "gerçek").
"""

from __future__ import annotations

import re
from functools import lru_cache

_LETTER_RUN = re.compile(r"([^\W\d_])\1{2,}")

# Written forms of frequent chat spellings; keys are as typed (lower case), with and without diacritics.
_SPELLINGS: dict[str, tuple[str, ...]] = {
    "nerde": ("nerede",),
    "burda": ("burada",),
    "şurda": ("şurada",),
    "surda": ("şurada",),
    "orda": ("orada",),
    "nası": ("nasıl",),
    "nasi": ("nasıl",),
    "bi": ("bir",),
    "bişey": ("bir", "şey"),
    "bisey": ("bir", "şey"),
    "bişi": ("bir", "şey"),
    "bisi": ("bir", "şey"),
    "hiçbişey": ("hiçbir", "şey"),
    "hicbisey": ("hiçbir", "şey"),
    "napıyım": ("ne", "yapayım"),
    "napiyim": ("ne", "yapayım"),
    "napayım": ("ne", "yapayım"),
    "napayim": ("ne", "yapayım"),
    "napcam": ("ne", "yapacağım"),
    "napıcam": ("ne", "yapacağım"),
    "napicam": ("ne", "yapacağım"),
    "napıyorsunuz": ("ne", "yapıyorsunuz"),
    "napiyorsunuz": ("ne", "yapıyorsunuz"),
    "noldu": ("ne", "oldu"),
    "nolur": ("ne", "olur"),
    "nolcak": ("ne", "olacak"),
    "olcak": ("olacak",),
    "olucak": ("olacak",),
    "gelcek": ("gelecek",),
    "gelicek": ("gelecek",),
    "deyil": ("değil",),
    "diil": ("değil",),
    "şuan": ("şu", "an"),
    "suan": ("şu", "an"),
    "zmn": ("zaman",),
    "tmm": ("tamam",),
    "slm": ("selam",),
    "mrb": ("merhaba",),
    "mrhb": ("merhaba",),
    "tşk": ("teşekkür",),
    "tsk": ("teşekkür",),
    "tşkler": ("teşekkürler",),
    "tskler": ("teşekkürler",),
    "msj": ("mesaj",),
    "cvp": ("cevap",),
    "hk": ("hakkında",),
    "bn": ("ben",),
}

# The question particle and its personal endings ("mi", "mısınız", "mudur", "miydi").
PARTICLE = re.compile(
    r"m[ıiuü](?:y[ıiuü]m|s[ıiuü]n|y[ıiuü]z|s[ıiuü]n[ıiuü]z|d[ıiuü]r|yd[ıiuü]|yd[ıiuü]m|yd[ıiuü]n[ıiuü]z)?"
)
# Verb endings a glued particle follows: aorist (-ar/-ir), present (-yor, clipped -yo), reported past
# (-mış), future (-acak), and var/yok. The past (-dı) is left out: "geldimi" has the shape of "kartımı"
# and "yardımı", which are nouns.
_BEFORE_PARTICLE = re.compile(r"(?:.{2,}[aeıiuü]r|var|.*yor?|.{2,}m[ıiuü]ş|.{2,}[cç][ae]k|yok)")
_GLUED = re.compile(rf"(?P<head>{_BEFORE_PARTICLE.pattern})(?P<particle>{PARTICLE.pattern})")

# Present tense clipped to -yo: "geliyo", "yapıyom", "gönderiyosunuz", "istiyonuz", "bakıyolar", "diyodu".
_CLIPPED_PRESENT = re.compile(
    r"(?P<stem>.+[ıiuü])yo(?P<end>m|z|sun|sunuz|nuz|lar|du|dum|dun|duk|dunuz|muş|sa|sam|san|sanız)?"
)
_PRESENT_ENDINGS = {"m": "um", "z": "uz", "nuz": "sunuz"}

# Future clipped: "yapcam", "yapıcam", "gelicem", "edicez"; the -cak/-cek third person is left out on
# purpose, it is the shape of too many nouns ("gerçek", "çiçek", "bıçak", "sıcak").
_CLIPPED_FUTURE = re.compile(r"(?P<stem>[^\W\d_]+?)c(?P<vowel>[ae])(?P<end>[mz])")
_CONSONANTS = frozenset("bcçdfgğhjklmnprsştvyz")
_FUTURE_ENDINGS = {("a", "m"): "acağım", ("a", "z"): "acağız", ("e", "m"): "eceğim", ("e", "z"): "eceğiz"}


def _future(stem: str, vowel: str, end: str) -> str:
    if stem[-1] in "ıiuü":
        # Either the linking vowel of "yap-ı-cam" after a consonant stem, or the narrowed last vowel of a
        # vowel stem ("ekle" → "ekli-cem", "ara" → "arı-cam"); Turkish word frequencies tell which verb
        # it is ("ekleyeceğim" is a word, "ekleceğim" is not).
        stem = stem[:-1]
        if len(stem) < 2 or stem[-1] not in _CONSONANTS:
            return ""
        consonant = stem + _FUTURE_ENDINGS[vowel, end]
        narrowed = stem + vowel + "y" + _FUTURE_ENDINGS[vowel, end]
        return narrowed if _frequency(narrowed) > _frequency(consonant) else consonant
    elif stem[-1] not in _CONSONANTS or len(stem) < 3:
        return ""  # "hocam", "gecem", "amcam": a vowel or a two-letter stem before -cam is a noun
    return stem + _FUTURE_ENDINGS[vowel, end]


def _frequency(word: str) -> float:
    from wordfreq import zipf_frequency

    return float(zipf_frequency(word, "tr"))


def _present(word: str) -> str:
    match = _CLIPPED_PRESENT.fullmatch(word)
    if match is None:
        return ""
    end = match.group("end") or ""
    return f"{match.group('stem')}yor{_PRESENT_ENDINGS.get(end, end)}"


def _verb_form(word: str) -> str:
    """Return the written form of a clipped verb, or "" when `word` has no clipped shape."""
    present = _present(word)
    if present:
        return present
    match = _CLIPPED_FUTURE.fullmatch(word)
    if match is not None:
        return _future(match.group("stem"), match.group("vowel"), match.group("end"))
    return ""


@lru_cache(maxsize=65_536)
def written_forms(word: str) -> tuple[str, ...]:
    """Return the written word(s) for one lower-cased `word` as typed; `(word,)` when nothing applies."""
    word = _LETTER_RUN.sub(r"\1", word)
    if word in _SPELLINGS:
        return _SPELLINGS[word]
    glued = _GLUED.fullmatch(word)
    if glued is not None and len(word) > len(glued.group("particle")) + 1:
        head = glued.group("head")
        return (_verb_form(head) or head, glued.group("particle"))
    return (_verb_form(word) or word,)
