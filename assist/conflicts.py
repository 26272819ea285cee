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
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import product

import numpy as np

from retrieval.embedders import Embedder
from retrieval.models import SearchHit

from .facts import Fact, sentence_facts, terms, value_text
from .sentences import split_sentences
from .verify import TenantVocabulary, source_answer, source_key

# Two values are about the same thing when all of these hold: the words of their sentences and topics
# are this similar (0..1, see _similarity), ...
MIN_SIMILARITY = 0.2
# ...the clause around one value is this much contained in the other's words (IDF-weighted share), ...
MIN_CLAUSE_CONTAINED = 0.85
# ...the two clauses share this much IDF, as a share of an unseen word's (two words rare in the tenant's
# knowledge, not one common one), ...
MIN_SHARED_CLAUSE_IDF = 0.9
# ...and, with an embedder, from this cosine of their sentences (topic included).
MIN_COSINE = 0.55
# A source that states the other side's value this close to the same words agrees with it.
AGREE_SIMILARITY = 0.25
# Weight of a word by where it stands: in the value's clause, elsewhere in its sentence, in the topic.
_CLAUSE, _SENTENCE, _TOPIC = 1.0, 0.5, 0.5
_UPDATED_LINE = re.compile(r"son g[uü]ncelle|g[uü]ncellenme tarihi|last updated", re.IGNORECASE)
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
            if _UPDATED_LINE.search(line):
                continue
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


def _cosines(statements: Sequence[_Statement], embedder: Embedder | None) -> np.ndarray | None:
    if embedder is None or not statements:
        return None
    vectors = embedder.embed_documents([f"{s.topic}. {s.text}" for s in statements])
    return np.asarray(vectors @ vectors.T, dtype=float)


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
    cosines = _cosines(statements, embedder)
    by_ref: dict[str, list[tuple[_Statement, Fact]]] = {}
    index_of = {id(s): i for i, s in enumerate(statements)}
    for statement in statements:
        for fact in statement.facts:
            by_ref.setdefault(statement.ref, []).append((statement, fact))
    best: dict[tuple[str, str, str, tuple[float, ...], tuple[float, ...]], Conflict] = {}
    refs = sorted(by_ref)
    for i, ref_a in enumerate(refs):
        for ref_b in refs[i + 1 :]:
            for (sa, fa), (sb, fb) in product(by_ref[ref_a], by_ref[ref_b]):
                if fa.kind != fb.kind or not _disjoint(fa, fb):
                    continue
                cosine = float(cosines[index_of[id(sa)], index_of[id(sb)]]) if cosines is not None else None
                conflict = _pair_conflict(sa, fa, sb, fb, cosine, by_ref, vocabulary)
                key = (ref_a, ref_b, fa.kind, fa.value, fb.value)
                if conflict and (key not in best or best[key].score < conflict.score):
                    best[key] = conflict
    return sorted(best.values(), key=lambda c: (-c.score, c.refs))


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
    if cosine is not None and cosine < MIN_COSINE:
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


def conflicted_refs(conflicts: Iterable[Conflict]) -> frozenset[str]:
    """Return the refs of every source with an open conflict (neither side may answer on its own)."""
    return frozenset(ref for conflict in conflicts for ref in conflict.refs)
