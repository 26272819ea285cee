"""Where a tenant's sources disagree: the FAQ says 14 days, the policy page 30, an agent told a customer 7.

`find_conflicts` reads every chunk of one tenant, splits what each source says into sentences, takes the
values each sentence states (`assist.facts`: days, business days, hours, TL, %, instalments, months,
years, times of day, dates) with the words around each, and pairs values of the same kind from two
sources whose words say they are about the same thing (the shared words weighed by how rare they are in
this tenant's knowledge, and, with an embedder, how close the two sentences mean). A pair is a conflict
only when the values differ and neither source also states the other's value about that thing: a
source that says "14 gün" and, about a customer's own order, "20 gün geçtiği için" agrees with a page
that says 14. Precision comes first: a false conflict costs the tenant time.

`conflicted_refs` gives the sources with an open conflict, which must not answer customers on their own.
Stale documents (`stale_sources`, in `assist.stale`) are importable from here too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from retrieval.embedders import Embedder
from retrieval.models import SearchHit

from .facts import Fact, sentence_facts, terms, value_text
from .language import match_form
from .sentences import split_sentences
from .stale import StaleSource, stale_sources, updated_date
from .verify import TenantVocabulary, question_terms, ready_answer, source_answer, source_key

__all__ = [
    "YES_NO",
    "Conflict",
    "Passage",
    "StaleSource",
    "conflicted_refs",
    "find_conflicts",
    "stale_sources",
]

# Two values are about the same thing when all of these hold: the words of their sentences and topics
# are this similar (0..1, see _similarity), ...
MIN_SIMILARITY = 0.2
# ...the clause around one value is this much contained in the other's words (IDF-weighted share), ...
MIN_CLAUSE_CONTAINED = 0.65
# ...the two clauses share this much IDF, as a share of an unseen word's (two words rare in the tenant's
# knowledge, not one common one), ...
MIN_SHARED_CLAUSE_IDF = 0.9
# ...and, with an embedder, the sentences (topic included) are this close in meaning, unless their words
# alone are this similar.
MIN_COSINE = 0.45
SURE_SIMILARITY = 0.4
# Two yes/no answers answer the same question when the questions' words are this similar (and, with an
# embedder, the questions this close in meaning).
MIN_QUESTION_SIMILARITY = 0.5
MIN_QUESTION_COSINE = 0.75
# A source that states the other side's value this close to the same words agrees with it.
AGREE_SIMILARITY = 0.25
# Weight of a word by where it stands: in the value's clause, elsewhere in its sentence, in the topic.
_CLAUSE, _SENTENCE, _TOPIC = 1.0, 0.5, 0.5
_YES = re.compile(r"^(?:evet|tabii|tabi|elbette)\b")
_NO = re.compile(r"^(?:hayir|maalesef)\b")
YES_NO = "evet/hayır"
_KIND_NAMES = {
    "gün": "gün sayısı",
    "iş günü": "iş günü sayısı",
    "saat": "saat sayısı",
    "dakika": "dakika",
    "hafta": "hafta",
    "ay": "ay sayısı",
    "yıl": "yıl sayısı",
    "TL": "tutar (TL)",
    "%": "oran (%)",
    "taksit": "taksit sayısı",
    "saat (gün içi)": "saat",
    "tarih": "tarih",
}


@dataclass(frozen=True)
class Passage:
    """One side of a conflict: the source, the sentence holding the value, and the value as written."""

    ref: str
    source: str
    text: str
    topic: str
    value: str


@dataclass(frozen=True)
class Conflict:
    """Two sources of one tenant that state a different value of the same kind about the same thing."""

    kind: str
    first: Passage
    second: Passage
    reason: str
    score: float

    @property
    def refs(self) -> tuple[str, str]:
        return (self.first.ref, self.second.ref)


@dataclass(frozen=True)
class _Statement:
    ref: str
    source: str
    text: str
    topic: str
    weights: dict[str, float]
    facts: tuple[Fact, ...]


def _doc_lines(text: str, section: str) -> Iterable[tuple[str, str]]:
    """Yield (line, heading) for a document chunk: a short line without a full stop is the heading of what follows."""
    heading = section.split(">")[-1].strip()
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if len(line.split()) <= 8 and not re.search(r"[.!?:;|]$|\|", line) and not re.search(r"\d", line):
            heading = line
            continue
        yield line, heading


def _topic(hit: SearchHit) -> str:
    """Return what a keyed source answers; for a past chat the customer's own last words, not the whole thread."""
    if hit.source == "chat" and hit.metadata.get("asked"):
        return str(hit.metadata["asked"])
    return source_key(hit)


def _statements(chunks: Sequence[SearchHit]) -> list[_Statement]:
    seen: set[tuple[str, str]] = set()
    out: list[_Statement] = []
    for hit in chunks:
        if hit.source == "doc":
            lines = list(_doc_lines(hit.text, hit.section))
        else:
            lines = [(line, _topic(hit)) for line in source_answer(hit).splitlines()]
        for line, topic in lines:
            if updated_date(line):
                continue  # the page's own date is no fact about the shop
            for sentence in split_sentences(line.replace(" | ", ": ")):
                if (hit.ref, sentence) in seen:
                    continue
                seen.add((hit.ref, sentence))
                facts = tuple(sentence_facts(sentence))
                if not facts:
                    continue
                weights = dict.fromkeys(terms(topic), _TOPIC)
                weights.update(dict.fromkeys(terms(sentence), _SENTENCE))
                out.append(_Statement(hit.ref, hit.source, sentence, topic, weights, facts))
    return out


def _fact_weights(statement: _Statement, fact: Fact) -> dict[str, float]:
    weights = dict(statement.weights)
    weights.update(dict.fromkeys(fact.clause, _CLAUSE))
    return weights


def _similarity(a: dict[str, float], b: dict[str, float], vocabulary: TenantVocabulary) -> float:
    """Return the IDF-weighted Jaccard similarity of two weighted term sets."""
    shared = sum(min(a[t], b[t]) * vocabulary.idf(t) for t in a.keys() & b.keys())
    union = sum(max(a.get(t, 0.0), b.get(t, 0.0)) * vocabulary.idf(t) for t in a.keys() | b.keys())
    return shared / union if union else 0.0


def _same_thing(
    a: Fact, wa: dict[str, float], b: Fact, wb: dict[str, float], vocabulary: TenantVocabulary
) -> bool:
    """Return True when the clauses of two values share rare words and one clause is all but contained in the other side."""
    shared = sum(vocabulary.idf(t) for t in a.clause & b.clause)
    if shared < MIN_SHARED_CLAUSE_IDF * vocabulary.max_idf:
        return False

    def contained(clause: frozenset[str], other: dict[str, float]) -> float:
        total = sum(vocabulary.idf(t) for t in clause)
        return sum(vocabulary.idf(t) for t in clause if t in other) / total if total else 0.0

    return max(contained(a.clause, wb), contained(b.clause, wa)) >= MIN_CLAUSE_CONTAINED


def _disjoint(a: Fact, b: Fact) -> bool:
    """Return True when no value of one is a value of the other ("6 ve 9 taksit" holds "6 taksit")."""
    return not set(a.value) & set(b.value)


def _vectors(statements: Sequence[_Statement], embedder: Embedder | None) -> np.ndarray | None:
    if embedder is None or not statements:
        return None
    return np.asarray(embedder.embed_documents([f"{s.topic}. {s.text}" for s in statements]), dtype=float)


def _agrees(
    value: tuple[float, ...],
    kind: str,
    weights: dict[str, float],
    others: Sequence[tuple[_Statement, Fact]],
    vocabulary: TenantVocabulary,
) -> bool:
    """Return True when a source states `value` (of `kind`) about nearly the same words: it agrees."""
    return any(
        f.kind == kind
        and f.value == value
        and _similarity(weights, _fact_weights(s, f), vocabulary) >= AGREE_SIMILARITY
        for s, f in others
    )


def find_conflicts(
    chunks: Sequence[SearchHit],
    *,
    embedder: Embedder | None = None,
    vocabulary: TenantVocabulary | None = None,
) -> list[Conflict]:
    """Return the conflicts among one tenant's chunks, most certain first (one per pair of sources and values).

    `chunks` is the tenant's knowledge as `KnowledgeIndex.chunks` returns it; `vocabulary` defaults to
    one built from them; `embedder` adds the sentences' meaning to their words (stricter, not looser).
    """
    if not chunks:
        return []
    vocabulary = vocabulary or TenantVocabulary(chunks)
    statements = _statements(chunks)
    vectors = _vectors(statements, embedder)
    facts = [(i, s, f) for i, s in enumerate(statements) for f in s.facts]
    by_ref: dict[str, list[tuple[_Statement, Fact]]] = {}
    # Only values of one kind whose clauses share a word can be about the same thing: index them so.
    postings: dict[tuple[str, str], list[int]] = {}
    for n, (_, statement, fact) in enumerate(facts):
        by_ref.setdefault(statement.ref, []).append((statement, fact))
        for term in fact.clause:
            postings.setdefault((fact.kind, term), []).append(n)
    best: dict[tuple[str, str, str, tuple[float, ...], tuple[float, ...]], Conflict] = {}
    enough = MIN_SHARED_CLAUSE_IDF * vocabulary.max_idf
    for n, (i, sa, fa) in enumerate(facts):
        shared: dict[int, float] = {}
        for term in fa.clause:
            idf = vocabulary.idf(term)
            for m in postings[(fa.kind, term)]:
                if m > n:
                    shared[m] = shared.get(m, 0.0) + idf
        for m in sorted(m for m, idf in shared.items() if idf >= enough):
            j, sb, fb = facts[m]
            if sa.ref == sb.ref or not _disjoint(fa, fb):
                continue
            cosine = float(vectors[i] @ vectors[j]) if vectors is not None else None
            # Each pair once, the smaller ref first, so that the same two values found twice are one conflict.
            first, second = ((sa, fa), (sb, fb)) if sa.ref < sb.ref else ((sb, fb), (sa, fa))
            conflict = _pair_conflict(*first, *second, cosine, by_ref, vocabulary)
            key = (first[0].ref, second[0].ref, first[1].kind, first[1].value, second[1].value)
            if conflict and (key not in best or best[key].score < conflict.score):
                best[key] = conflict
    conflicts = [*best.values(), *_yes_no_conflicts(chunks, vocabulary, embedder)]
    return sorted(conflicts, key=lambda c: (-c.score, c.refs))


def _pair_conflict(
    sa: _Statement,
    fa: Fact,
    sb: _Statement,
    fb: Fact,
    cosine: float | None,
    by_ref: dict[str, list[tuple[_Statement, Fact]]],
    vocabulary: TenantVocabulary,
) -> Conflict | None:
    """Return the conflict between two values of one kind from two sources, or None when they are not one."""
    wa, wb = _fact_weights(sa, fa), _fact_weights(sb, fb)
    score = _similarity(wa, wb, vocabulary)
    if score < MIN_SIMILARITY or not _same_thing(fa, wa, fb, wb, vocabulary):
        return None
    if cosine is not None and cosine < MIN_COSINE and score < SURE_SIMILARITY:
        return None
    if _agrees(fa.value, fa.kind, wa, by_ref[sb.ref], vocabulary) or _agrees(
        fb.value, fb.kind, wb, by_ref[sa.ref], vocabulary
    ):
        return None
    return _conflict(sa, fa, sb, fb, score if cosine is None else (score + cosine) / 2)


def _passage(statement: _Statement, fact: Fact) -> Passage:
    return Passage(statement.ref, statement.source, statement.text, statement.topic, value_text(fact))


def _conflict(sa: _Statement, fa: Fact, sb: _Statement, fb: Fact, score: float) -> Conflict:
    first, second = _passage(sa, fa), _passage(sb, fb)
    about = ", ".join(sorted(fa.clause & fb.clause)[:4])
    reason = (
        f"{_KIND_NAMES.get(fa.kind, fa.kind)} farklı: {first.ref} '{first.value}', {second.ref} '{second.value}'"
        f" (ortak bağlam: {about})"
    )
    return Conflict(fa.kind, first, second, reason, round(score, 3))


def _answers_yes(hit: SearchHit) -> bool | None:
    form = match_form(ready_answer(hit))
    return True if _YES.match(form) else False if _NO.match(form) else None


def _yes_no_conflicts(
    chunks: Sequence[SearchHit], vocabulary: TenantVocabulary, embedder: Embedder | None
) -> list[Conflict]:
    """Return the pairs of FAQ rows and past replies that answer the same question, one "evet", one "hayır"."""
    keyed: dict[tuple[str, str], tuple[SearchHit, bool]] = {}
    for hit in chunks:
        if hit.source in ("faq", "chat") and (yes := _answers_yes(hit)) is not None:
            keyed.setdefault((hit.ref, _topic(hit)), (hit, yes))
    answers = list(keyed.values())
    questions = [dict.fromkeys(question_terms(_topic(h)), 1.0) for h, _ in answers]
    vectors = embedder.embed_documents([_topic(h) for h, _ in answers]) if embedder and answers else None
    conflicts = []
    for i, (a, yes_a) in enumerate(answers):
        for j in range(i + 1, len(answers)):
            b, yes_b = answers[j]
            if a.ref == b.ref or yes_a == yes_b:
                continue
            score = _similarity(questions[i], questions[j], vocabulary)
            if score < MIN_QUESTION_SIMILARITY:
                continue
            if vectors is not None and float(vectors[i] @ vectors[j]) < MIN_QUESTION_COSINE:
                continue
            first, second = (_yes_no_passage(a, yes_a), _yes_no_passage(b, yes_b))
            reason = f"aynı soruya farklı yanıt: {first.ref} '{first.value}', {second.ref} '{second.value}'"
            conflicts.append(Conflict(YES_NO, first, second, reason, round(score, 3)))
    return conflicts


def _yes_no_passage(hit: SearchHit, yes: bool) -> Passage:
    sentences = split_sentences(ready_answer(hit))
    return Passage(hit.ref, hit.source, " ".join(sentences[:2]), _topic(hit), "evet" if yes else "hayır")


def conflicted_refs(conflicts: Iterable[Conflict]) -> frozenset[str]:
    """Return the refs of every source with an open conflict (neither side may answer on its own)."""
    return frozenset(ref for conflict in conflicts for ref in conflict.refs)
