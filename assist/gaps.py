"""Knowledge gaps: the customer questions a tenant's knowledge could not answer, grouped into topics.

Every handoff for `no_knowledge` or `low_confidence` is a question the knowledge could have answered and
did not. `gap_topics` turns a period of them into a to-do list for the knowledge owner:

- questions are grouped by what they ask: the rare words they share (stems weighed by how rare they are
  in the tenant's knowledge, so "indirim" alone does not make "öğretmen indirimi" and "emekli indirimi"
  one topic while "öğretmenlere indirim" and "ogretmen indirimi var mi" are), and, when an embedder is
  at hand, the meaning of the whole question; average-linkage clustering, cut at a fixed similarity;
- each topic gets a short label (the words its questions share, else the question's rarest words),
  a count, its first and last date, a few example questions and, where the tenant's agents already
  answered such a question (a past-chat reply, a reply an agent sent after a suggestion), a candidate
  answer with its source;
- a topic whose words the knowledge never uses and whose meaning is far from it is marked `off_topic`
  ("galatasaray maçı kaç kaç bitti" to a shop): listed after the topics the tenant should write up.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from retrieval.text import strip_placeholders, turkish_lower

from .language import PREFIX_LEN
from .verify import TenantVocabulary, question_terms

# Average similarity at which two questions ask the same thing (0..1, lexical and dense mixed); tuned
# on the uncovered questions of the shop dev tenant against a hand labelling (docs/knowledge-gaps.md).
SAME_TOPIC = 0.3
# Weight of the dense (meaning) similarity when an embedder is given; the rest is the rare-word overlap.
DENSE_WEIGHT = 0.3
# Off topic: at least this share of the question's weight is in words the knowledge never uses (a gap
# in the tenant's business has one new word, "öğretmen indirimi"; "galatasaray maçı" has only new ones) ...
OFF_TOPIC_UNSEEN = 0.6
# ... and its meaning is this far from the knowledge (cosine to the mean of the tenant's chunk vectors).
OFF_TOPIC_COSINE = 0.1
# Stems weigh by their IDF in the knowledge (a power below 1 let "indirim" join teachers and retirees).
IDF_POWER = 1.0
MAX_EXAMPLES = 3
LABEL_WORDS = 3

_WORD = re.compile(r"\w+")

Embed = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class GapQuestion:
    """A customer question that was handed off because the knowledge could not answer it (redacted)."""

    text: str
    reason: str
    asked_at: datetime
    conversation_id: str = ""


@dataclass(frozen=True)
class CandidateAnswer:
    """What an agent of the tenant already answered to such a question, and where it was found."""

    text: str
    ref: str
    question: str = ""


@dataclass(frozen=True)
class GapTopic:
    """Questions that ask the same thing, most asked first."""

    label: str
    count: int
    examples: tuple[str, ...]
    first_asked: datetime
    last_asked: datetime
    reasons: dict[str, int]
    off_topic: bool
    closeness: float = 0.0
    candidate: CandidateAnswer | None = None
    questions: tuple[GapQuestion, ...] = field(default=(), repr=False)


def _stems(text: str) -> list[str]:
    return [w[:PREFIX_LEN] for w in question_terms(text)]


def _weights(stems: Sequence[str], vocabulary: TenantVocabulary) -> dict[str, float]:
    return {s: vocabulary.idf(s) ** IDF_POWER for s in dict.fromkeys(stems)}


def _lexical_similarity(weights: list[dict[str, float]]) -> np.ndarray:
    """Return the weighted overlap (cosine of IDF-weighted stem sets) of every pair of questions."""
    vocab = {s: i for i, s in enumerate(sorted({s for w in weights for s in w}))}
    matrix = np.zeros((len(weights), max(1, len(vocab))))
    for row, w in enumerate(weights):
        for stem, value in w.items():
            matrix[row, vocab[stem]] = value
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix = matrix / np.where(norms == 0, 1.0, norms)
    return matrix @ matrix.T


def _clusters(similarity: np.ndarray) -> list[list[int]]:
    """Return groups of indices: average-linkage clustering cut at SAME_TOPIC."""
    n = len(similarity)
    if n == 1:
        return [[0]]
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    distance = np.clip(1.0 - similarity, 0.0, None)
    distance = (distance + distance.T) / 2
    np.fill_diagonal(distance, 0.0)
    tree = linkage(squareform(distance, checks=False), method="average")
    # fcluster keeps a merge at exactly the cut; the strict "<" of "at least SAME_TOPIC alike" needs a hair less.
    labels = fcluster(tree, t=1.0 - SAME_TOPIC - 1e-9, criterion="distance")
    groups: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(int(label), []).append(i)
    return list(groups.values())


def _surface_words(text: str) -> dict[str, str]:
    """Return stem → the word as the customer wrote it (lower case, first occurrence)."""
    words: dict[str, str] = {}
    for word in _WORD.findall(turkish_lower(strip_placeholders(text))):
        stems = _stems(word)
        if stems:
            words.setdefault(stems[0], word)
    return words


def _label(members: Sequence[int], texts: Sequence[str], weights: list[dict[str, float]]) -> str:
    """Return the topic's label: the rare words most of its questions share, in the order they are asked."""
    counts = Counter(s for i in members for s in weights[i])
    shared = [s for s, c in counts.items() if len(members) == 1 or c * 2 >= len(members)]
    central = max(members, key=lambda i: sum(weights[i].get(s, 0.0) for s in shared))
    ranked = sorted(shared, key=lambda s: -sum(weights[i].get(s, 0.0) for i in members))[:LABEL_WORDS]
    surface = _surface_words(texts[central])
    order = list(surface)
    chosen = sorted(ranked, key=lambda s: order.index(s) if s in order else len(order))
    words = [surface.get(s, s) for s in chosen]
    return " ".join(words) or texts[central][:60]


def _unseen_share(weights: dict[str, float], vocabulary: TenantVocabulary) -> float:
    total = sum(weights.values())
    unseen = sum(v for s, v in weights.items() if not vocabulary.seen(s))
    return unseen / total if total else 1.0


def gap_topics(
    questions: Sequence[GapQuestion],
    vocabulary: TenantVocabulary,
    *,
    embed: Embed | None = None,
    knowledge_centroid: np.ndarray | None = None,
    candidate: Callable[[GapTopic], CandidateAnswer | None] | None = None,
) -> list[GapTopic]:
    """Return the questions grouped into topics: in-domain topics first, each by how often it was asked.

    `embed` (normalised vectors for texts) adds meaning to the rare-word overlap; `knowledge_centroid`
    (the normalised mean of the tenant's chunk vectors) lets a topic be called off topic only when its
    meaning is also far from the knowledge. `candidate` finds an agent's earlier answer for a topic.
    """
    questions = [q for q in questions if q.text.strip()]
    if not questions:
        return []
    texts = [q.text for q in questions]
    weights = [_weights(_stems(t), vocabulary) for t in texts]
    similarity = _lexical_similarity(weights)
    vectors = embed(texts) if embed is not None else None
    if vectors is not None:
        similarity = (1 - DENSE_WEIGHT) * similarity + DENSE_WEIGHT * (vectors @ vectors.T)
    topics = []
    for members in _clusters(similarity):
        group = [questions[i] for i in members]
        unseen = float(np.mean([_unseen_share(weights[i], vocabulary) for i in members]))
        closeness = 1.0 - unseen
        far = True
        if vectors is not None and knowledge_centroid is not None:
            cosine = float(np.mean(vectors[members] @ knowledge_centroid))
            far = cosine < OFF_TOPIC_COSINE
            closeness = (closeness + cosine / OFF_TOPIC_COSINE * (1 - OFF_TOPIC_UNSEEN)) / 2
        # Examples: the most typical questions of the topic first, each text once.
        typical = sorted(members, key=lambda i: -float(similarity[i, members].mean()))
        examples = tuple(dict.fromkeys(texts[i] for i in typical))[:MAX_EXAMPLES]
        topic = GapTopic(
            label=_label(members, texts, weights),
            count=len(group),
            examples=examples,
            first_asked=min(q.asked_at for q in group),
            last_asked=max(q.asked_at for q in group),
            reasons=dict(Counter(q.reason for q in group)),
            off_topic=unseen >= OFF_TOPIC_UNSEEN and far,
            closeness=round(closeness, 4),
            questions=tuple(group),
        )
        if candidate is not None and not topic.off_topic:
            found = candidate(topic)
            if found is not None:
                topic = GapTopic(**{**topic.__dict__, "candidate": found})
        topics.append(topic)
    topics.sort(key=lambda t: (t.off_topic, -t.count, -t.closeness))
    return topics
