"""Turn what tenants upload into `IngestItem`s: files, plain-text documents, FAQ sheets, quick replies, chats."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from retrieval.models import Chunk, Source

from .chats import collapse_duplicates, extract_pairs, load_conversations, pairs_to_chunks
from .chunking import DEFAULT_CHUNK_WORDS, DEFAULT_OVERLAP_WORDS, chunk_document
from .faq import load_faq, load_quick_replies
from .loaders import DEFAULT_MAX_BYTES, LoadedDocument, Section, load_document
from .pipeline import IngestItem, content_hash, doc_id_for


@dataclass(frozen=True)
class ChunkingParams:
    chunk_size: int = DEFAULT_CHUNK_WORDS
    overlap: int = DEFAULT_OVERLAP_WORDS
    max_bytes: int = DEFAULT_MAX_BYTES


@dataclass(frozen=True)
class TextDocument:
    """A document that is already text (an eval corpus passage, a JSON API upload)."""

    id: str
    text: str
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


def _file_hash(path: Path, params: ChunkingParams) -> str:
    try:
        size = path.stat().st_size
    except OSError:
        return content_hash(b"", "missing", str(path))
    if size > params.max_bytes:
        # Never read an oversized file just to hash it; the loader rejects it with a clear message.
        return content_hash(f"{size}".encode(), "oversized", str(path))
    return content_hash(path.read_bytes(), params.chunk_size, params.overlap)


def file_items(
    tenant_id: str, paths: Iterable[Path], params: ChunkingParams | None = None, *, base: Path | None = None
) -> list[IngestItem]:
    """Return one item per file; doc ids come from the file's path relative to `base` (or its name)."""
    params = params or ChunkingParams()
    items = []
    for path in paths:
        uri = str(path.relative_to(base)) if base and path.is_relative_to(base) else path.name
        doc_id = doc_id_for(uri)

        def build(path: Path = path, doc_id: str = doc_id) -> list[Chunk]:
            if not path.exists():
                raise ValueError(f"{path}: no such file")
            doc = load_document(path, max_bytes=params.max_bytes)
            return chunk_document(
                doc, tenant_id=tenant_id, doc_id=doc_id, chunk_size=params.chunk_size, overlap=params.overlap
            )

        items.append(IngestItem(uri, doc_id, "doc", uri, _file_hash(path, params), build))
    return items


def text_items(
    tenant_id: str, docs: Iterable[TextDocument], source: Source = "doc", params: ChunkingParams | None = None
) -> list[IngestItem]:
    """Return one item per text document, chunked exactly like a parsed file with a single section."""
    params = params or ChunkingParams()
    items = []
    for doc in docs:
        digest = content_hash(
            json.dumps([doc.text, doc.title, doc.metadata], ensure_ascii=False, sort_keys=True).encode(),
            params.chunk_size,
            params.overlap,
        )

        def build(doc: TextDocument = doc) -> list[Chunk]:
            loaded = LoadedDocument(
                name=doc.id, kind="text", title=doc.title or doc.id, sections=[Section((), doc.text)]
            )
            chunks = chunk_document(
                loaded,
                tenant_id=tenant_id,
                doc_id=doc.id,
                source=source,
                chunk_size=params.chunk_size,
                overlap=params.overlap,
            )
            return [_with_metadata(c, doc.metadata, doc.title) for c in chunks]

        items.append(IngestItem(doc.id, doc.id, source, None, digest, build, title=doc.title or None))
    return items


def _with_metadata(chunk: Chunk, metadata: dict[str, Any], title: str) -> Chunk:
    return replace(chunk, title=title or chunk.title, metadata={**chunk.metadata, **metadata})


def sheet_item(tenant_id: str, path: Path, source: Source, *, doc_id: str | None = None) -> IngestItem:
    """Return the item for a FAQ sheet (source "faq") or a quick-reply sheet (source "quick_reply")."""
    doc_id = doc_id or doc_id_for(f"{source}:{path.name}")
    loader = load_faq if source == "faq" else load_quick_replies
    data = path.read_bytes() if path.exists() else b""

    def build() -> list[Chunk]:
        if not path.exists():
            raise ValueError(f"{path}: no such file")
        result = loader(tenant_id, doc_id, data, filename=path.name)
        if not result.chunks:
            problems = "; ".join(result.problems[:5])
            raise ValueError(f"{path.name}: no usable rows" + (f" ({problems})" if problems else ""))
        return result.chunks

    return IngestItem(
        path.name, doc_id, source, path.name, content_hash(data, source), build, title=path.stem
    )


@dataclass
class ChatImport:
    items: list[IngestItem]
    problems: list[str]
    conversations: int
    pairs: int


def chat_items(tenant_id: str, path: Path | bytes, filename: str | None = None) -> ChatImport:
    """Return one item per resolved conversation with usable Q/A pairs (doc id `chat:<conversation id>`).

    Near-duplicate replies are collapsed across the whole file first, so the index holds each way the
    team answers once, with a count.
    """
    imported = load_conversations(path, filename=filename)
    raw = {c.conversation_id: c for c in imported.conversations}
    pairs = collapse_duplicates(p for c in imported.conversations for p in extract_pairs(c))
    by_conversation: dict[str, list] = defaultdict(list)
    for pair in pairs:
        by_conversation[pair.conversation_id].append(pair)
    items = []
    for conversation_id, conv_pairs in by_conversation.items():
        doc_id = f"chat:{conversation_id}"
        digest = content_hash(raw[conversation_id].model_dump_json().encode(), "chat")

        def build(conv_pairs: list = conv_pairs) -> list[Chunk]:
            return pairs_to_chunks(tenant_id, conv_pairs)

        items.append(
            IngestItem(doc_id, doc_id, "chat", doc_id, digest, build, title=f"Sohbet {conversation_id}")
        )
    return ChatImport(items, list(imported.problems), len(imported.conversations), len(pairs))
