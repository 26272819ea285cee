"""The questions handed off because the knowledge could not answer them, kept for the gap report only.

A row holds the redacted search question (never the raw message), the handoff reason, the guarded
conversation id and the time; rows go with their tenant, with their conversation's erasure and after
the tenant's retention period (`prune`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from ingestion.registry import Registry
from ingestion.registry_models import Base, UTCDateTime, _tenant_fk, utcnow

from .gaps import GapQuestion

# The handoff reasons that mean "the knowledge could have answered and did not".
GAP_REASONS = frozenset({"no_knowledge", "low_confidence"})
MAX_QUESTION_CHARS = 500


class GapQuestionRow(Base):
    __tablename__ = "gap_questions"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    tenant_id: Mapped[str] = _tenant_fk()
    conversation_id: Mapped[str] = mapped_column(String(200))
    question: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_gap_questions_tenant_created", "tenant_id", "created_at"),)


class GapLog:
    """Store and read a tenant's gap questions in the registry's database."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        GapQuestionRow.__table__.create(bind=registry._engine, checkfirst=True)  # type: ignore[attr-defined]

    def record(self, tenant_id: str, conversation_id: str, question: str, reason: str) -> bool:
        """Store one handed-off question (already redacted); False when the reason is not a gap's or the
        same conversation asked the same question already."""
        question = question.strip()[:MAX_QUESTION_CHARS]
        if reason not in GAP_REASONS or not question:
            return False
        guarded = self.registry.ids.id(conversation_id)
        with self.registry._transaction() as session:
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
        with self.registry._transaction(write=False) as session:
            rows = session.scalars(query).all()
        return [GapQuestion(r.question, r.reason, r.created_at, r.conversation_id) for r in rows]

    def forget(self, tenant_id: str, questions: Sequence[str]) -> int:
        """Delete the tenant's rows holding these question texts (a gap that was written up); return how many."""
        if not questions:
            return 0
        with self.registry._transaction() as session:
            result = session.execute(
                delete(GapQuestionRow).where(
                    GapQuestionRow.tenant_id == tenant_id, GapQuestionRow.question.in_(list(questions))
                )
            )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def forget_conversation(self, tenant_id: str, conversation_id: str) -> int:
        """Delete a conversation's gap questions (its erasure); return how many."""
        guarded = self.registry.ids.id(conversation_id)
        with self.registry._transaction() as session:
            result = session.execute(
                delete(GapQuestionRow).where(
                    GapQuestionRow.tenant_id == tenant_id, GapQuestionRow.conversation_id == guarded
                )
            )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def prune(self, before: datetime, tenant_id: str | None = None) -> int:
        """Delete the rows older than `before` (one tenant's, or every tenant's); return how many."""
        query = delete(GapQuestionRow).where(GapQuestionRow.created_at < before)
        if tenant_id is not None:
            query = query.where(GapQuestionRow.tenant_id == tenant_id)
        with self.registry._transaction() as session:
            result = session.execute(query)
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
