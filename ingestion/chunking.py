"""Split a `LoadedDocument` into `Chunk`s that stay inside their sections, sized in words."""

from __future__ import annotations

import bisect
import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ingestion.loaders import LoadedDocument, Section
from retrieval.models import Chunk, Source

if TYPE_CHECKING:
    from llama_index.core.node_parser import SentenceSplitter

# Sizes count words, not model tokens, so they mean the same for every embedder; the eval tunes them.
DEFAULT_CHUNK_WORDS = 250
DEFAULT_OVERLAP_WORDS = 40  # ~15%

_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’»)\]]*\s+")
# Words that end with a period without ending the sentence (Turkish first, then English).
_ABBREVIATIONS = frozenset(
    "vb vs bkz örn dr prof doç yrd av sn no tel mah cad sok apt st ltd şti yy vd tic san mr mrs ms etc inc".split()  # noqa: SIM905
)


@dataclass(frozen=True)
class _Block:
    """Text that may share chunks: a run of one section, or small sibling sections merged together."""

    path: tuple[str, ...]
    parts: tuple[tuple[str, int | None], ...]  # (text, page) in reading order
    merged: tuple[tuple[str, ...], ...] = ()  # paths of the merged siblings, when merged

    @property
    def words(self) -> int:
        return sum(len(text.split()) for text, _ in self.parts)


def chunk_document(
    doc: LoadedDocument,
    *,
    tenant_id: str,
    doc_id: str,
    source: Source = "doc",
    chunk_size: int = DEFAULT_CHUNK_WORDS,
    overlap: int = DEFAULT_OVERLAP_WORDS,
) -> list[Chunk]:
    """Return the document's chunks in reading order with ids "0000", "0001", ...

    `chunk_size` and `overlap` count whitespace-separated words. A chunk never mixes two sections,
    except small sibling sections under the same parent heading, merged with their headings inline.
    """
    if chunk_size <= 0 or not 0 <= overlap < chunk_size:
        raise ValueError(f"need chunk_size > 0 and 0 <= overlap < chunk_size, got {chunk_size}, {overlap}")
    splitter = _splitter(chunk_size, overlap)
    chunks: list[Chunk] = []
    for block in _merge_small_siblings(_section_runs(doc.sections), chunk_size):
        text = "\n".join(part for part, _ in block.parts)
        starts = _part_starts(block)
        cursor = 0
        for piece in splitter.split_text(text):
            found = text.find(piece, cursor)
            cursor = found if found >= 0 else cursor
            metadata: dict[str, object] = {
                "page": _page_at(block, starts, cursor),
                "page_end": _page_at(block, starts, cursor + len(piece) - 1),
                "section_path": list(block.path),
            }
            if block.merged:
                metadata["merged_sections"] = [" > ".join(path) for path in block.merged]
            chunks.append(
                Chunk(
                    tenant_id=tenant_id,
                    doc_id=doc_id,
                    chunk_id=f"{len(chunks):04d}",
                    text=piece,
                    source=source,
                    title=doc.title,
                    section=" > ".join(block.path),
                    metadata=metadata,
                )
            )
    return chunks


def split_sentences(text: str) -> list[str]:
    """Return `text` cut after each sentence end, keeping all characters (Turkish-aware, no NLTK).

    No cut after abbreviations ("vb.", "Dr.") or Turkish ordinals ("3. kat"), nor before a
    lower-case letter.
    """
    pieces: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.end()
        if text[end : end + 1].islower():
            continue
        if match.group().startswith(".") and not match.group().startswith(".."):
            word = re.search(r"\S*$", text[max(start, match.start() - 40) : match.start()])
            token = word.group().lower() if word else ""
            if token.isdigit() or token in _ABBREVIATIONS:
                continue
        pieces.append(text[start:end])
        start = end
    if start < len(text):
        pieces.append(text[start:])
    return pieces


@functools.cache
def _splitter(chunk_size: int, overlap: int) -> SentenceSplitter:
    """Return a llama-index SentenceSplitter that needs no downloads.

    Its defaults fetch NLTK punkt/stopwords and a tiktoken vocabulary whenever NLTK_DATA or
    TIKTOKEN_CACHE_DIR point away from the copies bundled with llama-index, so both are replaced:
    words are counted by whitespace and sentences cut by `split_sentences`.
    """
    from llama_index.core.node_parser import SentenceSplitter  # slow import, so only when chunking

    return SentenceSplitter(
        chunk_size=chunk_size,
        chunk_overlap=overlap,
        tokenizer=str.split,
        chunking_tokenizer_fn=split_sentences,
        paragraph_separator="\n",
    )


def _section_runs(sections: list[Section]) -> list[_Block]:
    """Return one block per run of consecutive sections with the same path (e.g. a section over pages)."""
    blocks: list[_Block] = []
    for section in sections:
        if not section.text.strip():
            continue
        part = (section.text, section.page)
        if blocks and blocks[-1].path == section.path:
            blocks[-1] = _Block(section.path, (*blocks[-1].parts, part))
        else:
            blocks.append(_Block(section.path, (part,)))
    return blocks


def _merge_small_siblings(blocks: list[_Block], chunk_size: int) -> list[_Block]:
    """Return the blocks with neighbouring siblings merged while they fit in one chunk.

    Siblings share a parent heading; top-level sections have none and are never merged.
    """
    merged: list[_Block] = []
    for block in blocks:
        previous = merged[-1] if merged else None
        if previous and _are_siblings(previous, block) and previous.words + block.words <= chunk_size:
            merged[-1] = _Block(
                path=block.path[:-1],
                parts=_labelled(previous) + _labelled(block),
                merged=(previous.merged or (previous.path,)) + (block.path,),
            )
        else:
            merged.append(block)
    return merged


def _are_siblings(previous: _Block, block: _Block) -> bool:
    parent = block.path[:-1]
    if not parent:
        return False
    if previous.merged:
        return previous.path == parent
    return previous.path[:-1] == parent and len(previous.path) == len(block.path)


def _labelled(block: _Block) -> tuple[tuple[str, int | None], ...]:
    """Return the block's parts, led by its own heading unless it is already a merged group."""
    if block.merged:
        return block.parts
    return ((block.path[-1], block.parts[0][1]), *block.parts)


def _page_at(block: _Block, starts: list[int], offset: int) -> int | None:
    """Return the page of the part holding `offset` in the block's joined text."""
    return block.parts[bisect.bisect_right(starts, offset) - 1][1]


def _part_starts(block: _Block) -> list[int]:
    """Return the offset of each part in the block's joined text."""
    starts, offset = [], 0
    for text, _ in block.parts:
        starts.append(offset)
        offset += len(text) + 1
    return starts
