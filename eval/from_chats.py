"""Build an eval dataset from a tenant's resolved conversations, so tenants can evaluate on their own data.

Held-out conversations give the questions (the customer's words) and references (the agent's reply);
the other conversations give the corpus, so a held-out conversation can never be its own answer. A
question's relevant ids are the corpus replies that say the same thing as its reference; a question no
other conversation answers has none, and the right outcome for it is a handoff.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from rapidfuzz import fuzz

from ingestion.chats import QAPair, extract_pairs, load_conversations
from ingestion.redact import Redactor
from retrieval.text import normalise_for_match

from .datasets import CorpusDoc, EvalQuery, write_dataset

SAME_ANSWER = 80.0  # rapidfuzz token-set ratio from which two replies count as the same answer


@dataclass(frozen=True)
class ChatDatasetSummary:
    conversations: int
    held_out: int
    corpus_docs: int
    queries: int
    answerable: int
    problems: list[str]


def build_from_chats(
    chats: Path, out_dir: Path, *, holdout: float = 0.2, seed: int = 13
) -> ChatDatasetSummary:
    """Write corpus.jsonl and queries.jsonl into `out_dir` from a conversation export; return what was written."""
    if not 0.0 < holdout < 1.0:
        raise ValueError(f"holdout must be between 0 and 1, got {holdout}")
    imported = load_conversations(chats)
    conversations = [c for c in imported.conversations if c.status == "resolved"]
    if len(conversations) < 2:
        raise ValueError(f"{chats}: need at least 2 resolved conversations, found {len(conversations)}")
    order = sorted(conversations, key=lambda c: c.conversation_id)
    random.Random(seed).shuffle(order)
    n_held = max(1, round(len(order) * holdout))
    held, kept = order[:n_held], order[n_held:]
    redact = Redactor()
    corpus: list[CorpusDoc] = []
    answers: dict[str, str] = {}
    for conv in kept:
        for pair in extract_pairs(conv):
            doc_id = f"chat:{pair.conversation_id}#{pair.position}"
            question, answer = redact(pair.question), redact(pair.answer)
            corpus.append(
                CorpusDoc(
                    doc_id,
                    f"Müşteri: {question}\nTemsilci: {answer}",
                    f"Sohbet {pair.conversation_id}",
                    {"conversation_id": pair.conversation_id, "channel": pair.channel},
                )
            )
            answers[doc_id] = normalise_for_match(answer)
    queries: list[EvalQuery] = []
    for conv in held:
        for pair in extract_pairs(conv):
            queries.append(_query(pair, redact, answers))
    write_dataset(out_dir, corpus, queries)
    return ChatDatasetSummary(
        conversations=len(conversations),
        held_out=len(held),
        corpus_docs=len(corpus),
        queries=len(queries),
        answerable=sum(1 for q in queries if q.relevant_ids),
        problems=list(imported.problems),
    )


def _query(pair: QAPair, redact: Redactor, answers: dict[str, str]) -> EvalQuery:
    reference = redact(pair.answer)
    wanted = normalise_for_match(reference)
    relevant = [
        doc_id for doc_id, text in answers.items() if fuzz.token_set_ratio(wanted, text) >= SAME_ANSWER
    ]
    return EvalQuery(
        id=f"{pair.conversation_id}#{pair.position}",
        question=redact(pair.question),
        relevant_ids=relevant,
        reference_answer=reference,
    )
