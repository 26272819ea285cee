"""Turn what tenants upload into `IngestItem`s: files, plain-text documents, FAQ sheets, quick replies, chats."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from retrieval.models import Chunk, Source

from .chats import collapse_duplicates, extract_pairs, load_conversations, pairs_to_chunks
from .chunking import DEFAULT_CHUNK_WORDS, DEFAULT_OVERLAP_WORDS, chunk_document
from .faq import SheetImport, load_faq, load_quick_replies
from .loaders import DEFAULT_MAX_BYTES, LoadedDocument, Section, load_document
from .parse_worker import ParseLimits, run_limited
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
    tenant_id: str,
    paths: Iterable[Path],
    params: ChunkingParams | None = None,
    *,
    base: Path | None = None,
    names: Sequence[str] | None = None,
    limits: ParseLimits | None = None,
) -> list[IngestItem]:
    """Return one item per file; doc ids come from the file's path relative to `base` (or its name), or
    from `names` (one per path: the name the file was uploaded under, when it is stored under another).

    With `limits`, each file is parsed and chunked in a worker process within them (`parse_worker`)."""
    params = params or ChunkingParams()
    items = []
    for n, path in enumerate(paths):
        shown = names[n] if names is not None else None
        uri = shown or (str(path.relative_to(base)) if base and path.is_relative_to(base) else path.name)
        doc_id = doc_id_for(uri)

        def build(path: Path = path, doc_id: str = doc_id, shown: str | None = shown) -> list[Chunk]:
            if not path.exists():
                raise ValueError(f"{shown or path.name}: no such file")
            args = (tenant_id, path, shown, doc_id, params)
            if limits is None:
                return parse_file(*args)
            return run_limited(parse_file, args, name=shown or path.name, limits=limits)

        items.append(IngestItem(uri, doc_id, "doc", uri, _file_hash(path, params), build))
    return items


def parse_file(
    tenant_id: str, path: Path, shown: str | None, doc_id: str, params: ChunkingParams
) -> list[Chunk]:
    """Return the chunks of one file: parsed (`load_document`) and chunked."""
    doc = load_document(path, max_bytes=params.max_bytes, name=shown)
    return chunk_document(
        doc, tenant_id=tenant_id, doc_id=doc_id, chunk_size=params.chunk_size, overlap=params.overlap
    )


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


def _sheet_doc_id(source: Source, name: str) -> str:
    return doc_id_for(f"{source}:{name}")


def _sheet_loader(source: Source) -> Callable[..., SheetImport]:
    return load_faq if source == "faq" else load_quick_replies


def sheet_item(
    tenant_id: str,
    path: Path,
    source: Source,
    *,
    doc_id: str | None = None,
    name: str | None = None,
    limits: ParseLimits | None = None,
) -> IngestItem:
    """Return the item for a FAQ sheet (source "faq") or a quick-reply sheet (source "quick_reply");
    `name` is the name it was uploaded under when it is stored under another. With `limits`, the sheet is
    read in a worker process within them, as files are."""
    name = name or path.name
    doc_id = doc_id or _sheet_doc_id(source, name)
    data = path.read_bytes() if path.exists() else b""

    def build() -> list[Chunk]:
        if not path.exists():
            raise ValueError(f"{name}: no such file")
        args = (tenant_id, doc_id, path, source, name)
        if limits is None:
            return sheet_chunks(*args)
        return run_limited(sheet_chunks, args, name=name, limits=limits)

    return IngestItem(name, doc_id, source, name, content_hash(data, source), build, title=Path(name).stem)


def sheet_chunks(tenant_id: str, doc_id: str, path: Path, source: Source, name: str) -> list[Chunk]:
    """Return the chunks of a FAQ or quick-reply sheet; ValueError when no row can be used."""
    result = _sheet_loader(source)(tenant_id, doc_id, path.read_bytes(), filename=name)
    if not result.chunks:
        problems = "; ".join(result.problems[:5])
        raise ValueError(f"{name}: no usable rows" + (f" ({problems})" if problems else ""))
    return result.chunks


def sheet_problems(tenant_id: str, data: bytes, source: Source, name: str) -> list[str]:
    """Return the rows of a sheet that cannot be used, each with its row number and why (a sheet that
    cannot be read at all gives [] here: its job reports that)."""
    try:
        return _sheet_loader(source)(tenant_id, _sheet_doc_id(source, name), data, filename=name).problems
    except ValueError:
        return []


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
