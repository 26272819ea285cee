"""Documents whose content was replaced elsewhere: an older version of a page the tenant uploaded again
under another name, or a page a newer one says almost entirely.

A document is stale when another document of the same tenant is newer (its "son güncelleme" / "last
updated" line, or an `updated` date in its metadata, is later) and either has the same title or says
nearly every sentence of it. Without dates nothing is called stale: which of two copies is the old one
is then a guess.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from retrieval.models import SearchHit
from retrieval.text import fold_turkish

from .facts import MONTHS
from .language import content_terms, match_form
from .sentences import split_sentences

# Share of the older document's sentences the newer one says (nearly word for word) to replace it.
MIN_COVERAGE = 0.8
# A sentence is said again when another sentence holds this share of its content terms.
SENTENCE_COVERED = 0.8
_MIN_SENTENCE_TERMS = 3
_LABEL = r"(?:son\s+guncelleme|guncellenme\s+tarihi|guncelleme\s+tarihi|last\s+updated|updated)\W{0,3}"
# After the label: "3 mart 2025", "2025-03-03" or "03.03.2025" (on folded text: lower case, no diacritics).
_UPDATED = re.compile(
    rf"{_LABEL}(?:(\d{{1,2}})\s+({'|'.join(MONTHS)})\s+(\d{{4}})|(\d{{4}})-(\d{{2}})-(\d{{2}})"
    r"|(\d{1,2})[./](\d{1,2})[./](\d{4}))"
)
_DATE_KEYS = ("updated", "last_updated", "updated_at", "modified", "last_modified")


@dataclass(frozen=True)
class StaleSource:
    """A document whose content a newer document of the same tenant replaced."""

    ref: str
    replaced_by: str
    reason: str
    updated: date
    replaced_on: date
    coverage: float


@dataclass(frozen=True)
class _Document:
    ref: str
    title: str
    updated: date
    sentences: tuple[frozenset[str], ...]


def updated_date(text: str) -> date | None:
    """Return the date of a "son güncelleme: 3 Mart 2025" / "last updated: 2025-03-03" line in `text`, if any."""
    match = _UPDATED.search(fold_turkish(text))
    if not match:
        return None
    g = match.groups()
    try:
        if g[0]:
            return date(int(g[2]), MONTHS.index(g[1]) + 1, int(g[0]))
        if g[3]:
            return date(int(g[3]), int(g[4]), int(g[5]))
        return date(int(g[8]), int(g[7]), int(g[6]))
    except ValueError:
        return None


def _metadata_date(hits: Sequence[SearchHit]) -> date | None:
    for hit in hits:
        for key in _DATE_KEYS:
            value = str(hit.metadata.get(key) or "")
            if re.match(r"\d{4}-\d{2}-\d{2}", value):
                try:
                    return date.fromisoformat(value[:10])
                except ValueError:
                    continue
    return None


def _documents(chunks: Sequence[SearchHit]) -> list[_Document]:
    """Return the tenant's dated documents with their sentences; none when fewer than two have a date
    (nothing can then be stale, and a large tenant's undated pages are not split at all)."""
    by_ref: dict[str, list[SearchHit]] = {}
    for hit in chunks:
        if hit.source == "doc":
            by_ref.setdefault(hit.ref, []).append(hit)
    dated: list[tuple[str, list[SearchHit], date]] = []
    for ref, hits in sorted(by_ref.items()):
        hits.sort(key=lambda h: h.chunk_id)
        updated = _metadata_date(hits) or next((d for h in hits if (d := updated_date(h.text))), None)
        if updated is not None:
            dated.append((ref, hits, updated))
    if len(dated) < 2:
        return []
    documents = []
    for ref, hits, updated in dated:
        text = "\n".join(h.text for h in hits)
        sentences = []
        for line in text.splitlines():
            if updated_date(line):
                continue
            for sentence in split_sentences(line):
                words = frozenset(content_terms(sentence))
                if len(words) >= _MIN_SENTENCE_TERMS and words not in sentences:
                    sentences.append(words)
        documents.append(_Document(ref, hits[0].title or ref, updated, tuple(sentences)))
    return documents


def _coverage(old: _Document, new: _Document) -> float:
    """Return the share of `old`'s sentences that a sentence of `new` says (SENTENCE_COVERED of its terms)."""
    if not old.sentences:
        return 0.0
    covered = sum(
        1 for s in old.sentences if any(len(s & t) >= SENTENCE_COVERED * len(s) for t in new.sentences)
    )
    return covered / len(old.sentences)


def stale_sources(chunks: Sequence[SearchHit]) -> list[StaleSource]:
    """Return the tenant's documents that a newer document replaced, each with the newer one's ref.

    `chunks` is the tenant's knowledge as `KnowledgeIndex.chunks` returns it; only documents are read.
    """
    documents = _documents(chunks)
    stale: dict[str, StaleSource] = {}
    for old in documents:
        for new in documents:
            if new is old or new.updated <= old.updated:
                continue
            coverage = _coverage(old, new)
            same_title = match_form(old.title) == match_form(new.title)
            if not same_title and coverage < MIN_COVERAGE:
                continue
            why = "aynı başlık" if same_title else f"içeriğinin %{round(coverage * 100)}'i"
            reason = f"{old.ref} ({old.updated.isoformat()}) yerine daha yeni {new.ref} ({new.updated.isoformat()}): {why}"
            found = StaleSource(old.ref, new.ref, reason, old.updated, new.updated, round(coverage, 3))
            if old.ref not in stale or stale[old.ref].replaced_on < new.updated:
                stale[old.ref] = found
    return sorted(stale.values(), key=lambda s: s.ref)
