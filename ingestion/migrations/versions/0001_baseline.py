"""Baseline: the registry's schema as it was when migrations came in (its own schema version 3).

It also finishes a database written before Alembic at an older schema version (1: documents without
flag_reasons; 2: no pii_subjects table): tables that exist are kept, missing ones and the missing column
are added. A database already at version 3 is stamped with this revision instead (ingestion.migrations).

Revision ID: 0001_baseline
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None

# The schema version the pre-Alembic code wrote into schema_version; that table stays at it.
LEGACY_SCHEMA_VERSION = 3


def _timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _big_id() -> sa.types.TypeEngine:
    # SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit serial.
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _tenant_fk(primary_key: bool = False) -> sa.Column:
    return sa.Column(
        "tenant_id",
        sa.String(64),
        sa.ForeignKey("tenants.id", ondelete="CASCADE"),
        nullable=False,
        primary_key=primary_key,
    )


def _schema_version() -> None:
    op.create_table(
        "schema_version", sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False)
    )


def _tenants() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
    )


def _api_keys() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(36), primary_key=True),
        _tenant_fk(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("key_prefix", sa.String(100), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("revoked_at", _timestamp(), nullable=True),
    )
    op.create_index("ix_api_keys_tenant", "api_keys", ["tenant_id"])


def _documents() -> None:
    op.create_table(
        "documents",
        _tenant_fk(primary_key=True),
        sa.Column("doc_id", sa.String(1024), primary_key=True),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("source_uri", sa.Text(), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("content_hash", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("indexed_version", sa.Integer(), nullable=True),
        sa.Column("indexed_hash", sa.String(128), nullable=True),
        _flag_reasons(),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("updated_at", _timestamp(), nullable=False),
    )
    op.create_index("ix_documents_tenant_status", "documents", ["tenant_id", "status"])


def _flag_reasons() -> sa.Column:
    return sa.Column("flag_reasons", sa.JSON(), nullable=False, server_default="{}")


def _ingestion_jobs() -> None:
    op.create_table(
        "ingestion_jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        _tenant_fk(),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("files_total", sa.Integer(), nullable=False),
        sa.Column("files_done", sa.Integer(), nullable=False),
        sa.Column("files_failed", sa.Integer(), nullable=False),
        sa.Column("chunks_written", sa.Integer(), nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("started_at", _timestamp(), nullable=True),
        sa.Column("finished_at", _timestamp(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.UniqueConstraint("tenant_id", "idempotency_key", name="uq_ingestion_jobs_idempotency"),
    )
    op.create_index("ix_ingestion_jobs_tenant_created", "ingestion_jobs", ["tenant_id", "created_at"])
    op.create_index("ix_ingestion_jobs_status", "ingestion_jobs", ["status"])


def _job_files() -> None:
    op.create_table(
        "job_files",
        sa.Column(
            "job_id", sa.String(36), sa.ForeignKey("ingestion_jobs.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("name", sa.String(1024), primary_key=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("doc_id", sa.String(1024), nullable=True),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
    )


def _suggestions() -> None:
    op.create_table(
        "suggestions",
        sa.Column("id", sa.String(36), primary_key=True),
        _tenant_fk(),
        sa.Column("conversation_id", sa.String(200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("strategy", sa.String(50), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("citations", sa.JSON(), nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
    )
    op.create_index("ix_suggestions_tenant_conversation", "suggestions", ["tenant_id", "conversation_id"])


def _feedback() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", sa.String(36), primary_key=True),
        _tenant_fk(),
        sa.Column(
            "suggestion_id",
            sa.String(36),
            sa.ForeignKey("suggestions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("final_text", sa.Text(), nullable=True),
        sa.Column("created_at", _timestamp(), nullable=False),
    )
    op.create_index("ix_feedback_suggestion_id", "feedback", ["suggestion_id"])
    op.create_index("ix_feedback_tenant_created", "feedback", ["tenant_id", "created_at"])


def _gap_questions() -> None:
    op.create_table(
        "gap_questions",
        sa.Column("id", _big_id(), primary_key=True, autoincrement=True),
        _tenant_fk(),
        sa.Column("conversation_id", sa.String(200), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("reason", sa.String(50), nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
    )
    op.create_index("ix_gap_questions_tenant_created", "gap_questions", ["tenant_id", "created_at"])


def _audit_log() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", _big_id(), primary_key=True, autoincrement=True),
        _tenant_fk(),
        sa.Column("conversation_id", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("retrieved_ids", sa.JSON(), nullable=False),
        sa.Column("provider", sa.String(50), nullable=True),
        sa.Column("decision", sa.String(50), nullable=False),
        sa.Column("reason", sa.String(200), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("created_at", _timestamp(), nullable=False),
    )
    op.create_index("ix_audit_log_tenant_id", "audit_log", ["tenant_id", "id"])


def _pii_subjects() -> None:
    op.create_table(
        "pii_subjects",
        _tenant_fk(primary_key=True),
        sa.Column("subject", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("ref", sa.String(1024), primary_key=True),
        sa.Column("in_id", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_pii_subjects_ref", "pii_subjects", ["tenant_id", "kind", "ref"])


# In the order their foreign keys need.
_TABLES: dict[str, Callable[[], None]] = {
    "schema_version": _schema_version,
    "tenants": _tenants,
    "api_keys": _api_keys,
    "documents": _documents,
    "ingestion_jobs": _ingestion_jobs,
    "job_files": _job_files,
    "suggestions": _suggestions,
    "feedback": _feedback,
    "gap_questions": _gap_questions,
    "audit_log": _audit_log,
    "pii_subjects": _pii_subjects,
}


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    existing = set(inspector.get_table_names())
    for name, create in _TABLES.items():
        if name not in existing:
            create()
    if "documents" in existing and "flag_reasons" not in {
        c["name"] for c in inspector.get_columns("documents")
    }:
        op.add_column("documents", _flag_reasons())  # a version 1 database
    version = sa.table("schema_version", sa.column("version", sa.Integer()))
    op.execute(version.delete())
    op.bulk_insert(version, [{"version": LEGACY_SCHEMA_VERSION}])


def downgrade() -> None:
    for name in reversed(_TABLES):
        op.drop_table(name)
