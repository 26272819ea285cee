"""Assist's own records in the registry database: the suggestions shown to agents, the agents' feedback,
the audit entry of every suggest and resolve (ids and codes, never message text), and their retention.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Select,
    Table,
    delete,
    func,
    select,
)

from ingestion.registry import Registry
from ingestion.registry_db import WouldWait, check_choice
from ingestion.registry_models import (
    AuditEntry,
    AuditKind,
    AuditRow,
    Feedback,
    FeedbackAction,
    FeedbackRow,
    Suggestion,
    SuggestionRow,
    to_record,
    utcnow,
)

# Feedback whose reply was indexed as knowledge (assist.learning): its suggestion outlives retention.
_LEARNED_ACTIONS = ("accepted", "edited")
_PRUNE_BATCH = 2_000


class AssistRecords:
    """Suggestions, feedback and audit entries of every tenant, in the registry's database."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.ids = registry.ids

    # --- Suggestions and feedback ---

    def record_suggestions(
        self, tenant_id: str, conversation_id: str, suggestions: Sequence[Mapping[str, Any]]
    ) -> list[str]:
        """Return the new suggestion ids, in order; each mapping has "text", "strategy" and optionally
        "confidence" and "citations" (a list of JSON-able dicts). LookupError for an unknown tenant."""
        rows = _suggestion_rows(tenant_id, self.ids.id(conversation_id), suggestions)
        with self.registry.inserting(tenant_id) as connection:
            connection.execute(_SUGGESTIONS_INSERT, rows)
        return [row["id"] for row in rows]

    def get_suggestion(self, tenant_id: str, suggestion_id: str) -> Suggestion | None:
        """Return the tenant's suggestion, or None (also for another tenant's)."""
        with self.registry.transaction(write=False) as session:
            row = session.get(SuggestionRow, suggestion_id)
            return to_record(Suggestion, row) if row and row.tenant_id == tenant_id else None

    def record_feedback(
        self, tenant_id: str, suggestion_id: str, action: FeedbackAction, final_text: str | None = None
    ) -> Feedback:
        """Return the stored feedback; LookupError if the suggestion is unknown or another tenant's."""
        check_choice(action, FeedbackAction, "Feedback action")
        if action == "edited" and not final_text:
            raise ValueError("Feedback 'edited' needs the final text the agent sent")
        with self.registry.transaction() as session:
            suggestion = session.get(SuggestionRow, suggestion_id)
            if suggestion is None or suggestion.tenant_id != tenant_id:
                raise LookupError(f"No suggestion {suggestion_id!r} for tenant {tenant_id!r}")
            row = FeedbackRow(
                id=str(uuid.uuid4()),
                tenant_id=tenant_id,
                suggestion_id=suggestion_id,
                action=action,
                final_text=final_text,
            )
            session.add(row)
            session.flush()
            return to_record(Feedback, row)

    def count_feedback(self, tenant_id: str) -> int:
        """Return how many feedback rows the tenant's agents have given."""
        with self.registry.transaction(write=False) as session:
            query = select(func.count()).select_from(FeedbackRow).where(FeedbackRow.tenant_id == tenant_id)
            return int(session.scalar(query) or 0)

    def feedback_evidence(self, tenant_id: str) -> list[tuple[float, str]]:
        """Return (the suggestion's confidence, the agent's action) for every feedback of the tenant."""
        with self.registry.transaction(write=False) as session:
            rows = session.execute(
                select(SuggestionRow.confidence, FeedbackRow.action)
                .join(SuggestionRow, SuggestionRow.id == FeedbackRow.suggestion_id)
                .where(FeedbackRow.tenant_id == tenant_id)
            ).all()
        return [(float(confidence or 0.0), str(action)) for confidence, action in rows]

    # --- Audit ---

    def record_audit(
        self,
        tenant_id: str,
        conversation_id: str,
        kind: AuditKind,
        *,
        retrieved_ids: Sequence[str],
        decision: str,
        provider: str | None = None,
        reason: str | None = None,
        confidence: float | None = None,
        latency_ms: int | None = None,
        suggestions: Sequence[Mapping[str, Any]] = (),
        wait: bool = True,
    ) -> tuple[int, list[str]]:
        """Return the new audit entry's id and the ids of `suggestions` (see record_suggestions), stored
        in one transaction. Callers pass ids and codes only, never message text (KVKK).

        `wait=False`: raise WouldWait, with nothing stored, instead of waiting for the database (see
        Registry.inserting), or when a conversation id that carries personal data needs its link too.
        """
        check_choice(kind, AuditKind, "Audit kind")
        guarded = self.ids.id(conversation_id)
        if not wait and guarded != conversation_id:
            raise WouldWait("a conversation id with personal data is linked in a second transaction")
        rows = _suggestion_rows(tenant_id, guarded, suggestions)
        audit = {
            "tenant_id": tenant_id,
            "conversation_id": guarded,
            "kind": kind,
            "retrieved_ids": list(retrieved_ids),
            "provider": provider,
            "decision": decision,
            "reason": reason,
            "confidence": confidence,
            "latency_ms": latency_ms,
            "created_at": utcnow(),
        }
        with self.registry.inserting(tenant_id, wait=wait) as connection:
            if rows:
                connection.execute(_SUGGESTIONS_INSERT, rows)
            audit_id = connection.execute(_AUDIT_INSERT, audit).scalar_one()
        self.registry.link_conversation(tenant_id, conversation_id)
        return int(audit_id), [row["id"] for row in rows]

    def list_audit(self, tenant_id: str, limit: int = 100) -> list[AuditEntry]:
        """Return the tenant's most recent audit entries, newest first."""
        with self.registry.transaction(write=False) as session:
            rows = session.scalars(
                select(AuditRow)
                .where(AuditRow.tenant_id == tenant_id)
                .order_by(AuditRow.id.desc())
                .limit(limit)
            )
            return [to_record(AuditEntry, row) for row in rows]

    # --- Retention ---

    def prune_assist_records(self, tenant_id: str, before: datetime) -> tuple[int, int]:
        """Delete the tenant's audit entries and suggestions created before `before`, and the feedback
        on those suggestions; return (audit entries, suggestions) deleted.

        A suggestion whose reply was learned (feedback accepted or edited: it is knowledge now) stays,
        with its feedback. Deletes go in batches, so writers (every suggest records an audit entry)
        never wait long for the lock."""
        learned = select(FeedbackRow.suggestion_id).where(
            FeedbackRow.tenant_id == tenant_id, FeedbackRow.action.in_(_LEARNED_ACTIONS)
        )
        expired_suggestions = select(SuggestionRow.id).where(
            SuggestionRow.tenant_id == tenant_id,
            SuggestionRow.created_at < before,
            SuggestionRow.id.not_in(learned),
        )
        expired_audit = select(AuditRow.id).where(
            AuditRow.tenant_id == tenant_id, AuditRow.created_at < before
        )
        suggestions = audit = 0
        while batch := self._prune_batch(expired_suggestions, SuggestionRow):
            suggestions += batch
        while batch := self._prune_batch(expired_audit, AuditRow):
            audit += batch
        return audit, suggestions

    def _prune_batch(self, expired: Select[Any], table: type[SuggestionRow] | type[AuditRow]) -> int:
        with self.registry.transaction() as session:
            ids = list(session.scalars(expired.limit(_PRUNE_BATCH)))
            if ids and table is SuggestionRow:
                session.execute(delete(FeedbackRow).where(FeedbackRow.suggestion_id.in_(ids)))
            if ids:
                session.execute(delete(table).where(table.id.in_(ids)))
        return len(ids)


# Core statements, built once: the hot path (one suggest) skips the ORM's unit of work and statement caching.
_SUGGESTIONS_INSERT = cast(Table, SuggestionRow.__table__).insert()
_AUDIT = cast(Table, AuditRow.__table__)
_AUDIT_INSERT = _AUDIT.insert().returning(_AUDIT.c.id)


def _suggestion_rows(
    tenant_id: str, conversation_id: str, suggestions: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    now = utcnow()
    return [
        {
            "id": str(uuid.uuid4()),
            "tenant_id": tenant_id,
            "conversation_id": conversation_id,
            "text": _required_text(item, "text"),
            "strategy": _required_text(item, "strategy"),
            "confidence": item.get("confidence"),
            "citations": list(item.get("citations") or []),
            "created_at": now,
        }
        for item in suggestions
    ]


def _required_text(item: Mapping[str, Any], key: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"Every suggestion needs a non-empty {key!r}")
    return value
