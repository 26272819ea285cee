"""Turkish-aware text normalisation shared by the sparse index, answer matching and language checks."""

from __future__ import annotations

import re
import unicodedata

_TR_UPPER_TO_LOWER = str.maketrans({"İ": "i", "I": "ı"})
_APOSTROPHES = re.compile(r"[’‘`´']")
_NON_WORD = re.compile(r"[^\w\s]", re.UNICODE)
_SPACES = re.compile(r"\s+")


def turkish_lower(text: str) -> str:
    """Return `text` lower-cased by Turkish rules: İ→i and I→ı before the generic lower()."""
    # NFC first: a decomposed "İ" (I + combining dot) must become "i", not "ı" + dot.
    return unicodedata.normalize("NFC", text).translate(_TR_UPPER_TO_LOWER).lower()


# Customers often type Turkish without diacritics ("tesekkurler"); matching on folded text ignores them.
_FOLD = str.maketrans("ışğçöüâîû", "isgcouaiu")


def fold_turkish(text: str) -> str:
    """Return `text` Turkish-lower-cased with diacritics folded to ASCII (ş→s, ı→i); same length on NFC text."""
    return turkish_lower(text).translate(_FOLD)


def normalise_for_match(text: str) -> str:
    """Return Turkish-lowered text without punctuation or apostrophes, whitespace collapsed."""
    lowered = turkish_lower(text)
    lowered = _APOSTROPHES.sub(" ", lowered)
    lowered = _NON_WORD.sub(" ", lowered)
    return _SPACES.sub(" ", lowered).strip()
