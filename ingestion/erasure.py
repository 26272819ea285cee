"""Erasure (KVKK, the right to be forgotten): a document, a conversation, a customer's data by phone
number or e-mail address, a whole tenant.

Each erasure removes the registry rows (no tombstone; SQLite overwrites deleted rows and its log is
checkpointed), the chunks from the index and then rewrites the index (`compact`): deleted points
otherwise stay in the engine's segments and write-ahead log. Ids are
guarded (ingestion.pseudonym) and text is redacted before anything is stored, so the raw phone number,
e-mail or TCKN was never written; erasure takes away what is left of the person: the redacted text,
names the detectors do not know, and the links.

A customer is found through the keyed hashes of the personal values seen at ingestion
(`pii_subjects`): a document whose id or title carries the value and a chat in which it was written go
entirely, with the conversation's suggestions, feedback and audit entries; another document that merely
mentioned it keeps its (already redacted) text and loses the link.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from retrieval.models import Chunk, SearchHit

from .pipeline import Ingestor
from .pseudonym import IdGuard
from .redact import EMAIL, IBAN, PHONE, TCKN, is_valid_tckn

CHAT_PREFIX = "chat:"


@dataclass
class ErasureResult:
    """What an erasure removed: guarded document and conversation ids, suggestions, live index points."""

    documents: list[str] = field(default_factory=list)
    conversations: list[str] = field(default_factory=list)
    suggestions: int = 0
    index_points: int = 0

    @property
    def found(self) -> bool:
        return bool(self.documents or self.conversations or self.suggestions)

    @classmethod
    def merged(cls, results: list[ErasureResult]) -> ErasureResult:
        """Return one result for several erasures (the index count is the last one's)."""
        return cls(
            documents=sorted({d for r in results for d in r.documents}),
            conversations=sorted({c for r in results for c in r.conversations}),
            suggestions=sum(r.suggestions for r in results),
            index_points=results[-1].index_points if results else 0,
        )


def subject_kind(value: str) -> str:
    """Return the kind of personal value a customer named: e-mail, TCKN, IBAN or phone number."""
    compact = "".join(value.split())
    if "@" in compact:
        return EMAIL
    if compact[:2].isalpha():
        return IBAN
    if is_valid_tckn(compact):
        return TCKN
    digits = "".join(ch for ch in compact if ch.isdecimal())
    if len(digits) < 7:
        raise ValueError(f"{value!r} is not a phone number, e-mail address, TCKN or IBAN")
    return PHONE


class Eraser:
    """Runs erasures on one ingestor (its index and registry) and the uploads folder."""

    def __init__(
        self,
        ingestor: Ingestor,
        uploads_dir: Path | None = None,
        learned_doc_id: Callable[[str], str] | None = None,
    ) -> None:
        """`learned_doc_id` names the knowledge document learned from a suggestion's feedback."""
        self.ingestor = ingestor
        self.index = ingestor.index
        self.registry = ingestor.registry
        self.ids = ingestor.registry.ids
        self.uploads_dir = uploads_dir
        self.learned_doc_id = learned_doc_id

    def document(self, tenant_id: str, doc_id: str) -> ErasureResult | None:
        """Erase one document (by the id the tenant gave or the guarded one); None if there is none."""
        result = ErasureResult()
        if not self._drop_document(tenant_id, doc_id, result):
            return None
        return self._finish(tenant_id, result)

    def conversation(self, tenant_id: str, conversation_id: str) -> ErasureResult:
        """Erase a conversation: its chat document, suggestions, feedback, learned replies and audit."""
        result = ErasureResult()
        self._drop_conversation(tenant_id, conversation_id, result)
        self._drop_document(tenant_id, CHAT_PREFIX + conversation_id, result)
        return self._finish(tenant_id, result)

    def subject(self, tenant_id: str, value: str) -> ErasureResult:
        """Erase a customer's data by phone number, e-mail address, TCKN or IBAN (see the module)."""
        key = self.ids.subject_key(subject_kind(value), value)
        result = ErasureResult()
        for kind, ref, in_id in self.registry.subject_refs(tenant_id, key):
            if kind == "conversation":
                self._drop_conversation(tenant_id, ref, result)
            elif in_id or ref.startswith(CHAT_PREFIX):
                self._drop_document(tenant_id, ref, result)
        self.registry.unlink_subject(tenant_id, key)
        return self._finish(tenant_id, result)

    def tenant(self, tenant_id: str) -> bool:
        """Erase a whole tenant: index points, registry rows, uploads; False if there is no such tenant."""
        if self.registry.get_tenant(tenant_id) is None:
            return False
        self.index.delete_tenant(tenant_id)
        self.registry.delete_tenant(tenant_id)
        if self.uploads_dir is not None:
            shutil.rmtree(self.uploads_dir / tenant_id, ignore_errors=True)
        self.index.compact()
        self.registry.checkpoint()
        return True

    def guard_stored_ids(self) -> tuple[int, int]:
        """Rewrite what a release before guarded ids stored raw: index points are written again under the
        guarded document id (and conversation id), the registry's rows re-keyed, then the index rewritten
        so the raw ids leave its files. Return (index points rewritten, registry rows changed).
        Safe to run again, also after an interruption: it starts from what the index still holds."""
        moved = 0
        for tenant in self.registry.list_tenants():
            stale: dict[str, list[SearchHit]] = {}
            for hit in self.index.chunks(tenant.id):
                conversation = hit.metadata.get("conversation_id")
                if self.ids.id(hit.doc_id) != hit.doc_id or (
                    isinstance(conversation, str) and self.ids.id(conversation) != conversation
                ):
                    stale.setdefault(hit.doc_id, []).append(hit)
            for doc_id, hits in stale.items():
                chunks = [_guarded_chunk(h, self.ids) for h in hits]
                self.index.upsert(chunks)
                if chunks[0].doc_id != doc_id:
                    self.index.delete_document(tenant.id, doc_id)
                moved += len(chunks)
        changed = self.registry.guard_stored_ids()
        if moved or changed:
            self.index.compact()
            self.registry.checkpoint()
        return moved, changed

    def _drop_document(self, tenant_id: str, doc_id: str, result: ErasureResult) -> bool:
        doc = self.registry.get_document(tenant_id, doc_id)
        if doc is None:
            return False
        self.index.delete_document(tenant_id, doc.doc_id)
        self.registry.forget_document(tenant_id, doc.doc_id)
        result.documents.append(doc.doc_id)
        return True

    def _drop_conversation(self, tenant_id: str, conversation_id: str, result: ErasureResult) -> None:
        suggestion_ids, audit_entries = self.registry.erase_conversation(tenant_id, conversation_id)
        result.suggestions += len(suggestion_ids)
        if suggestion_ids or audit_entries:
            result.conversations.append(self.ids.id(conversation_id))
        if self.learned_doc_id is not None:
            for suggestion_id in suggestion_ids:
                self._drop_document(tenant_id, self.learned_doc_id(suggestion_id), result)

    def _finish(self, tenant_id: str, result: ErasureResult) -> ErasureResult:
        if result.documents:
            self.ingestor.changed(tenant_id)
        result.index_points = self.index.compact()
        self.registry.checkpoint()
        return result


def _guarded_chunk(hit: SearchHit, ids: IdGuard) -> Chunk:
    metadata = dict(hit.metadata)
    if isinstance(metadata.get("conversation_id"), str):
        metadata["conversation_id"] = ids.id(metadata["conversation_id"])
    return Chunk(
        tenant_id=hit.tenant_id,
        doc_id=ids.id(hit.doc_id),
        chunk_id=hit.chunk_id,
        text=hit.text,
        source=hit.source,  # type: ignore[arg-type]
        title=ids.text(hit.title) or "",
        section=ids.text(hit.section) or "",
        metadata=metadata,
    )
