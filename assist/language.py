"""Cheap language detection (Turkish or English) and the content terms assist compares texts by.

No model download: Turkish letters and function words decide the language, and content terms are
word prefixes of 5 letters with function words removed. Prefixes are a strong stemmer for Turkish
("kargom", "kargoya", "kargonuz" all become "kargo"), the same trick the BM25 index uses.

Texts are compared in their "match form": normalised (Turkish lower case, no punctuation) and with
diacritics folded, because customers often type Turkish without them ("taksit secenegi", "tesekkurler").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from typing import Any

from retrieval.language import ENGLISH_MARKERS as _ENGLISH_MARKERS
from retrieval.language import TURKISH_MARKERS as _TURKISH_MARKERS
from retrieval.language import detect_language, match_form, word_set

from .models import Language

PREFIX_LEN = 5


# Question words, particles, pronouns and fillers: they say nothing about the topic of a question.
TURKISH_FUNCTION_WORDS = word_set(
    """
    acaba ama ancak artık aslında az bana bazı belki ben beni benim beri bile bir biraz birçok biri
    birkaç biz bize bizi bizim bu buna bunda bundan bunu bunun burada da daha de defa değil diye
    en evet gibi göre hangi hangisi hayır hem hep hepsi her hiç için ile ise işte kaç kadar kez ki
    kim kime kimi kimin lütfen merhaba mi mı mu mü midir mıdır misiniz mısınız musunuz müsünüz
    miyim mıyım muyum müyüm misin mısın musun müsün nasıl ne neden nedir nerde nerede nereden
    nereye niçin niye o olan olarak oldu olduğu olduğunu olmak olur ona ondan onlar onları
    onların onu onun öyle peki rica sadece selam siz size sizi sizin şey şu şuna şunu tarafından
    teşekkür teşekkürler ve var veya ya yani yok zaman çok hangileri
    """
)
ENGLISH_FUNCTION_WORDS = word_set(
    """
    a about am an and any are as at be been can could did do does for from had has have hello hi
    how i if in is it its me my no not of on or our please should so thanks thank that the their
    them there these they this to was we were what when where which who why will with would you
    your yours
    """
)
FUNCTION_WORDS = TURKISH_FUNCTION_WORDS | ENGLISH_FUNCTION_WORDS

# Letters only Turkish uses (ö and ü are German too).
_ONLY_TURKISH_LETTERS = re.compile(r"[çğışÇĞİŞ]")
# Cyrillic, Greek, Arabic and Persian letters: never Turkish or English.
_NON_LATIN = re.compile(r"[\u0370-\u03ff\u0400-\u04ff\u0600-\u06ff]")


def words(text: str) -> list[str]:
    """Return the words of `text` in match form."""
    return match_form(text).split()


def content_terms(text: str) -> set[str]:
    """Return the topic-bearing terms of `text`: 5-letter prefixes of its words minus function words."""
    return terms_of_match_form(match_form(text))


def terms_of_match_form(form: str) -> set[str]:
    """Return `content_terms` of text that is already in match form."""
    return {w[:PREFIX_LEN] for w in form.split() if w not in FUNCTION_WORDS and (len(w) > 1 or w.isdigit())}


# Languages a customer of a Turkish business may write in; the detector chooses only among these.
_DETECTED = (
    "TURKISH", "ENGLISH", "GERMAN", "RUSSIAN", "ARABIC", "FRENCH", "SPANISH", "PERSIAN", "AZERBAIJANI",
    "DUTCH", "ITALIAN", "UKRAINIAN", "BULGARIAN", "GREEK", "ROMANIAN", "POLISH",
)  # fmt: skip
# A message is in another language only when the detector is at least this sure.
FOREIGN_CONFIDENCE = 0.5
# Turkish and Azerbaijani are close enough that informal Turkish is often scored as Azerbaijani.
_ANSWERABLE = {"tr", "en", "az"}


@cache
def _detector() -> Any:
    from lingua import Language as Lingua
    from lingua import LanguageDetectorBuilder

    # Trigram models only (low-accuracy mode): 23 MiB loaded instead of 356 MiB in every server process.
    # On the shop and xquad dev messages (952 Turkish and English texts) neither mode calls one foreign;
    # on 20 short foreign questions this mode named 16, the full one 14 (the same 14 among them).
    languages = (getattr(Lingua, name) for name in _DETECTED)
    return LanguageDetectorBuilder.from_languages(*languages).with_low_accuracy_mode().build()


def warm_up() -> None:
    """Load the language models now (seconds, once per script) instead of on the first foreign message."""
    for sample in ("Wo ist meine Bestellung, bitte?", "Где мой заказ, пожалуйста?", "أين طلبي من فضلك؟"):
        foreign_language(sample)


def foreign_language(text: str) -> str | None:
    """Return the ISO 639-1 code of a message written in neither Turkish nor English ("de", "ru"), else None.

    Turkish and English are told apart by `detect_language`; this catches the rest, so that a German
    or Russian question is handed off instead of being answered in Turkish. Short or mixed texts stay None.
    """
    tokens = words(text)
    non_latin = _NON_LATIN.search(text) is not None
    if not non_latin and (
        _ONLY_TURKISH_LETTERS.search(text)
        or any(w in _TURKISH_MARKERS or w in _ENGLISH_MARKERS for w in tokens)
    ):
        return None  # Turkish or English words decide it (a Turkish message with one German word is Turkish)
    if len(tokens) < 2 and not non_latin:
        return None
    values = _detector().compute_language_confidence_values(text)
    if not values or values[0].value < FOREIGN_CONFIDENCE:
        return None
    code = str(values[0].language.iso_code_639_1.name).lower()
    return None if code in _ANSWERABLE else code


def conversation_language(customer_texts: Iterable[str], default: str = "tr") -> Language:
    """Return the language of the latest customer message that shows one, else the tenant default."""
    for text in reversed(list(customer_texts)):
        found = detect_language(text)
        if found:
            return found
    return "en" if default == "en" else "tr"
