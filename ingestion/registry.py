"""The registry: tenants and API keys, documents, ingestion jobs, and the links between personal data
and the records that hold it (for erasure), on one database (`registry_db`).

`Registry(settings.registry_url)` works on a SQLite file (the default) or PostgreSQL. Each method runs
its own short transaction and returns frozen records, never ORM objects, so no caller holds a session.
The aggregates live in their own modules (`registry_tenants`; `registry_documents`: documents and jobs);
assist's records (suggestions, feedback, audit, gap questions) are in `assist.records` and
`assist.gap_log`, on the same database.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    delete,
    select,
    update,
)
from sqlalchemy.orm import Session

from ingestion.pseudonym import IdGuard
from ingestion.registry_models import (
    ApiKeyInfo,
    AuditEntry,
    AuditRow,
    Document,
    DocumentDecision,
    DocumentRow,
    Feedback,
    FeedbackRow,
    GapQuestionRow,
    Job,
    JobFile,
    JobFileRow,
    PiiSubjectRow,
    Suggestion,
    SuggestionRow,
    Tenant,
    TenantSettings,
)

from .registry_db import RegistryDatabase, drop_subject_links, engine_url, retry_once_on_conflict
from .registry_documents import DocumentRecords
from .registry_tenants import TenantExistsError, TenantRecords

__all__ = [
    "ApiKeyInfo",
    "AuditEntry",
    "Document",
    "DocumentDecision",
    "Feedback",
    "Job",
    "JobFile",
    "Registry",
    "RegistryDatabase",
    "Suggestion",
    "Tenant",
    "TenantExistsError",
    "TenantSettings",
    "engine_url",
]


class Registry(TenantRecords, DocumentRecords):
    """The registry database for one service: open it once and share it between threads."""

    # --- Personal data links and erasure ---

    def link_conversation(self, tenant_id: str, conversation_id: str) -> None:
        """Link a conversation id that carries personal data (its guarded form differs) to its subjects, so
        erasing the subject finds the records stored under the conversation."""
        guarded = self.ids.id(conversation_id)
        if guarded == conversation_id:
            return
        links = [("conversation", guarded, key, True) for key in self.ids.subject_keys([conversation_id])]

        def attempt() -> None:
            with self.transaction() as session:
                self._add_links(session, tenant_id, links)

        # The first messages of a conversation often come at once: on PostgreSQL two requests may both find
        # no link and insert it, and the second loses (SQLite's writers queue, BEGIN IMMEDIATE).
        retry_once_on_conflict(attempt)

    def link_subjects(
        self, tenant_id: str, refs: Sequence[str], links: Sequence[tuple[str, str, str, bool]]
    ) -> None:
        """Replace the subject links of the documents `refs` (guarded ids) with `links`, each
        (kind, guarded ref, subject key, in_id), e.g. ingestion.pipeline.SubjectLink."""
        with self.transaction() as session:
            drop_subject_links(session, tenant_id, "document", refs)
            self._add_links(session, tenant_id, links)

    @staticmethod
    def _add_links(session: Session, tenant_id: str, links: Sequence[tuple[str, str, str, bool]]) -> None:
        for kind, ref, subject, in_id in links:
            session.merge(
                PiiSubjectRow(tenant_id=tenant_id, kind=kind, ref=ref, subject=subject, in_id=in_id)
            )

    def guard_stored_ids(self) -> int:
        """Rewrite ids a release before guarded ids stored raw: documents (id, uri, title), job files (name,
        document id, error), suggestions and audit entries (conversation id). Return the rows changed;
        running it again changes nothing."""
        ids, changed = self.ids, 0
        with self.transaction() as session:
            for row in session.scalars(select(DocumentRow)).all():
                new = (
                    ids.id(row.doc_id),
                    ids.maybe_id(row.source_uri),
                    ids.text(row.title),
                    ids.text(row.error),
                )
                if new != (row.doc_id, row.source_uri, row.title, row.error):
                    session.execute(
                        update(DocumentRow)
                        .where(DocumentRow.tenant_id == row.tenant_id, DocumentRow.doc_id == row.doc_id)
                        .values(doc_id=new[0], source_uri=new[1], title=new[2], error=new[3])
                    )
                    changed += 1
            for file in session.scalars(select(JobFileRow)).all():
                new_file = (ids.id(file.name), ids.maybe_id(file.doc_id), ids.text(file.error))
                if new_file != (file.name, file.doc_id, file.error):
                    session.execute(
                        update(JobFileRow)
                        .where(JobFileRow.job_id == file.job_id, JobFileRow.name == file.name)
                        .values(name=new_file[0], doc_id=new_file[1], error=new_file[2])
                    )
                    changed += 1
            for audit in session.scalars(select(AuditRow)).all():
                retrieved = [_guarded_retrieved(ids, r) for r in audit.retrieved_ids or []]
                if retrieved != list(audit.retrieved_ids or []):
                    session.execute(
                        update(AuditRow).where(AuditRow.id == audit.id).values(retrieved_ids=retrieved)
                    )
                    changed += 1
            for suggestion in session.scalars(select(SuggestionRow)).all():
                citations = [_guarded_citation(ids, c) for c in suggestion.citations or []]
                if citations != list(suggestion.citations or []):
                    session.execute(
                        update(SuggestionRow)
                        .where(SuggestionRow.id == suggestion.id)
                        .values(citations=citations)
                    )
                    changed += 1
            for link in session.scalars(select(PiiSubjectRow)).all():
                if ids.id(link.ref) != link.ref:
                    session.execute(
                        update(PiiSubjectRow)
                        .where(
                            PiiSubjectRow.tenant_id == link.tenant_id,
                            PiiSubjectRow.subject == link.subject,
                            PiiSubjectRow.kind == link.kind,
                            PiiSubjectRow.ref == link.ref,
                        )
                        .values(ref=ids.id(link.ref))
                    )
                    changed += 1
            for table in (SuggestionRow, AuditRow):
                for conversation_id in session.scalars(select(table.conversation_id).distinct()).all():
                    guarded = ids.id(conversation_id)
                    if guarded != conversation_id:
                        result = session.execute(
                            update(table)
                            .where(table.conversation_id == conversation_id)
                            .values(conversation_id=guarded)
                        )
                        changed += int(getattr(result, "rowcount", 0) or 0)
            session.expunge_all()
        return changed

    def subject_refs(self, tenant_id: str, subject: str) -> list[tuple[str, str, bool]]:
        """Return (kind, guarded ref, in_id) of every document and conversation linked to `subject`."""
        with self.transaction(write=False) as session:
            rows = session.execute(
                select(PiiSubjectRow.kind, PiiSubjectRow.ref, PiiSubjectRow.in_id).where(
                    PiiSubjectRow.tenant_id == tenant_id, PiiSubjectRow.subject == subject
                )
            ).all()
        return [(str(kind), str(ref), bool(in_id)) for kind, ref, in_id in rows]

    def unlink_subject(self, tenant_id: str, subject: str) -> None:
        """Forget every link of `subject` (its values are already redacted wherever they were)."""
        with self.transaction() as session:
            session.execute(
                delete(PiiSubjectRow).where(
                    PiiSubjectRow.tenant_id == tenant_id, PiiSubjectRow.subject == subject
                )
            )

    def erase_conversation(self, tenant_id: str, conversation_id: str) -> tuple[list[str], int]:
        """Delete the conversation's audit entries, suggestions, their feedback, gap questions and its subject links;
        return the ids of the suggestions deleted (their learned documents go too, see ingestion.erasure)
        and the number of audit entries deleted."""
        guarded = self.ids.id(conversation_id)
        with self.transaction() as session:
            suggestion_ids = list(
                session.scalars(
                    select(SuggestionRow.id).where(
                        SuggestionRow.tenant_id == tenant_id, SuggestionRow.conversation_id == guarded
                    )
                )
            )
            if suggestion_ids:
                session.execute(delete(FeedbackRow).where(FeedbackRow.suggestion_id.in_(suggestion_ids)))
                session.execute(delete(SuggestionRow).where(SuggestionRow.id.in_(suggestion_ids)))
            audit = session.execute(
                delete(AuditRow).where(AuditRow.tenant_id == tenant_id, AuditRow.conversation_id == guarded)
            )
            session.execute(
                delete(GapQuestionRow).where(
                    GapQuestionRow.tenant_id == tenant_id, GapQuestionRow.conversation_id == guarded
                )
            )
            drop_subject_links(session, tenant_id, "conversation", [guarded])
        return suggestion_ids, int(getattr(audit, "rowcount", 0) or 0)


def _guarded_retrieved(ids: IdGuard, retrieved: str) -> str:
    doc_id, sep, chunk_id = retrieved.rpartition("#")
    return f"{ids.id(doc_id)}#{chunk_id}" if sep else ids.id(retrieved)


def _guarded_citation(ids: IdGuard, citation: Any) -> Any:
    """A stored citation with its document id and reference (`doc:<id>`, a chat's own id) guarded."""
    if not isinstance(citation, dict):
        return citation
    out = dict(citation)
    if isinstance(out.get("doc_id"), str):
        out["doc_id"] = ids.id(out["doc_id"])
    ref = out.get("ref")
    if isinstance(ref, str):
        prefix, sep, rest = ref.partition(":")
        out["ref"] = (
            f"doc:{ids.id(rest)}" if prefix == "doc" and sep else ids.id(ref) if prefix == "chat" else ref
        )
    return out
