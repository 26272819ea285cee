"""Probes made from a tenant's own knowledge, whose right outcome is known: the evidence an auto-answer
policy is chosen on before (and besides) agents' feedback.

- Every FAQ row's and resolved past chat's question, asked the way customers type it (lower case, no
  punctuation, no diacritics), must be answered by that source.
- The same question with its most distinctive word swapped for a word of another entry ("öğrenci
  indirimi" → "kapıda indirimi") asks something the knowledge may not answer: counted as wrong when
  answered at all, which can only make the chosen threshold stricter.
- Questions from outside any tenant's domain (`OUT_OF_DOMAIN`) must not be answered at all.

Probes are chosen deterministically (a seeded sample), so the same knowledge gives the same policy.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz

from retrieval.models import SearchHit
from retrieval.text import fold_turkish, normalise_for_match

from .verify import TenantVocabulary, question_terms, source_key

MAX_SOURCE_PROBES = 300
# Swapping one word changes what a short question asks; a long chat question mostly stays the same.
MAX_SWAP_WORDS = 6
# Two sources whose questions are this alike (rapidfuzz token set ratio) answer the same question.
SAME_QUESTION_RATIO = 90.0
# Everyday questions no tenant's knowledge answers (weather, football, public services, other companies).
# The verifier is trained with them, so none is a rewording of a message in the labelled dev bundles.
OUT_OF_DOMAIN = (
    "hafta sonu antalyada deniz suyu sıcak mı",
    "fenerbahçe maçı saat kaçta",
    "e-devlet şifremi nasıl yenilerim",
    "ehliyet yenileme için hangi belgeler gerekiyor",
    "pasaport başvurusu nasıl yapılır",
    "euro kuru yarın yükselir mi",
    "spotify premium üyeliğimi nasıl dondururum",
    "turkcell faturamı nasıl öderim",
    "ikinci el araba kredisi faizleri ne kadar",
    "karnıyarık tarifi nedir",
    "askerlik yoklaması ne zaman",
    "bursa otobüs saatleri",
    "üniversite tercih sonuçları ne zaman açıklanır",
    "vergi iadesi başvurusu nereden yapılır",
    "kiracı depozitoyu geri almak için ne yapmalı",
    "what is the weather in ankara tomorrow",
    "how do i renew my passport",
    "kedim için hangi aşılar gerekli",
    "instagram hesabım neden askıya alındı",
    "hastane randevusu nasıl alınır",
)


@dataclass(frozen=True)
class Probe:
    """A question and the source that must answer it (None: nothing may answer it automatically)."""

    question: str
    expected: str | None


def customer_form(text: str) -> str:
    """Return a question the way customers often type it: lower case, no punctuation, no diacritics."""
    return fold_turkish(normalise_for_match(text))


def swap_distinctive(
    key: str, replacements: Sequence[str], vocabulary: TenantVocabulary, rng: random.Random
) -> str | None:
    """Return `key` in customer form with its rarest content word replaced by one of `replacements`."""
    words = customer_form(key).split()
    terms = question_terms(key)
    candidates = [w for w in words if w in terms and len(w) >= 4 and not w.isdigit()]
    stems = {t[:5] for t in terms}
    usable = [w for w in replacements if w[:5] not in stems]
    if not candidates or not usable:
        return None
    # The rarest word is what tells this entry from its neighbours ("öğrenci" in "öğrenci indirimi").
    target = max(candidates, key=lambda w: (vocabulary.idf(w), len(w)))
    return " ".join(rng.choice(usable) if w == target else w for w in words)


def answers_probe(probe: Probe, hit: SearchHit) -> bool:
    """Return True when answering `probe` with `hit` is right: its source, or one asking the same question."""
    if probe.expected is None:
        return False
    if hit.ref == probe.expected:
        return True
    key = source_key(hit)
    return bool(key) and fuzz.token_set_ratio(customer_form(key), probe.question) >= SAME_QUESTION_RATIO


def knowledge_probes(
    chunks: Sequence[SearchHit], vocabulary: TenantVocabulary, seed: int = 13
) -> list[Probe]:
    """Return the probes for a tenant whose knowledge holds `chunks` (any order; sampled deterministically).

    Swapped questions are made from FAQ rows only: a canonical question is short, so one word decides
    what it asks; in a long chat question one swapped word rarely changes the question.
    """
    keyed = sorted(
        (c for c in chunks if c.source in ("faq", "chat") and source_key(c)),
        key=lambda c: (c.ref, c.chunk_id),
    )
    rng = random.Random(seed)
    if len(keyed) > MAX_SOURCE_PROBES:
        keyed = rng.sample(keyed, MAX_SOURCE_PROBES)
    # Replacements are words that are rare in this knowledge: names of other things it covers.
    replacements = sorted(
        {
            w
            for c in keyed
            for w in question_terms(source_key(c))
            if len(w) >= 4 and vocabulary.idf(w) >= 0.6 * vocabulary.max_idf
        }
    )
    probes: list[Probe] = []
    for chunk in keyed:
        key = source_key(chunk)
        probes.append(Probe(customer_form(key), chunk.ref))
        short = chunk.source == "faq" and len(question_terms(key)) <= MAX_SWAP_WORDS
        swapped = swap_distinctive(key, replacements, vocabulary, rng) if short else None
        if swapped:
            probes.append(Probe(swapped, None))
    probes += [Probe(q, None) for q in OUT_OF_DOMAIN]
    return probes
