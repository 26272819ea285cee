"""Tenant bundles: what one tenant uploads plus labelled customer messages, as an eval dataset.

    <bundle>/
      knowledge/faq.csv            FAQ sheet (csv, xlsx or json: whatever `ingest faq` reads)
      knowledge/quick_replies.csv  quick replies (`ingest quick-replies`)
      knowledge/docs/*             documents (`ingest files`)
      knowledge/chats.jsonl        past conversations (`ingest chats`)
      queries.jsonl                {id, question, relevant_ids, reference_answer?, history?, tags?}

Every part is optional. `relevant_ids` name sources as citations do (`SearchHit.ref`):
`faq:<sheet id or row number>`, `qr:<id>`, `doc:<file name>` (any chunk of it) and
`chat:<conversation id>` (any reply of a resolved conversation). Each part goes through the
ingestion code `invekto-knowledge ingest` runs (redaction, chunking, chat pairs): no eval-only path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ingestion.chats import load_conversations
from ingestion.faq import SheetFormatError, SheetImport, load_faq, load_quick_replies
from ingestion.pipeline import IngestItem, iter_files
from ingestion.registry_models import JobKind
from ingestion.sources import chat_items, file_items, sheet_item
from retrieval.models import source_ref

from .datasets import QUERIES_FILE, DatasetError, EvalQuery, parse_queries, read_queries

KNOWLEDGE_DIR = "knowledge"
_SHEET_SUFFIXES = (".csv", ".tsv", ".xlsx", ".xlsm", ".json")
_CHAT_SUFFIXES = (".jsonl", ".ndjson", ".json")


def is_bundle(path: Path) -> bool:
    """Return True when `path` is a tenant bundle folder (it has a knowledge/ folder)."""
    return (Path(path) / KNOWLEDGE_DIR).is_dir()


@dataclass
class TenantBundle:
    """The knowledge files of one tenant and the questions asked of it."""

    root: Path
    queries: list[EvalQuery]
    faq: Path | None = None
    quick_replies: Path | None = None
    docs: list[Path] = field(default_factory=list)
    chats: Path | None = None
    # Every source id the knowledge provides, as `relevant_ids` name them.
    sources: set[str] = field(default_factory=set)

    @property
    def answerable_queries(self) -> list[EvalQuery]:
        """Return the queries some source answers."""
        return [q for q in self.queries if q.answerable]

    def parts(self) -> dict[str, int]:
        """Return how many sources each part holds, for the run's config."""
        counts = {"faq": 0, "qr": 0, "doc": 0, "chat": 0}
        for ref in self.sources:
            counts[ref.split(":", 1)[0]] += 1
        return counts

    def items(self, tenant_id: str) -> list[tuple[JobKind, list[IngestItem]]]:
        """Return the ingestion jobs that load this bundle, as `invekto-knowledge ingest` builds them."""
        jobs: list[tuple[JobKind, list[IngestItem]]] = []
        if self.faq:
            jobs.append(("faq", [sheet_item(tenant_id, self.faq, "faq")]))
        if self.quick_replies:
            jobs.append(("quick_replies", [sheet_item(tenant_id, self.quick_replies, "quick_reply")]))
        if self.docs:
            jobs.append(("files", file_items(tenant_id, self.docs, base=self.root / KNOWLEDGE_DIR / "docs")))
        if self.chats:
            jobs.append(("chats", chat_items(tenant_id, self.chats).items))
        return jobs


def _one_file(folder: Path, stem: str, suffixes: tuple[str, ...], problems: list[str]) -> Path | None:
    found = sorted(p for p in folder.glob(f"{stem}.*") if p.suffix.lower() in suffixes)
    if len(found) > 1:
        problems.append(f"{KNOWLEDGE_DIR}/: more than one {stem} file ({', '.join(p.name for p in found)})")
    return found[0] if found else None


def _sheet_sources(path: Path, loader: Callable[..., SheetImport], problems: list[str]) -> set[str]:
    try:
        result = loader("bundle", "sheet", path)
    except SheetFormatError as exc:
        problems.append(f"{KNOWLEDGE_DIR}/{path.name}: {exc}")
        return set()
    problems.extend(f"{KNOWLEDGE_DIR}/{path.name}: {p}" for p in result.problems)
    return {source_ref(c.source, c.doc_id, c.chunk_id, c.metadata) for c in result.chunks}


def load_bundle(bundle_dir: Path) -> TenantBundle:
    """Return the bundle in `bundle_dir`, or raise DatasetError listing every problem found.

    The knowledge is parsed (not indexed) here, so a label naming a FAQ row, quick reply, document or
    resolved conversation the bundle does not have is reported before any ingestion starts.
    """
    root = Path(bundle_dir)
    knowledge = root / KNOWLEDGE_DIR
    problems: list[str] = []
    if not knowledge.is_dir():
        raise DatasetError(root, [f"{KNOWLEDGE_DIR}/: folder not found ({knowledge})"])
    bundle = TenantBundle(root=root, queries=[])
    bundle.faq = _one_file(knowledge, "faq", _SHEET_SUFFIXES, problems)
    bundle.quick_replies = _one_file(knowledge, "quick_replies", _SHEET_SUFFIXES, problems)
    bundle.chats = _one_file(knowledge, "chats", _CHAT_SUFFIXES, problems)
    if bundle.faq:
        bundle.sources |= _sheet_sources(bundle.faq, load_faq, problems)
    if bundle.quick_replies:
        bundle.sources |= _sheet_sources(bundle.quick_replies, load_quick_replies, problems)
    docs_dir = knowledge / "docs"
    if docs_dir.is_dir():
        bundle.docs = iter_files([docs_dir])
        bundle.sources |= {f"doc:{item.doc_id}" for item in file_items("bundle", bundle.docs, base=docs_dir)}
    if bundle.chats:
        imported = load_conversations(bundle.chats)
        problems.extend(f"{KNOWLEDGE_DIR}/{bundle.chats.name}: {p}" for p in imported.problems)
        bundle.sources |= {
            f"chat:{c.conversation_id}" for c in imported.conversations if c.status == "resolved"
        }
    if not bundle.sources:
        problems.append(f"{KNOWLEDGE_DIR}/: no knowledge (faq, quick_replies, docs/ or chats)")
    rows = read_queries(root / QUERIES_FILE, problems)
    bundle.queries = parse_queries(rows, bundle.sources, f"{KNOWLEDGE_DIR}/", problems)
    if problems:
        raise DatasetError(root, problems)
    return bundle
