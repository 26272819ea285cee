"""What goes into the index (`Chunk`) and what comes back (`SearchHit`, `SearchResult`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

Source = Literal["doc", "faq", "chat", "quick_reply"]
SOURCES: tuple[str, ...] = get_args(Source)

# Fixed namespace so point ids are the same on every machine and every run.
_POINT_NAMESPACE = uuid.UUID("6f1c2a8e-3b7d-5c1e-9a0f-4d2b8e7c1a55")


def point_id(tenant_id: str, doc_id: str, chunk_id: str) -> str:
    """Return the deterministic point id (uuid5) of a chunk, so re-ingesting overwrites instead of duplicating."""
    return str(uuid.uuid5(_POINT_NAMESPACE, f"{tenant_id}/{doc_id}/{chunk_id}"))


@dataclass(frozen=True)
class Chunk:
    """A piece of tenant knowledge ready to be embedded and stored."""

    tenant_id: str
    doc_id: str
    chunk_id: str
    text: str
    source: Source = "doc"
    title: str = ""
    section: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("tenant_id", "doc_id", "chunk_id"):
            if not str(getattr(self, name)).strip():
                raise ValueError(f"Chunk.{name} must not be empty")
        if self.source not in SOURCES:
            raise ValueError(f"Chunk.source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if not self.text.strip():
            raise ValueError(f"Chunk {self.doc_id}/{self.chunk_id} has no text")

    @property
    def point_id(self) -> str:
        return point_id(self.tenant_id, self.doc_id, self.chunk_id)

    def payload(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "source": self.source,
            "doc_id": self.doc_id,
            "chunk_id": self.chunk_id,
            "title": self.title,
            "section": self.section,
            "text": self.text,
            "metadata": dict(self.metadata),
        }


_REF_PREFIX = {"faq": "faq", "quick_reply": "qr", "chat": "chat", "doc": "doc"}


def source_ref(source: str, doc_id: str, chunk_id: str, metadata: dict[str, Any]) -> str:
    """Return the readable source id of a chunk (see SearchHit.ref)."""
    prefix = _REF_PREFIX.get(source, source)
    if source in ("faq", "quick_reply"):
        return f"{prefix}:{metadata.get('entry_id') or chunk_id}"
    if source == "chat":
        return doc_id if doc_id.startswith("chat:") else f"chat:{doc_id}"
    return f"{prefix}:{doc_id}"


@dataclass(frozen=True)
class SearchHit:
    """One retrieved chunk with everything a citation needs."""

    point_id: str
    tenant_id: str
    doc_id: str
    chunk_id: str
    text: str
    score: float
    source: str = "doc"
    title: str = ""
    section: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    # The raw signals behind `score`: cosine of the dense match and BM25 of the sparse match (None if absent).
    dense_score: float | None = None
    sparse_score: float | None = None

    @property
    def ref(self) -> str:
        """Return the source this chunk cites: `faq:<entry id>`, `qr:<entry id>`, `chat:<conversation>`, `doc:<doc id>`.

        FAQ rows and quick replies are named by the sheet's own id (or row number), documents by their
        id (the file name), past chats by their conversation.
        """
        return source_ref(self.source, self.doc_id, self.chunk_id, self.metadata)

    def rescored(self, score: float, **scores: float | None) -> SearchHit:
        """Return a copy with `score` (and `dense_score` / `sparse_score` when given) replaced.

        `dataclasses.replace` for the hot path: every query copies tens of candidates, and replace()
        rebuilds each through `__init__` (about 5 µs); this copies the instance's fields (under 1 µs).
        """
        unknown = scores.keys() - {"dense_score", "sparse_score"}
        if unknown:
            raise TypeError(f"rescored() sets only dense_score and sparse_score, not {sorted(unknown)}")
        copy = object.__new__(SearchHit)
        state = copy.__dict__
        state.update(self.__dict__)
        state["score"] = score
        state.update(scores)
        return copy

    @classmethod
    def from_payload(
        cls,
        pid: Any,
        score: float,
        payload: dict[str, Any],
        dense_score: float | None = None,
        sparse_score: float | None = None,
    ) -> SearchHit:
        return cls(
            point_id=str(pid),
            tenant_id=payload.get("tenant_id", ""),
            doc_id=payload.get("doc_id", ""),
            chunk_id=payload.get("chunk_id", ""),
            text=payload.get("text", ""),
            score=float(score),
            source=payload.get("source", "doc"),
            title=payload.get("title", ""),
            section=payload.get("section", ""),
            metadata=dict(payload.get("metadata") or {}),
            dense_score=dense_score,
            sparse_score=sparse_score,
        )


@dataclass
class SearchResult:
    """Ranked hits for one query; `note` explains an empty result (e.g. a tenant with no knowledge)."""

    hits: list[SearchHit]
    tenant_id: str
    query: str
    tenant_known: bool = True
    note: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchFilters:
    """Optional narrowing of a search beyond the mandatory tenant."""

    sources: tuple[str, ...] = ()
    doc_ids: tuple[str, ...] = ()
    metadata: dict[str, str | int | bool] = field(default_factory=dict)
