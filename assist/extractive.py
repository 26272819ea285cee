"""Extractive answers: no LLM, only text the tenant already has.

For each retrieved chunk the reply is
- a FAQ answer (`faq`, metadata "answer") or a quick reply (`quick_reply`, metadata "text"),
- a past agent reply from a resolved chat (`chat`, metadata "answer"): strategy "past_reply",
- or the best sentences of a document chunk: sentences scored by the question's topic terms they
  contain, each term weighted by how rare it is among the chunk's sentences; the runner-up joins
  when it scores nearly as well, else a neighbour joins when the best sentence is short (answers are
  often a name or a number in the sentence next to the one that repeats the question).
Sentences that carry an instruction to the assistant (prompt injection) are never used.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from retrieval.models import SearchHit
from retrieval.text import fold_turkish

from .confidence import Evidence
from .language import PREFIX_LEN, match_form
from .models import Strategy
from .sentences import analyse
from .verify import ready_answer

MAX_SUGGESTIONS = 3
# The runner-up sentence joins the best one when it scores at least this share of the best score.
RUNNER_UP_SHARE = 0.8
# A best sentence shorter than this (in words) gets a neighbour for context.
SHORT_SENTENCE_WORDS = 20
# Terms that only share their first 4 letters count this much ("açılması" / "açıldı").
PARTIAL_MATCH_WEIGHT = 0.5
SNIPPET_CHARS = 240
# An answer taken from under a question heading stops after about this many words.
FAQ_ANSWER_WORDS = 80

# Questions asking for a number, a date or an amount prefer sentences that contain one.
# (Patterns are folded like the match form they run on.)
_NUMERIC_QUESTION = re.compile(
    fold_turkish(
        r"\b(?:kaç|kaçta|kaçıncı|ne zaman|ne kadar|yüzde kaç|hangi (?:yıl|tarih|yüzyıl|ay|gün|sene)"
        r"|how many|how much|when|what year)"
    )
)
_NUMBER_WORD = re.compile(
    fold_turkish(
        r"\d|\b(?:bir|iki|üç|dört|beş|altı|yedi|sekiz|dokuz|on|yirmi|otuz|kırk|elli|yüz|bin|milyon|milyar)\b"
    )
)
NUMERIC_BONUS = 0.5
_LEANS_BACK = re.compile(
    fold_turkish(
        r"(?:bu (?:yüzden|nedenle|sebeple|durumda|da)|bunun (?:için|yerine|dışında)|ancak|ama|fakat|ayrıca"
        r"|yine de|o zaman|öte yandan|dolayısıyla|this is why|however|therefore|also)\b"
    )
)


@dataclass(frozen=True)
class ExtractiveReply:
    """A grounded reply taken from one retrieved chunk."""

    text: str
    hit: SearchHit
    strategy: Strategy
    confidence: float


@dataclass(frozen=True)
class Extract:
    """The chosen sentences of a chunk and the share of the question's terms they contain."""

    text: str
    overlap: float


def best_sentences(question: str, query_terms: set[str], text: str) -> Extract | None:
    """Return the sentences of `text` that best answer `question`, or None if no sentence is usable."""
    sentences = [s for s in analyse(text).sentences if not s.injection]
    if not sentences:
        return None
    n = len(sentences)
    partial = [{t[: PREFIX_LEN - 1] for t in s.terms} for s in sentences]
    frequency = {t: sum(1 for s in sentences if t in s.terms) for t in query_terms}
    wants_number = _NUMERIC_QUESTION.search(match_form(question)) is not None

    def score(i: int) -> float:
        terms = sentences[i].terms
        value = sum(math.log(1 + n / frequency[t]) for t in query_terms if t in terms)
        value += PARTIAL_MATCH_WEIGHT * sum(
            1 for t in query_terms if t not in terms and len(t) >= 4 and t[: PREFIX_LEN - 1] in partial[i]
        )
        if wants_number and _NUMBER_WORD.search(sentences[i].form):
            value += NUMERIC_BONUS
        # Mildly favour short sentences: a long one matches many terms by sheer length.
        return value / (len(terms) + 1) ** 0.3

    scores = [score(i) for i in range(n)]
    order = sorted(range(n), key=lambda i: (-scores[i], i))
    best = order[0]
    chosen = {best}
    if n > 1 and scores[best] > 0 and scores[order[1]] >= RUNNER_UP_SHARE * scores[best]:
        chosen.add(order[1])
    elif n > 1 and len(sentences[best].text.split()) < SHORT_SENTENCE_WORDS:
        neighbours = [j for j in (best - 1, best + 1) if 0 <= j < n]
        # The better-scoring neighbour; on a tie the next sentence, which usually continues the thought.
        chosen.add(max(neighbours, key=lambda j: (scores[j], j > best)))
    if best > 0 and _LEANS_BACK.match(sentences[best].form) and len(chosen | {best - 1}) < n:
        # A best sentence that opens with a connective ("Bu yüzden", "Ancak") continues the one before it
        # (unless that would give back the whole text).
        chosen.add(best - 1)
    picked_terms = frozenset().union(*(sentences[i].terms for i in chosen))
    overlap = len(query_terms & picked_terms) / len(query_terms) if query_terms else 0.0
    if _is_question(sentences[best].text) and best + 1 < n and not _is_question(sentences[best + 1].text):
        # FAQ-shaped documents: the best match is the page's own question, so the answer is what
        # follows it, up to the next question (or a length cap).
        answer = _answer_after(sentences, best)
        return Extract(" ".join(s.text for s in answer), overlap)
    return Extract(" ".join(sentences[i].text for i in sorted(chosen)), overlap)


def _is_question(text: str) -> bool:
    return text.rstrip().endswith("?")


def _answer_after(sentences: Sequence, question: int) -> list:
    answer, words = [], 0
    for sentence in sentences[question + 1 :]:
        if _is_question(sentence.text) or words >= FAQ_ANSWER_WORDS:
            break
        answer.append(sentence)
        words += len(sentence.text.split())
    return answer


def reply_from_hit(
    question: str, query_terms: set[str], hit: SearchHit, evidence: Evidence
) -> ExtractiveReply | None:
    """Return the extractive reply one chunk offers, or None (no usable text, or an injection in it)."""
    retrieval = evidence.confidence
    ready = ready_answer(hit)
    if ready:
        if analyse(ready).has_injection:
            return None
        strategy: Strategy = "past_reply" if hit.source == "chat" else "extractive"
        return ExtractiveReply(ready, hit, strategy, retrieval)
    # Documents, and any FAQ or chat chunk that lacks its answer field: the best sentences of the text.
    extract = best_sentences(question, query_terms, hit.text)
    if extract is None:
        return None
    # The verifier's probability already weighs how well the best sentences match the question.
    return ExtractiveReply(extract.text, hit, "extractive", retrieval)


def extractive_replies(
    question: str,
    query_terms: set[str],
    hits: Sequence[SearchHit],
    evidence: Sequence[Evidence],
    *,
    limit: int = MAX_SUGGESTIONS,
    min_confidence: float = 0.0,
) -> list[ExtractiveReply]:
    """Return up to `limit` replies from the hits, in retrieval order: each says something new and comes
    from a source none before it came from (three passages of one past chat are one suggestion)."""
    replies: list[ExtractiveReply] = []
    seen: set[str] = set()
    for hit, ev in zip(hits, evidence, strict=True):
        if len(replies) >= limit:
            break
        reply = reply_from_hit(question, query_terms, hit, ev)
        if reply is None or reply.confidence < min_confidence:
            continue
        key = " ".join(reply.text.lower().split())
        if key in seen or hit.ref in seen:
            continue
        seen.update((key, hit.ref))
        replies.append(reply)
    return replies
