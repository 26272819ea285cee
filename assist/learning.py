"""The learning loop: a reply an agent accepted or edited becomes `chat` knowledge for the next question.

The registry's suggestion row has no column for the question it answered, so the (redacted) query is
stored as one extra entry of the suggestion's citation list, {"query": ...}, and read back here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from ingestion.pipeline import IngestItem
from ingestion.sources import TextDocument, text_items

from .models import Citation

QUERY_KEY = "query"


def stored_citations(citations: Iterable[Citation], query: str) -> list[dict[str, Any]]:
    """Return the citation dicts to store with a suggestion, plus the entry carrying its query."""
    return [c.model_dump() for c in citations] + [{QUERY_KEY: query}]


def citations_of(stored: Iterable[Mapping[str, Any]]) -> list[Citation]:
    """Return the citations of a stored suggestion, without the query entry."""
    return [Citation.model_validate(c) for c in stored if QUERY_KEY not in c]


def query_of(stored: Iterable[Mapping[str, Any]]) -> str | None:
    """Return the query a stored suggestion answered, or None if it was stored without one."""
    return next((str(c[QUERY_KEY]) for c in stored if QUERY_KEY in c and c[QUERY_KEY]), None)


def learned_doc_id(suggestion_id: str) -> str:
    """Return the knowledge document id of the reply learned from a suggestion's feedback."""
    return f"feedback:{suggestion_id}"


def gap_doc_id(question: str) -> str:
    """Return the knowledge document id of the answer a tenant wrote for a knowledge gap's question."""
    digest = hashlib.sha256(" ".join(question.lower().split()).encode()).hexdigest()[:16]
    return f"gap:{digest}"


def gap_answer_item(tenant_id: str, question: str, answer: str) -> IngestItem:
    """Return the ingestion item of an answer written for a knowledge gap: a FAQ entry like a sheet row's
    (the same question written up again replaces the earlier answer: a new version of one document)."""
    doc_id = gap_doc_id(question)
    doc = TextDocument(
        id=doc_id,
        text=f"Soru: {question}\nCevap: {answer}",
        title=question,
        metadata={"question": question, "answer": answer, "entry_id": doc_id, "gap": True},
    )
    return text_items(tenant_id, [doc], source="faq")[0]


def feedback_item(tenant_id: str, suggestion_id: str, question: str, answer: str, action: str) -> IngestItem:
    """Return the ingestion item of a learned reply: a `chat` Q/A chunk like those of imported chats."""
    doc = TextDocument(
        id=learned_doc_id(suggestion_id),
        text=f"Müşteri: {question}\nTemsilci: {answer}",
        title=question,
        metadata={"question": question, "answer": answer, "suggestion_id": suggestion_id, "feedback": action},
    )
    return text_items(tenant_id, [doc], source="chat")[0]
