"""Turkish or English: the cheap test both retrieval and assist use (no model, no download).

Marker words and Turkish letters decide it. Retrieval uses it to weigh its two sides: the BM25 side is
built for Turkish (stems, folded letters, spoken forms), so for an English question it finds only
noise and the dense (multilingual) side decides (`Settings.english_dense_weight`). Assist uses it to
answer in the customer's language.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

from .text import fold_turkish, normalise_for_match

Language = Literal["tr", "en"]


@lru_cache(maxsize=4096)
def match_form(text: str) -> str:
    """Return `text` normalised for matching: Turkish lower case, no punctuation, diacritics folded.

    Cached: a request reads the same retrieved chunks' sentences several times (and tells each one's
    language)."""
    return fold_turkish(normalise_for_match(text))


def word_set(word_list: str) -> frozenset[str]:
    """Return the folded words of a whitespace-separated word list (how the lists below are written)."""
    return frozenset(fold_turkish(w) for w in word_list.split())


# Words that tell the languages apart; shared loanwords and names say nothing.
TURKISH_MARKERS = word_set(
    """
    ve bir bu için ile mi mı mu mü ne nasıl neden var yok değil da de ki ben sen siz biz çok daha
    gibi kadar merhaba teşekkürler teşekkür lütfen evet hayır nerede zaman olarak ama misiniz
    musunuz mısınız miyim mıyım istiyorum yardım sipariş siparişim
    """
)
ENGLISH_MARKERS = word_set(
    """
    the a an is are was were be do does did i you my your we it this that what where when how why
    which can could would should will have has to of for with and not please hello hi thanks thank
    want need order
    """
)
_TURKISH_LETTERS = re.compile(r"[çğışöüÇĞİŞÖÜ]")


def detect_language(text: str) -> Language | None:
    """Return "tr" or "en" for `text`, or None when it carries no evidence either way (e.g. "ok")."""
    tokens = match_form(text).split()
    turkish = sum(1 for w in tokens if w in TURKISH_MARKERS)
    english = sum(1 for w in tokens if w in ENGLISH_MARKERS)
    if _TURKISH_LETTERS.search(text):
        turkish += 2
    if english > turkish:
        return "en"
    if turkish:
        return "tr"
    return None
