"""Sentence splitting and a cached per-chunk analysis (sentences, their terms, injection marks).

The same popular chunks come back for many requests, and normalising their text is most of the
extractive path's cost, so the analysis of a chunk text is cached (keyed by the text itself, so an
updated chunk is simply a new entry).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from .language import match_form, terms_of_match_form
from .safety import injection_in_match_form

_UPPER = "A-ZÇĞİÖŞÜ"
# A sentence ends at . ! ? … followed by space and a capital, digit or quote; or at a period glued to a
# capitalised word ("yaşadı.Tesla"), a common flaw of scraped text.
_BOUNDARY = re.compile(
    rf"(?<=[.!?…])[\"”’)]?\s+(?=[{_UPPER}0-9\"“'(])|(?<=[a-zçğıöşü]{{2}}[.!?])(?=[{_UPPER}][a-zçğıöşü])"
)
# ...but not after an initial ("William E."), an ordinal ("1. Dünya") or a common abbreviation.
_NO_BREAK_AFTER = re.compile(
    rf"(?:^|[\s(])(?:\d{{1,2}}|[{_UPPER}]|[A-Za-z]{{1,3}}\.[A-Za-z]{{1,3}}"
    r"|Dr|Prof|Doç|St|Mr|Mrs|Av|vb|vs|örn|bkz|yy|No|Tel)\.$"
)
CACHED_TEXTS = 4096


def split_sentences(text: str) -> list[str]:
    """Return the sentences of `text` (Turkish-aware: initials, ordinals and abbreviations kept whole)."""
    sentences: list[str] = []
    for part in _BOUNDARY.split(text.strip()):
        part = " ".join(part.split())
        if not part:
            continue
        if sentences and _NO_BREAK_AFTER.search(sentences[-1]):
            sentences[-1] = f"{sentences[-1]} {part}"
        else:
            sentences.append(part)
    return sentences


@dataclass(frozen=True)
class Sentence:
    text: str
    form: str  # the match form (assist.language.match_form)
    terms: frozenset[str]
    injection: bool


@dataclass(frozen=True)
class TextAnalysis:
    """A text's sentences and the union of their terms."""

    sentences: tuple[Sentence, ...]
    terms: frozenset[str]

    @property
    def has_injection(self) -> bool:
        return any(s.injection for s in self.sentences)

    def clean_text(self) -> str:
        """Return the text without the sentences that try to instruct the assistant."""
        return " ".join(s.text for s in self.sentences if not s.injection)


@lru_cache(maxsize=CACHED_TEXTS)
def analyse(text: str) -> TextAnalysis:
    """Return the sentence analysis of `text` (cached)."""
    sentences = []
    for sentence in split_sentences(text):
        form = match_form(sentence)
        sentences.append(
            Sentence(sentence, form, frozenset(terms_of_match_form(form)), injection_in_match_form(form))
        )
    terms = frozenset().union(*(s.terms for s in sentences)) if sentences else frozenset()
    return TextAnalysis(tuple(sentences), terms)
