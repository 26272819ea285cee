"""Turkish-aware text normalisation shared by the sparse index, answer matching and language checks."""

from __future__ import annotations

import re
import unicodedata

_APOSTROPHES = re.compile(r"[’‘`´']")
_NON_WORD = re.compile(r"[^\w\s]", re.UNICODE)
_SPACES = re.compile(r"\s+")


def turkish_lower(text: str) -> str:
    """Return `text` lower-cased by Turkish rules: İ→i and I→ı before the generic lower()."""
    # NFC first: a decomposed "İ" (I + combining dot) must become "i", not "ı" + dot. Two replaces are
    # several times faster than translate() with a table on long texts.
    return unicodedata.normalize("NFC", text).replace("İ", "i").replace("I", "ı").lower()


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


# What ingestion/redact.py puts in place of personal data ([TELEFON], [TCKN], [MUSTERI_NO], ...).
REDACTION_PLACEHOLDER = re.compile(r"\[[A-ZÇĞİÖŞÜ][A-ZÇĞİÖŞÜ0-9_]*\]")


def strip_placeholders(text: str) -> str:
    """Return `text` with redaction placeholders replaced by a space: they stand for nothing a search can match.

    Two chunks that both contained a phone number share "[TELEFON]", not the number; matching on it would
    rank a chunk for the mere presence of personal data.
    """
    return REDACTION_PLACEHOLDER.sub(" ", text)


def fold_lowered(text: str) -> str:
    """Return already Turkish-lower-cased `text` with its diacritics folded (ş→s, ı→i); see fold_turkish."""
    return text.translate(_FOLD)
