"""The questions handed off because the knowledge could not answer them, kept for the gap report only.

A row (`ingestion.registry_models.GapQuestionRow`) holds the redacted search question (never the raw
message), the handoff reason, the guarded conversation id and the time; rows go with their tenant, with
their conversation's erasure (`Registry.erase_conversation`) and after the tenant's retention period
(`prune`, run by assist.retention).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select

from ingestion.registry import Registry
from ingestion.registry_models import GapQuestionRow, utcnow

from .gaps import GapQuestion

# The handoff reasons that mean "the knowledge could have answered and did not".
GAP_REASONS = frozenset({"no_knowledge", "low_confidence"})
MAX_QUESTION_CHARS = 500


class GapLog:
    """Store and read a tenant's gap questions in the registry's database."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def record(self, tenant_id: str, conversation_id: str, question: str, reason: str) -> bool:
        """Store one handed-off question (already redacted); False when the reason is not a gap's or the
        same conversation asked the same question already."""
        question = question.strip()[:MAX_QUESTION_CHARS]
        if reason not in GAP_REASONS or not question:
            return False
        guarded = self.registry.ids.id(conversation_id)
        with self.registry.transaction() as session:
            same = session.scalar(
                select(GapQuestionRow.id).where(
                    GapQuestionRow.tenant_id == tenant_id,
                    GapQuestionRow.conversation_id == guarded,
                    GapQuestionRow.question == question,
                )
            )
            if same is not None:
                return False
            session.add(
                GapQuestionRow(
                    tenant_id=tenant_id,
                    conversation_id=guarded,
                    question=question,
                    reason=reason,
                    created_at=utcnow(),
                )
            )
        return True

    def questions(
        self, tenant_id: str, since: datetime | None = None, limit: int = 2000
    ) -> list[GapQuestion]:
        """Return the tenant's gap questions asked since `since` (all kept ones without), newest first."""
        query = select(GapQuestionRow).where(GapQuestionRow.tenant_id == tenant_id)
        if since is not None:
            query = query.where(GapQuestionRow.created_at >= since)
        query = query.order_by(GapQuestionRow.created_at.desc(), GapQuestionRow.id.desc()).limit(limit)
        with self.registry.transaction(write=False) as session:
            rows = session.scalars(query).all()
        return [GapQuestion(r.question, r.reason, r.created_at, r.conversation_id) for r in rows]

    def forget(self, tenant_id: str, questions: Sequence[str]) -> int:
        """Delete the tenant's rows holding these question texts (a gap that was written up); return how many."""
        if not questions:
            return 0
        with self.registry.transaction() as session:
            result = session.execute(
                delete(GapQuestionRow).where(
                    GapQuestionRow.tenant_id == tenant_id, GapQuestionRow.question.in_(list(questions))
                )
            )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def prune(self, before: datetime, tenant_id: str | None = None) -> int:
        """Delete the rows older than `before` (one tenant's, or every tenant's); return how many."""
        query = delete(GapQuestionRow).where(GapQuestionRow.created_at < before)
        if tenant_id is not None:
            query = query.where(GapQuestionRow.tenant_id == tenant_id)
        with self.registry.transaction() as session:
            result = session.execute(query)
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
