"""The registry's data model: tenant settings, the frozen records callers get, and the ORM tables behind them.

Only portable types (String, Integer, Float, Text, JSON, timezone-aware DateTime) so the same
schema runs on SQLite and PostgreSQL. Every tenant-owned row cascades when its tenant goes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from ingestion.redact import ExtraPattern, Redactor
from ingestion.screening import normalise_domain

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

# The schema version the registry wrote into schema_version before its schema moved to Alembic migrations
# (ingestion/migrations): frozen. A table that changes shape now gets a new revision in migrations/versions.
SCHEMA_VERSION = 3

Tone = Literal["siz", "sen"]
DocumentSource = Literal["doc", "faq", "chat", "quick_reply"]
DocumentStatus = Literal["pending", "indexed", "failed", "deleted"]
JobKind = Literal["files", "faq", "quick_replies", "chats"]
JobStatus = Literal["queued", "running", "succeeded", "partial", "failed"]
JobFileStatus = Literal["pending", "indexed", "skipped", "failed"]
FeedbackAction = Literal["accepted", "edited", "rejected"]
AuditKind = Literal["suggest", "resolve"]


def utcnow() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("registry timestamps must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --- Tenant settings ---


class PiiPattern(BaseModel):
    """A tenant's own kind of personal data, redacted as [NAME] (see ingestion.redact.ExtraPattern)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    regex: str


_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def check_callback_url(url: str) -> str:
    """Return `url` if job callbacks may be sent to it: https, or http to this machine (tests, local runs)."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if not host or parts.scheme not in ("https", "http"):
        raise ValueError(f"callback URL {url!r} must be an absolute https:// URL")
    if parts.scheme == "http" and host not in _LOCAL_HOSTS:
        raise ValueError(
            f"callback URL {url!r} must use https (http only for localhost or 127.0.0.1): the callback carries "
            "the job's outcome and its signature"
        )
    if parts.username or parts.password:
        raise ValueError("callback URL must not carry a user name or password; it is signed instead")
    return url.strip()


_DOMAIN_RE = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z][a-z0-9-]*[a-z0-9]")


class TenantSettings(BaseModel):
    """Per-tenant behaviour; unknown keys are rejected so a typo never silently does nothing."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tone: Tone = "siz"
    language: str = Field(default="tr", pattern=r"^[a-z]{2}$")
    # Named thresholds for auto-resolution (e.g. {"min_confidence": 0.8}); assist/ owns the names
    # and falls back to its own defaults for any that are missing.
    resolve_thresholds: dict[str, float] = Field(default_factory=dict)
    pii_patterns: tuple[PiiPattern, ...] = ()
    # The tenant's own public values (company IBAN, call-centre number) that redaction keeps.
    pii_allowed: tuple[str, ...] = ()
    # The tenant's own web domains ("evimmarket.com.tr", subdomains included): a link in its knowledge to
    # any other domain is flagged at ingestion (see ingestion.screening).
    own_domains: tuple[str, ...] = ()
    # Days the tenant's audit entries and suggestions are kept (KVKK: no longer than needed); older ones
    # are pruned in the background (assist.retention). A reply that was learned stays as knowledge.
    retention_days: int = Field(default=180, ge=1, le=3650)
    # Where a finished ingestion job is announced (POST, signed with the tenant's webhook secret when it has
    # one; see api/callbacks.py): https, or http to localhost only. None: no callback.
    callback_url: str | None = Field(default=None, max_length=2000)

    @field_validator("callback_url")
    @classmethod
    def _callback_url_is_https(cls, value: str | None) -> str | None:
        return None if value is None else check_callback_url(value)

    @field_validator("resolve_thresholds")
    @classmethod
    def _thresholds_in_range(cls, value: dict[str, float]) -> dict[str, float]:
        for name, threshold in value.items():
            if not 0.0 <= threshold <= 1.0:
                raise ValueError(f"resolve threshold {name!r} must be between 0 and 1, got {threshold}")
        return value

    @field_validator("pii_patterns")
    @classmethod
    def _patterns_compile(cls, value: tuple[PiiPattern, ...]) -> tuple[PiiPattern, ...]:
        # Fail when the setting is saved, not later in the middle of an ingestion job.
        Redactor([ExtraPattern(p.name, p.regex) for p in value])
        return value

    @field_validator("own_domains")
    @classmethod
    def _domains_are_hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        domains = tuple(dict.fromkeys(normalise_domain(d) for d in value))
        for domain in domains:
            if not _DOMAIN_RE.fullmatch(domain):
                raise ValueError(f"own domain {domain!r} is not a domain name like 'example.com.tr'")
        return domains

    def extra_patterns(self) -> list[ExtraPattern]:
        """Return the tenant's PII patterns in the form ingestion.redact.Redactor takes."""
        return [ExtraPattern(p.name, p.regex) for p in self.pii_patterns]


# --- Records returned to callers ---


@dataclass(frozen=True)
class WebhookSecrets:
    """A tenant's webhook signing secrets: the current one and, for a grace period after a rotation, the one
    before it (both verify incoming webhooks; callbacks are signed with the current one). Never shown."""

    current: str = field(repr=False)
    created_at: datetime
    previous: str | None = field(default=None, repr=False)
    previous_valid_until: datetime | None = None

    def valid(self, now: datetime) -> list[str]:
        """Return the secrets an incoming signature may be made with at `now`, the current one first."""
        keep = self.previous and self.previous_valid_until and now < self.previous_valid_until
        return [self.current, self.previous] if keep and self.previous else [self.current]


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str
    settings: TenantSettings
    created_at: datetime
    webhook: WebhookSecrets | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ServiceKeyInfo:
    """A service key as shown to admins (never the key): a backend acting for several tenants, each request
    naming one in X-Invekto-Tenant. `tenants` None: it may act for every tenant."""

    id: str
    name: str
    key_prefix: str
    tenants: tuple[str, ...] | None
    created_at: datetime
    revoked_at: datetime | None

    def may_act_for(self, tenant_id: str) -> bool:
        return self.tenants is None or tenant_id in self.tenants


@dataclass(frozen=True)
class ApiKeyInfo:
    """An API key as shown to admins: never the key itself, only a display prefix."""

    id: str
    tenant_id: str
    name: str
    key_prefix: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True)
class Document:
    """A tenant document. While `status` is "pending", `version`/`content_hash` describe the attempt in
    flight and `indexed_version` the one still live in the index (None if nothing is)."""

    tenant_id: str
    doc_id: str
    source: DocumentSource
    source_uri: str | None
    title: str | None
    content_hash: str
    version: int
    indexed_version: int | None
    status: DocumentStatus
    chunk_count: int
    error: str | None
    created_at: datetime
    updated_at: datetime
    # Chunks of the live version flagged at ingestion, per reason code (ingestion.screening.FLAG_REASONS).
    flag_reasons: dict[str, int]

    @property
    def flagged_chunks(self) -> int:
        """Return how many chunks of the live version must never be sent to a customer automatically."""
        return sum(self.flag_reasons.values())


@dataclass(frozen=True)
class DocumentDecision:
    """What to do with an incoming document: "skip" (already indexed with this content) or "index" `version`."""

    action: Literal["index", "skip"]
    doc_id: str
    version: int
    # The version live in the index right now, whose chunks the new version replaces.
    indexed_version: int | None


@dataclass(frozen=True)
class JobFile:
    name: str
    status: JobFileStatus
    doc_id: str | None
    chunks: int
    error: str | None


@dataclass(frozen=True)
class Job:
    id: str
    tenant_id: str
    kind: JobKind
    status: JobStatus
    files_total: int
    files_done: int  # indexed or skipped
    files_failed: int
    chunks_written: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    idempotency_key: str | None
    files: tuple[JobFile, ...]


@dataclass(frozen=True)
class Suggestion:
    id: str
    tenant_id: str
    conversation_id: str
    text: str
    strategy: str
    confidence: float | None
    citations: list[dict[str, Any]]
    created_at: datetime


@dataclass(frozen=True)
class Feedback:
    id: str
    tenant_id: str
    suggestion_id: str
    action: FeedbackAction
    final_text: str | None
    created_at: datetime


@dataclass(frozen=True)
class AuditEntry:
    id: int
    tenant_id: str
    conversation_id: str
    kind: AuditKind
    retrieved_ids: list[str]
    provider: str | None
    decision: str
    reason: str | None
    confidence: float | None
    latency_ms: int | None
    created_at: datetime


# --- ORM tables ---


class Base(DeclarativeBase):
    pass


def _tenant_fk() -> Mapped[str]:
    return mapped_column(String(64), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False)


class SchemaVersionRow(Base):
    __tablename__ = "schema_version"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)


class TenantRow(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    webhook: Mapped[WebhookSecretRow | None] = relationship(
        lazy="select", cascade="all, delete-orphan", passive_deletes=True
    )


class WebhookSecretRow(Base):
    """A tenant's webhook signing secret (kept in plain text: signing needs it), and the previous one while
    its grace period after a rotation lasts."""

    __tablename__ = "webhook_secrets"

    tenant_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ServiceKeyRow(Base):
    """A key not bound to one tenant: the CRM backend's, acting for the tenants it lists (NULL: all)."""

    __tablename__ = "service_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    key_prefix: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    tenants: Mapped[list[str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    name: Mapped[str] = mapped_column(String(200))
    key_prefix: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_api_keys_tenant", "tenant_id"),)


class DocumentRow(Base):
    __tablename__ = "documents"

    tenant_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    doc_id: Mapped[str] = mapped_column(String(1024), primary_key=True)
    source: Mapped[str] = mapped_column(String(20))
    source_uri: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    # The version (and its hash) live in the index, kept apart so a failed update can fall back to it.
    indexed_version: Mapped[int | None] = mapped_column(Integer)
    indexed_hash: Mapped[str | None] = mapped_column(String(128))
    # Flagged chunks of the indexed version per reason; the default also fills rows migrated from version 1.
    flag_reasons: Mapped[dict[str, int]] = mapped_column(JSON, default=dict, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (Index("ix_documents_tenant_status", "tenant_id", "status"),)


class JobRow(Base):
    __tablename__ = "ingestion_jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(16))
    files_total: Mapped[int] = mapped_column(Integer, default=0)
    files_done: Mapped[int] = mapped_column(Integer, default=0)
    files_failed: Mapped[int] = mapped_column(Integer, default=0)
    chunks_written: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    # NULLs never collide in a unique constraint (SQLite and PostgreSQL), so keyless jobs are fine.
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    files: Mapped[list[JobFileRow]] = relationship(
        order_by="JobFileRow.position", cascade="all, delete-orphan", passive_deletes=True
    )

    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_ingestion_jobs_idempotency"),
        Index("ix_ingestion_jobs_tenant_created", "tenant_id", "created_at"),
        Index("ix_ingestion_jobs_status", "status"),
    )


class JobFileRow(Base):
    __tablename__ = "job_files"

    job_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("ingestion_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(1024), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    doc_id: Mapped[str | None] = mapped_column(String(1024))
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)


class SuggestionRow(Base):
    __tablename__ = "suggestions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    conversation_id: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    strategy: Mapped[str] = mapped_column(String(50))
    confidence: Mapped[float | None] = mapped_column(Float)
    citations: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_suggestions_tenant_conversation", "tenant_id", "conversation_id"),)


class FeedbackRow(Base):
    __tablename__ = "feedback"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = _tenant_fk()
    suggestion_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("suggestions.id", ondelete="CASCADE"), index=True
    )
    action: Mapped[str] = mapped_column(String(16))
    final_text: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_feedback_tenant_created", "tenant_id", "created_at"),)


class GapQuestionRow(Base):
    """A customer question handed off because the knowledge could not answer it (redacted), kept for the
    tenant's gap report (assist.gap_log); it goes with its conversation's erasure and after retention."""

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


class AuditRow(Base):
    __tablename__ = "audit_log"

    # SQLite only auto-increments an INTEGER PRIMARY KEY, PostgreSQL gets a 64-bit identity.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    tenant_id: Mapped[str] = _tenant_fk()
    conversation_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    retrieved_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    provider: Mapped[str | None] = mapped_column(String(50))
    decision: Mapped[str] = mapped_column(String(50))
    reason: Mapped[str | None] = mapped_column(String(200))
    confidence: Mapped[float | None] = mapped_column(Float)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_audit_log_tenant_id", "tenant_id", "id"),)


class PiiSubjectRow(Base):
    """A personal value (its keyed hash, never the value) found in a document or a conversation: what
    erasure by phone or e-mail follows. `ref` is the guarded document or conversation id."""

    __tablename__ = "pii_subjects"

    tenant_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    ref: Mapped[str] = mapped_column(String(1024), primary_key=True)
    in_id: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (Index("ix_pii_subjects_ref", "tenant_id", "kind", "ref"),)


RecordT = TypeVar("RecordT", bound="DataclassInstance")


def to_record(record_type: type[RecordT], row: Base, **overrides: Any) -> RecordT:
    """Return `row` as a `record_type`, copying the same-named attributes unless given in `overrides`."""
    values = {f.name: getattr(row, f.name) for f in fields(record_type) if f.name not in overrides}
    return record_type(**values, **overrides)
