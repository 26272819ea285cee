"""Turkish BM25 sparse vectors, weighted by Qdrant's own `Bm25` so the edge and server backends agree.

Text is read the same way for documents and queries: redaction placeholders dropped, Turkish lower-casing
(İ→i, I→ı), spoken and clipped forms rewritten to written ones (retrieval/informal.py), diacritics put
back into words typed without them (retrieval/deasciify.py), stop-words and question particles dropped. Each word then gives four token streams in one sparse vector:

- its Snowball Turkish stem (as written, diacritics kept); a present-tense verb gives its root
  ("yazıyorum" → "yaz", "yapıyorsunuz" → "yap"), so it meets the verb's other forms ("yazıp"),
- its first 5 characters as written ("p" stream), a consonant that Turkish softens before a vowel
  hardened back at the cut ("takibini" → "takip", "hesabım" → "hesap", "yemeği" → "yemek"),
- the same prefix with diacritics folded ("f" stream: "ucret" meets "ücret"),
- the character trigrams of the folded word's first 6 letters at half weight ("g" stream: "zman" still
  meets "zaman").

An exact spelling matches in more streams than a folded or misspelt one, so clean text keeps what exact
forms give. Prefix truncation is a strong stemmer for an agglutinative language (Can et al., 2008,
"Information retrieval on Turkish texts"). docs/fusion.md has the measurements behind each step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from qdrant_edge import Bm25, Bm25Config, DisabledStemmer, StopwordsSet, TokenizerType

from .deasciify import restore_diacritics
from .informal import PARTICLE, written_forms
from .text import fold_lowered, strip_placeholders, turkish_lower

_WORD = re.compile(r"\w+", re.UNICODE)
# A present-tense verb ("yazıyorum", "geliyor", "ödüyorsunuz"): its root, the linking vowel left out.
_PRESENT = re.compile(r"(?P<root>\w{2,}?)[ıiuü]yor\w*")
# Consonants Turkish softens between vowels ("kitap" → "kitabı", "renk" → "rengi"), and their hard forms.
_HARDENED = {"b": "p", "c": "ç", "d": "t", "g": "k", "ğ": "k"}
_VOWELS = frozenset("aeıioöuü")
_APOSTROPHE = re.compile(r"[’‘'`´]")

# Qdrant's Turkish stop-word list (the Snowball/NLTK one), spelt out: words reach Qdrant already filtered.
_STOPWORD_TEXT = (
    "acaba ama aslında az bazı belki biri birkaç birşey biz bu çok çünkü da daha de defa diye eğer en gibi "
    "hem hep hepsi her hiç için ile ise kez ki kim mı mu mü nasıl ne neden nerde nerede nereye niçin niye o "
    "sanki şey siz şu tüm ve veya ya yani"
)
_TURKISH_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def is_stopword(word: str) -> bool:
    """Return True for a lower-cased stop-word or question particle ("mi", "mısınız", "musunuz").

    Stop-words typed without diacritics ("nasil", "icin") get them back before this test (deasciify.py).
    """
    return word in _TURKISH_STOPWORDS or PARTICLE.fullmatch(word) is not None


@dataclass(frozen=True)
class SparseVector:
    """Token ids and weights; the engine applies IDF at query time (Modifier.IDF)."""

    indices: list[int]
    values: list[float]

    def __bool__(self) -> bool:
        return bool(self.indices)


@dataclass(frozen=True)
class Bm25Params:
    """BM25 saturation `k`, length normalisation `b`, expected chunk length, prefix size, trigram span and weight."""

    k: float = 1.2
    b: float = 0.75
    avg_len: float = 150.0
    language: str = "turkish"
    prefix_len: int = 5
    gram_span: int = 6
    gram_weight: float = 0.5


def _merge(*vectors: object) -> SparseVector:
    weights: dict[int, float] = {}
    for vec in vectors:
        for index, value in zip(vec.indices, vec.values, strict=True):  # type: ignore[attr-defined]
            weights[index] = weights.get(index, 0.0) + value
    ordered = sorted(weights)
    return SparseVector(ordered, [weights[i] for i in ordered])


def _scaled(vector: object, factor: float) -> SparseVector:
    return SparseVector(list(vector.indices), [v * factor for v in vector.values])  # type: ignore[attr-defined]


# Per-word results are kept: a word's forms and tokens depend on the word alone, and the same words come
# back in every chunk and query (a few thousand distinct words make up most of a tenant's text).
_WORD_CACHE = 1 << 14


@lru_cache(maxsize=_WORD_CACHE)
def _indexed_forms(word: str) -> tuple[str, ...]:
    forms = (restore_diacritics(form) for form in written_forms(word))
    return tuple(w for w in forms if not is_stopword(w))


def sparse_words(text: str) -> list[str]:
    """Return the words BM25 indexes for `text`: lower-cased, written forms with their diacritics, no
    placeholders or stop-words."""
    lowered = _APOSTROPHE.sub(" ", turkish_lower(strip_placeholders(text)))
    return [form for word in _WORD.findall(lowered) for form in _indexed_forms(word)]


def trigrams(word: str, span: int = 6) -> list[str]:
    """Return the character trigrams of the first `span` letters of a folded `word`, boundaries marked.

    "zaman" gives "#za", "zam", "ama", "man", "an#". Only the head of a word counts: it is where the prefix
    streams match, and suffix trigrams ("lar", "ını") are in most chunks, so they cost search time and
    tell nothing (measured at 100k chunks: engine p50 3.8 ms instead of 6.1 ms, hit@1 within one query).
    """
    padded = f"#{word[:span]}" + ("#" if len(word) <= span else "")
    return [padded[i : i + 3] for i in range(len(padded) - 2)]


def verb_root(word: str) -> str:
    """Return the root of a present-tense verb ("yazıyorum" → "yaz"); other words come back unchanged."""
    match = _PRESENT.fullmatch(word)
    return match.group("root") if match else word


def prefix(word: str, n: int = 5) -> str:
    """Return the first `n` letters of a lower-cased `word`, a softened consonant at the cut hardened.

    "takibini" → "takip" meets "takip", "hesabım" → "hesap" meets "hesap": a b/c/d/g/ğ as the n-th letter
    with a vowel after it is the soft form of p/ç/t/k. A word of n letters or fewer is left as it is.
    """
    head = word[:n]
    if len(word) > n and head[-1] in _HARDENED and word[n] in _VOWELS:
        return head[:-1] + _HARDENED[head[-1]]
    return head


@lru_cache(maxsize=_WORD_CACHE)
def _word_tokens(word: str, n: int, span: int) -> tuple[str, str, str, str]:
    """Return one word's tokens in the four streams: its stem (a present-tense verb's root), its prefix,
    its folded prefix, and its folded head's trigrams (space-separated).

    One-letter marks keep the streams apart: the stem "kart" and the prefix "pkart" never collide.
    """
    head = prefix(word, n)
    grams = " ".join(f"g{g}" for g in trigrams(fold_lowered(word), span))
    return verb_root(word), f"p{head}", f"f{fold_lowered(head)}", grams


class TurkishBm25:
    """BM25 encoder: exact stems and prefixes, folded prefixes and trigrams of Turkish words."""

    def __init__(self, params: Bm25Params | None = None) -> None:
        self.params = params or Bm25Params()
        # Words arrive tokenised, lower-cased and filtered; Qdrant only stems (one model) and weights them.
        self._stems = Bm25(self._config(stem=True))
        self._tokens = Bm25(self._config(stem=False))

    def _config(self, stem: bool) -> Bm25Config:
        p = self.params
        return Bm25Config(
            k=p.k,
            b=p.b,
            avg_len=p.avg_len,
            language=p.language,
            tokenizer=TokenizerType.Whitespace,
            stopwords=StopwordsSet(custom=set()),
            lowercase=False,
            stemmer=None if stem else DisabledStemmer(),
        )

    @property
    def model_id(self) -> str:
        p = self.params
        return (
            f"bm25-{p.language}-v3-informal-deascii-root-stem+p{p.prefix_len}h+f{p.prefix_len}h+g3h{p.gram_span}x{p.gram_weight:g}"
            f"-k{p.k}-b{p.b}-avg{p.avg_len:g}"
        )

    def _streams(self, words: list[str]) -> list[tuple[Bm25, str, float]]:
        p = self.params
        tokens = [_word_tokens(w, p.prefix_len, p.gram_span) for w in words]
        return [
            (self._stems, " ".join(t[0] for t in tokens), 1.0),
            (self._tokens, " ".join(t[1] for t in tokens), 1.0),
            (self._tokens, " ".join(t[2] for t in tokens), 1.0),
            (self._tokens, " ".join(t[3] for t in tokens if t[3]), p.gram_weight),
        ]

    def _encode(self, words: list[str], query: bool) -> SparseVector:
        parts = []
        for model, tokens, weight in self._streams(words):
            vector = model.embed_query(tokens) if query else model.embed_document(tokens)
            parts.append(_scaled(vector, weight) if weight != 1.0 else vector)
        return _merge(*parts)

    def embed_document(self, text: str) -> SparseVector:
        return self._encode(sparse_words(text), query=False)

    def embed_query(self, text: str) -> SparseVector:
        return self._encode(sparse_words(text), query=True)
