"""Does this source answer *this* question? Evidence features of a retrieved chunk, and the learned,
calibrated probability that answering with it is right.

Sharing words is not answering: "öğretmen indirimi var mı" shares "indirim" with the student-discount
row, "ev kredisi" shares "kredi" with the car loan. So besides how well the chunk was retrieved, the
features compare the customer's question with the *source's own question* (an FAQ row's question, a past
chat's customer question, a quick reply's title), count the question's distinguishing terms the source
lacks (and whether another retrieved source has them, or none does: an uncovered question), and check
that a question asking for an amount or a duration gets an answer that holds a number.

The model is a logistic regression over these features, trained by `eval.verifier_training` (a
reproducible command, `invekto-knowledge eval train-verifier`) from labelled tenant bundles plus hard
negatives made from a tenant's own knowledge; its coefficients ship as JSON beside this module
(`data/answer_verifier.json`), so scoring needs numpy only.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from rapidfuzz import fuzz, process

from retrieval.models import SearchHit
from retrieval.text import REDACTION_PLACEHOLDER, strip_placeholders

from .language import FUNCTION_WORDS, PREFIX_LEN, match_form
from .sentences import analyse

MODEL_FILE = "answer_verifier.json"
# Two long words this similar (rapidfuzz ratio) are one word with a typo.
FUZZY_RATIO = 85.0
_DIGITS = re.compile(r"\d+")
# Questions that ask for an amount, a duration or a date want a number in the answer.
_WANTS_NUMBER = re.compile(
    r"\b(?:kac|kacta|kacinci|ne kadar|ne zaman|hangi (?:gun|tarih|saat|ay)|yuzde|how many|how much|how long|when)\b"
)
_NUMBER = re.compile(
    r"\d|\b(?:bir|iki|uc|dort|bes|alti|yedi|sekiz|dokuz|on|yirmi|otuz|kirk|elli|yuz|bin|ayni gun|ertesi)\b"
)
# What a question asks for, on the matched (folded) form, first match wins: a reason, a procedure, a
# number (amount, duration, date), a place, or a yes/no. A source whose own question asks for another kind
# answers another question ("kupon ile puan aynı siparişte kullanılır mı" is not "kupon kullandım puanım az
# yüklendi neden").
_KINDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("why", re.compile(r"\b(?:neden|niye|nicin|ne icin|sebebi|why)\b")),
    ("how", re.compile(r"\b(?:nasil|napiyim|napcam|ne yapmam|ne yapmaliyim|ne yapayim|how)\b")),
    ("number", _WANTS_NUMBER),
    ("where", re.compile(r"\b(?:nere\w*|nerde\w*|where)\b")),
    (
        "yes_no",
        re.compile(
            r"\b(?:mi|mu)(?:dir|dur|yim|yum|yiz|yuz|sin|sun|siniz|sunuz|ydi|ydu|ymis|ymus)?\b"
            r"|\b(?:can i|is there|do you|does|are you)\b"
            r"|\w(?:misiniz|musunuz|miyim|muyum|miyiz|muyuz|misin|musun)\b"
        ),
    ),
)

FEATURES: tuple[str, ...] = (
    "cosine",
    "relative_score",
    "rank",
    "margin",
    "query_in_key",
    "key_in_query",
    "query_in_chunk",
    "query_in_best_sentence",
    "missing_here_found_elsewhere",
    "unseen_anywhere",
    "digits_missing",
    "wants_number_no_number",
    "n_query_terms",
    "is_faq",
    "is_chat",
    "is_quick_reply",
    "is_doc",
    "keyed_x_key_in_query",
    "chat_count",
    "idf_missing_share",
    "idf_unseen_share",
    "idf_missing_max",
    "idf_key_missing_share",
    "kind_differs",
)


def question_kind(form: str) -> str | None:
    """Return what a question (in match form) asks for: why, how, number, where, yes_no; None if unclear."""
    return next((kind for kind, pattern in _KINDS if pattern.search(form)), None)


def has_placeholder(text: str) -> bool:
    """Return True when `text` holds a redaction placeholder, which must never reach a customer."""
    return REDACTION_PLACEHOLDER.search(text) is not None


def question_terms(text: str) -> frozenset[str]:
    """Return the content words of a question or source text (match form, placeholders left out).

    Whole words, not prefixes: a typo is a word one letter away ("kilitlndi"), a different question
    often differs by a word that shares its first letters ("öğretmen" / "öğrenci").
    """
    form = match_form(strip_placeholders(text))
    return frozenset(w for w in form.split() if w not in FUNCTION_WORDS and (len(w) > 1 or w.isdigit()))


@dataclass(frozen=True)
class _SoftIndex:
    """A word set read for `soft_in`: its 5-letter stems, and its long words by first letter."""

    stems: frozenset[str]
    long_by_initial: dict[str, tuple[str, ...]]


@lru_cache(maxsize=16384)
def _soft_index(words: frozenset[str]) -> _SoftIndex:
    long_by_initial: dict[str, list[str]] = {}
    for w in words:
        if len(w) >= 6:
            long_by_initial.setdefault(w[0], []).append(w)
    return _SoftIndex(
        frozenset(w[:PREFIX_LEN] for w in words if len(w) >= PREFIX_LEN),
        {initial: tuple(group) for initial, group in long_by_initial.items()},
    )


def soft_in(word: str, words: frozenset[str]) -> bool:
    """Return True when `word`, another form of its stem, or a one-letter typo of it is in `words`.

    The same stem: both words have at least 5 letters and share the first 5 ("kargom", "kargoya"). A typo:
    both have at least 6 letters, the same first letter, and a similarity ratio of at least FUZZY_RATIO.
    """
    if word in words:
        return True
    index = _soft_index(words)
    if len(word) >= PREFIX_LEN and word[:PREFIX_LEN] in index.stems:
        return True
    candidates = index.long_by_initial.get(word[:1], ()) if len(word) >= 6 else ()
    return bool(candidates) and (
        process.extractOne(word, candidates, scorer=fuzz.ratio, score_cutoff=FUZZY_RATIO) is not None
    )


def _share(terms: frozenset[str], other: frozenset[str]) -> float:
    if not terms:
        return 0.0
    return sum(1 for t in terms if soft_in(t, other)) / len(terms)


def source_key(hit: SearchHit) -> str:
    """Return the text that says what a source answers: its question, or a quick reply's title ("" for docs)."""
    if hit.source in ("faq", "chat"):
        return str(hit.metadata.get("question") or "")
    if hit.source == "quick_reply":
        return str(hit.metadata.get("title") or hit.title or "")
    return ""


# Sources whose chunks carry a ready answer in their metadata, and under which key.
_READY_ANSWER = {"faq": "answer", "chat": "answer", "quick_reply": "text"}


def ready_answer(hit: SearchHit) -> str:
    """Return the FAQ answer, past agent reply or quick reply text a chunk carries ("" for documents)."""
    key = _READY_ANSWER.get(hit.source)
    return str(hit.metadata.get(key) or "").strip() if key else ""


def source_answer(hit: SearchHit) -> str:
    """Return what a source would say to the customer: its ready answer, else its text."""
    return ready_answer(hit) or hit.text


@lru_cache(maxsize=4096)
def _text_words(text: str) -> frozenset[str]:
    return question_terms(text)


def _chunk_terms(hit: SearchHit) -> frozenset[str]:
    return _text_words(hit.text) | _text_words(hit.title)


def _best_sentence_share(query: frozenset[str], hit: SearchHit) -> float:
    sentences = [_text_words(s.text) for s in analyse(hit.text).sentences]
    if not query or not sentences:
        return 0.0
    # A sentence and its successor: answers often follow the sentence that repeats the question.
    windows = [
        s | (sentences[i + 1] if i + 1 < len(sentences) else frozenset()) for i, s in enumerate(sentences)
    ]
    return max(_share(query, w) for w in windows)


def missing_words(question: str, hit: SearchHit) -> tuple[str, ...]:
    """Return the question's content words (match form) that the source does not contain, in question order."""
    terms = _chunk_terms(hit)
    words = match_form(strip_placeholders(question)).split()
    query = question_terms(question)
    return tuple(dict.fromkeys(w for w in words if w in query and not soft_in(w, terms)))


class TenantVocabulary:
    """How rare each word stem is in one tenant's knowledge: rare words are what tells questions apart.

    Built from the tenant's chunks (document frequency per 5-letter stem); a word whose stem the
    knowledge never uses, and that is no typo of a word it uses, is unseen ("netflix", "öğretmen" in
    a shop that only knows "öğrenci"): the question is about something the knowledge does not cover.
    """

    def __init__(self, chunks: Sequence[SearchHit]) -> None:
        df: dict[str, int] = {}
        for chunk in chunks:
            for stem in {w[:PREFIX_LEN] for w in _chunk_terms(chunk) | question_terms(source_key(chunk))}:
                df[stem] = df.get(stem, 0) + 1
        self.n_docs = max(1, len(chunks))
        self._df = df
        self._words_by_letter: dict[str, list[str]] = {}
        for stem in df:
            self._words_by_letter.setdefault(stem[:1], []).append(stem)
        self.max_idf = math.log(self.n_docs + 1) + 1.0

    @lru_cache(maxsize=16384)  # noqa: B019 - one vocabulary lives as long as its tenant's policy
    def idf(self, word: str) -> float:
        """Return the word's inverse document frequency (an unseen word gets the maximum)."""
        df = self._df.get(word[:PREFIX_LEN])
        if df is None and len(word) >= 6:
            near = [
                s for s in self._words_by_letter.get(word[:1], []) if fuzz.ratio(word[:PREFIX_LEN], s) >= 80
            ]
            df = max((self._df[s] for s in near), default=None) if near and len(word) >= 7 else None
        return self.max_idf if df is None else math.log((self.n_docs + 1) / (df + 1)) + 1.0

    def seen(self, word: str) -> bool:
        """Return True when the knowledge uses the word's stem (or a near spelling of a long word)."""
        return self.idf(word) < self.max_idf


def _idf_share(words: Sequence[str], vocabulary: TenantVocabulary | None, total: float) -> float:
    if vocabulary is None or total <= 0:
        return 0.0
    return sum(vocabulary.idf(w) for w in words) / total


def candidate_features(
    question: str, hits: Sequence[SearchHit], vocabulary: TenantVocabulary | None = None
) -> list[dict[str, float]]:
    """Return the evidence features of each hit for `question` (the search query built from the chat).

    `vocabulary` (the tenant's) weighs words by rarity; without one those features are 0.
    """
    query = question_terms(question)
    form = match_form(strip_placeholders(question))
    digits = set(_DIGITS.findall(form))
    wants_number = _WANTS_NUMBER.search(form) is not None
    kind = question_kind(form)
    chunk_terms = [_chunk_terms(h) for h in hits]
    everywhere = frozenset().union(*chunk_terms) if chunk_terms else frozenset()
    unseen = sum(1 for t in query if not soft_in(t, everywhere)) / len(query) if query else 1.0
    top = hits[0].score if hits else 0.0
    idf_total = sum(vocabulary.idf(w) for w in query) if vocabulary else 0.0
    unseen_words = [w for w in query if vocabulary and not vocabulary.seen(w)]
    rows = []
    for rank, (hit, terms) in enumerate(zip(hits, chunk_terms, strict=True)):
        key = source_key(hit)
        key_terms = question_terms(key) if key else frozenset()
        keyed = 1.0 if key_terms else 0.0
        missing = [t for t in query if not soft_in(t, terms)]
        others = (
            frozenset().union(*(c for j, c in enumerate(chunk_terms) if j != rank))
            if len(hits) > 1
            else frozenset()
        )
        found_elsewhere = sum(1 for t in missing if soft_in(t, others)) / len(query) if query else 0.0
        answer_form = match_form(source_answer(hit))
        margin = (hit.score - hits[1].score) if rank == 0 and len(hits) > 1 else (hit.score - top)
        key_in_query = _share(key_terms, query) if keyed else 0.0
        key_kind = question_kind(match_form(key)) if keyed and hit.source != "quick_reply" else None
        rows.append(
            {
                "cosine": max(0.0, hit.dense_score or 0.0),
                "relative_score": hit.score / top if top > 0 else 0.0,
                "rank": float(rank),
                "margin": margin,
                "query_in_key": _share(query, key_terms) if keyed else _share(query, terms),
                "key_in_query": key_in_query,
                "query_in_chunk": _share(query, terms),
                "query_in_best_sentence": _best_sentence_share(query, hit),
                "missing_here_found_elsewhere": found_elsewhere,
                "unseen_anywhere": unseen,
                "digits_missing": 1.0 if digits - set(_DIGITS.findall(match_form(hit.text))) else 0.0,
                "wants_number_no_number": 1.0 if wants_number and not _NUMBER.search(answer_form) else 0.0,
                "n_query_terms": float(min(len(query), 12)),
                "is_faq": 1.0 if hit.source == "faq" else 0.0,
                "is_chat": 1.0 if hit.source == "chat" else 0.0,
                "is_quick_reply": 1.0 if hit.source == "quick_reply" else 0.0,
                "is_doc": 1.0 if hit.source not in ("faq", "chat", "quick_reply") else 0.0,
                "keyed_x_key_in_query": keyed * key_in_query,
                "chat_count": math.log1p(float(hit.metadata.get("count") or 1))
                if hit.source == "chat"
                else 0.0,
                "idf_missing_share": _idf_share(missing, vocabulary, idf_total),
                "idf_unseen_share": _idf_share(unseen_words, vocabulary, idf_total),
                "idf_missing_max": max((vocabulary.idf(w) for w in missing), default=0.0) / vocabulary.max_idf
                if vocabulary
                else 0.0,
                "idf_key_missing_share": _idf_share(
                    [t for t in query if keyed and not soft_in(t, key_terms)], vocabulary, idf_total
                ),
                "kind_differs": 1.0 if kind and key_kind and kind != key_kind else 0.0,
            }
        )
    return rows


@dataclass(frozen=True)
class VerifierModel:
    """A standardised logistic regression over FEATURES, then Platt scaling: p(answer is right)."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    trained_on: dict[str, object]

    def probabilities(self, rows: Sequence[dict[str, float]]) -> list[float]:
        """Return the probability for each feature row."""
        if not rows:
            return []
        x = np.array([[row[f] for f in self.features] for row in rows], dtype=float)
        z = ((x - self.mean) / self.scale) @ self.coef + self.intercept
        return [round(float(p), 4) for p in 1.0 / (1.0 + np.exp(-z))]

    def to_json(self) -> dict[str, object]:
        return {
            "features": list(self.features),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
            "trained_on": self.trained_on,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VerifierModel:
        features = tuple(str(f) for f in data["features"])
        unknown = set(features) - set(FEATURES)
        if unknown:
            raise ValueError(f"verifier model uses unknown features {sorted(unknown)}")
        return cls(
            features=features,
            mean=np.array(data["mean"], dtype=float),
            scale=np.array(data["scale"], dtype=float),
            coef=np.array(data["coef"], dtype=float),
            intercept=float(data["intercept"]),
            trained_on=dict(data.get("trained_on") or {}),
        )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


@cache
def default_model() -> VerifierModel:
    """Return the verifier model that ships with the package."""
    data = resources.files("assist").joinpath("data", MODEL_FILE).read_text(encoding="utf-8")
    return VerifierModel.from_json(json.loads(data))
