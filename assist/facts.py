"""The checkable facts a sentence states: numbers with their units (14 gün, 3 iş günü, 49,90 TL, %10,
3 taksit, 09:00–19:00, 31 Aralık), each with the words around it that say what the number is about.

Two sources answer a question differently when the same kind of value about the same thing differs;
`assist.conflicts` compares the facts found here. Extraction is regular expressions over the folded
text (Turkish lower case, no diacritics, same length as the original, so the surface form is sliced
from the original sentence), nothing is learned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from retrieval.text import fold_turkish

from .language import content_terms

# A number as Turkish writes it: 1.500 (thousands), 24,90 (decimal), 5.5 (decimal in product names).
_NUM = r"\d{1,3}(?:\.\d{3})+(?:,\d+)?|\d+(?:[.,]\d+)?"
_NUMBER_WORDS = {
    "bir": 1, "iki": 2, "uc": 3, "dort": 4, "bes": 5, "alti": 6, "yedi": 7, "sekiz": 8, "dokuz": 9,
    "on": 10, "yirmi": 20, "otuz": 30, "kirk": 40, "elli": 50, "altmis": 60, "yetmis": 70,
    "seksen": 80, "doksan": 90,
}  # fmt: skip
_TENS = ("on", "yirmi", "otuz", "kirk", "elli", "altmis", "yetmis", "seksen", "doksan")
_ONES = ("bir", "iki", "uc", "dort", "bes", "alti", "yedi", "sekiz", "dokuz")
# "on dört", "otuz", "yedi": written-out numbers up to 99 (only counted when a unit follows them).
_WORD_NUM = rf"(?:(?:{'|'.join(_TENS)})(?:\s+(?:{'|'.join(_ONES)}))?|{'|'.join(_ONES)})"
_VALUE = rf"(?:{_NUM}|{_WORD_NUM})"
_JOIN = r"\s*(?:[–—-]|,(?=\s)|\bve\b|\bveya\b|\bya da\b|\bile\b)\s*"
_CLOCK = r"\d{1,2}:\d{2}"
# Month names as folded text, January first.
MONTHS = (
    "ocak", "subat", "mart", "nisan", "mayis", "haziran", "temmuz", "agustos", "eylul", "ekim", "kasim", "aralik",
)  # fmt: skip

# Times of day, alone or as a range ("09:00–19:00", "saat 14:00'e kadar").
_CLOCK_RE = re.compile(rf"(?<![\d:])({_CLOCK})(?:\s*[–—-]\s*({_CLOCK}))?(?![\d:])")
# A percentage: "%10", "% 50'si", "yüzde 5".
_PERCENT_RE = re.compile(rf"(?:%\s*|\byuzde\s+)({_NUM})(?![\d])")
# A number or a list/range of numbers ("6 ve 9", "1, 2 veya 3", "1–3") and the word(s) after it.
_AMOUNT_RE = re.compile(
    rf"(?<![\w.,:%-])({_VALUE}(?:{_JOIN}{_VALUE})*)(?:'\w+)?\s+([a-z]+(?:\s+[a-z]+)?)",
)
# Units by the word that follows the number; the first match wins ("iş günü" before "gün").
_UNITS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("iş günü", re.compile(r"is\s+gun")),
    ("gün", re.compile(r"gun(?!dur|durur)")),
    ("saat", re.compile(r"saat")),
    ("dakika", re.compile(r"dakika")),
    ("hafta", re.compile(r"hafta")),
    ("ay", re.compile(r"ay(?:da|dan|a|in|lik|ligina|i)?\b")),
    ("yıl", re.compile(r"yil(?!dir)")),
    ("TL", re.compile(r"(?:tl|lira)\b")),
    ("taksit", re.compile(r"taksit")),
    ("tarih", re.compile(rf"(?:{'|'.join(MONTHS)})\b")),
)
# Words after a number that say when something happened in one conversation, not a rule ("10 gün önce").
_SITUATION = re.compile(r"^\s*(?:once|oncesinde|gecti|gectigi|oldu|olmus|gundur|dur\b)")


@dataclass(frozen=True)
class Fact:
    """A value one sentence states: its kind (unit), normalised value and the words around it."""

    kind: str
    value: tuple[float, ...]
    surface: str
    clause: frozenset[str]
    start: int


def _number(text: str) -> float | None:
    text = text.strip()
    if text[:1].isdigit():
        if re.fullmatch(r"\d{1,3}(?:\.\d{3})+(?:,\d+)?", text):
            return float(text.replace(".", "").replace(",", "."))
        return float(text.replace(",", "."))
    total = 0
    for word in text.split():
        if word not in _NUMBER_WORDS:
            return None
        total += _NUMBER_WORDS[word]
    return float(total)


def _values(listed: str) -> tuple[float, ...]:
    parts = re.split(_JOIN, listed)
    numbers = [_number(p) for p in parts if p.strip()]
    return tuple(n for n in numbers if n is not None)


def _clock(text: str) -> float:
    hours, minutes = text.split(":")
    return int(hours) + int(minutes) / 60


def _clauses(folded: str) -> list[tuple[int, int]]:
    """Return (start, end) of the sentence's clauses: split at ';', ':' (not in a time) and ', ' before a new subject."""
    bounds = [0]
    for match in re.finditer(r";|:(?!\d)|,\s(?!\d)", folded):
        bounds.append(match.end())
    bounds.append(len(folded))
    return [(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


_SUFFIX = re.compile(r"['’]\w+")
# Unit words say what kind a value is, not what it is about.
_UNIT_WORDS = frozenset({"is", "saat", "tl", "lira", "ay", "yil", "dakik", "hafta", "yuzde"})


def terms(text: str) -> frozenset[str]:
    """Return the topic stems of `text`: content_terms without numbers, units and suffixes after an apostrophe."""
    return frozenset(
        t
        for t in content_terms(_SUFFIX.sub("", text))
        if t not in _UNIT_WORDS and not t.startswith("gun") and not re.search(r"\d", t)
    )


def sentence_facts(sentence: str) -> list[Fact]:
    """Return the facts stated in one sentence, in order (a number without a unit is no fact)."""
    folded = fold_turkish(sentence)
    clauses = _clauses(folded)

    def clause_terms(pos: int) -> frozenset[str]:
        for a, b in clauses:
            if a <= pos < b:
                return terms(sentence[a:b])
        return frozenset()

    facts: list[Fact] = []
    taken: list[tuple[int, int]] = []
    for m in _CLOCK_RE.finditer(folded):
        value = (_clock(m.group(1)),) + ((_clock(m.group(2)),) if m.group(2) else ())
        facts.append(
            Fact("saat (gün içi)", value, sentence[m.start() : m.end()], clause_terms(m.start()), m.start())
        )
        taken.append(m.span())
    for m in _PERCENT_RE.finditer(folded):
        number = _number(m.group(1))
        if number is not None:
            facts.append(
                Fact("%", (number,), sentence[m.start() : m.end()], clause_terms(m.start()), m.start())
            )
            taken.append(m.span())
    for m in _AMOUNT_RE.finditer(folded):
        if not any(a <= m.start() < b for a, b in taken) and (fact := _amount(m, folded, sentence)):
            facts.append(Fact(fact.kind, fact.value, fact.surface, clause_terms(m.start()), m.start()))
    facts.sort(key=lambda f: f.start)
    return facts


def _amount(m: re.Match[str], folded: str, sentence: str) -> Fact | None:
    """Return the fact of a number (or list or range of numbers) and the unit after it, else None."""
    unit_words = m.group(2)
    kind = next((name for name, pattern in _UNITS if pattern.match(unit_words)), None)
    if kind is None:
        return None
    rest = folded[m.end(1) :]
    after_unit = re.sub(r"^(?:'\w+)?\s+[a-z]+(?:\s+gun\w*)?", "", rest)
    if _SITUATION.match(after_unit) or re.match(r"^(?:'\w+)?\s+gun(?:dur|durur)", rest):
        return None
    values = _values(m.group(1))
    if not values or (kind == "yıl" and max(values) >= 1900):
        return None  # "2025 yılında" names a year, it counts none
    if kind == "tarih":
        if not m.group(1)[:1].isdigit():
            return None  # "bir Mart" is no date
        month = next(i for i, name in enumerate(MONTHS, 1) if unit_words.startswith(name))
        values = tuple(month * 100 + v for v in values)
    unit = unit_words.split()
    end = m.start(2) + len(unit[0]) + (len(unit[1]) + 1 if kind == "iş günü" else 0)
    return Fact(kind, values, sentence[m.start() : end], frozenset(), m.start())


def value_text(fact: Fact) -> str:
    """Return the fact as the source wrote it (its number and unit)."""
    return fact.surface.strip(" ,;")
