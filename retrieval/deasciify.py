"""Diacritics put back into Turkish words typed without them ("kac" → "kaç", "ucreti" → "ücreti").

Customers type "kac", "nasil", "ucreti"; a tenant's FAQ says "kaç", "nasıl", "ücreti", while its past chats
hold the customers' ASCII spellings. Matched as typed, a rare ASCII spelling gets a high IDF and ranks a
chat above the FAQ entry for the wrong reason. So an all-ASCII word becomes the spelling Turkish uses most
for it, from wordfreq's Turkish word frequencies (shipped in the package, read once): "kac" → "kaç",
"ogrenci" → "öğrenci", while "oldu" stays "oldu" (far more common than "öldü") and "kargo" stays "kargo".
An ASCII word that is a common word of its own stays too ("su" is water, not only a bare "şu"), and so do
words that carry a Turkish letter already and words Turkish does not know (brands, codes).
"""

from __future__ import annotations

from functools import lru_cache

from .text import fold_lowered, turkish_lower

# An ASCII word that Turkish itself uses at a tenth of its diacritic twin's frequency or more is a word
# in its own right ("su" water / "şu", "sinir" / "sınır", "koy" / "köy", "mac"): it is left as typed.
_OWN_WORD_RATIO = 0.1


@lru_cache(maxsize=1)
def _spellings() -> dict[str, str]:
    """Return folded word → its usual Turkish spelling, for the words typed without diacritics to restore."""
    import wordfreq

    frequencies = wordfreq.get_frequency_dict("tr")
    best: dict[str, tuple[float, str]] = {}
    for typed, frequency in frequencies.items():
        word = turkish_lower(typed)
        folded = fold_lowered(word)
        if folded not in best or frequency > best[folded][0]:
            best[folded] = (frequency, word)
    return {
        folded: word
        for folded, (frequency, word) in best.items()
        if word != folded and frequencies.get(folded, 0.0) < _OWN_WORD_RATIO * frequency
    }


def restore_diacritics(word: str) -> str:
    """Return the usual Turkish spelling of a lower-cased `word` typed without Turkish letters, else `word`."""
    # An ASCII word is its own folded form; a word with any other letter was typed with its diacritics.
    return _spellings().get(word, word) if word.isascii() else word
