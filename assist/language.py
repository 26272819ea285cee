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

from retrieval.text import fold_turkish, normalise_for_match

from .models import Language

PREFIX_LEN = 5


def word_set(word_list: str) -> frozenset[str]:
    """Return the folded words of a whitespace-separated word list (how the lists below are written)."""
    return frozenset(fold_turkish(w) for w in word_list.split())


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

# Words that tell the languages apart; shared loanwords and names say nothing.
_TURKISH_MARKERS = word_set(
    """
    ve bir bu için ile mi mı mu mü ne nasıl neden var yok değil da de ki ben sen siz biz çok daha
    gibi kadar merhaba teşekkürler teşekkür lütfen evet hayır nerede zaman olarak ama misiniz
    musunuz mısınız miyim mıyım istiyorum yardım sipariş siparişim
    """
)
_ENGLISH_MARKERS = word_set(
    """
    the a an is are was were be do does did i you my your we it this that what where when how why
    which can could would should will have has to of for with and not please hello hi thanks thank
    want need order
    """
)
_TURKISH_LETTERS = re.compile(r"[çğışöüÇĞİŞÖÜ]")


def match_form(text: str) -> str:
    """Return `text` normalised for matching: Turkish lower case, no punctuation, diacritics folded."""
    return fold_turkish(normalise_for_match(text))


def words(text: str) -> list[str]:
    """Return the words of `text` in match form."""
    return match_form(text).split()


def content_terms(text: str) -> set[str]:
    """Return the topic-bearing terms of `text`: 5-letter prefixes of its words minus function words."""
    return terms_of_match_form(match_form(text))


def terms_of_match_form(form: str) -> set[str]:
    """Return `content_terms` of text that is already in match form."""
    return {w[:PREFIX_LEN] for w in form.split() if w not in FUNCTION_WORDS and (len(w) > 1 or w.isdigit())}


def detect_language(text: str) -> Language | None:
    """Return "tr" or "en" for `text`, or None when it carries no evidence either way (e.g. "ok")."""
    tokens = words(text)
    turkish = sum(1 for w in tokens if w in _TURKISH_MARKERS)
    english = sum(1 for w in tokens if w in _ENGLISH_MARKERS)
    if _TURKISH_LETTERS.search(text):
        turkish += 2
    if english > turkish:
        return "en"
    if turkish:
        return "tr"
    return None


def conversation_language(customer_texts: Iterable[str], default: str = "tr") -> Language:
    """Return the language of the latest customer message that shows one, else the tenant default."""
    for text in reversed(list(customer_texts)):
        found = detect_language(text)
        if found:
            return found
    return "en" if default == "en" else "tr"
