"""Request and response models of the HTTP API that are not assist's own (assist.models is used as is)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ingestion.registry_models import (
    DocumentSource,
    DocumentStatus,
    FeedbackAction,
    Job,
    JobFileStatus,
    JobKind,
    JobStatus,
    Tenant,
    TenantSettings,
    WebhookSecrets,
)
from ingestion.screening import FlagReason
from retrieval.index import MAX_QUERY_CHARS
from retrieval.models import SearchResult, Source

# --- Documents and jobs ---


class DocumentOut(BaseModel):
    """A tenant document as the registry knows it."""

    model_config = ConfigDict(from_attributes=True)

    doc_id: str
    source: DocumentSource
    source_uri: str | None
    title: str | None
    status: DocumentStatus
    version: int = Field(description="Version being indexed while pending, else the live one.")
    indexed_version: int | None = Field(description="Version searchable now (None if none is).")
    chunk_count: int
    error: str | None
    created_at: datetime
    updated_at: datetime
    flagged_chunks: int = Field(
        description="Chunks of the live version flagged at ingestion: they address the assistant, ask for "
        "secrets or link to a foreign site. Agents may still see them; they are never sent automatically."
    )
    flag_reasons: dict[FlagReason, int] = Field(
        description="Flagged chunks per reason: assistant_instruction, secret_request, foreign_link "
        "(a link to a domain that is not in the tenant's own_domains setting)."
    )


class ChunkOut(BaseModel):
    """One indexed chunk of a document, as retrieval sees it (personal data already redacted)."""

    model_config = ConfigDict(from_attributes=True)

    chunk_id: str
    title: str
    section: str
    text: str
    source: str
    metadata: dict[str, Any] = Field(
        description='Includes "flagged": "<reason>" on a chunk the assistant never sends on its own.'
    )


class DocumentDetail(DocumentOut):
    chunks: list[ChunkOut] | None = Field(
        default=None, description="The document's chunks, with ?include_chunks=true."
    )


class JobFileOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    status: JobFileStatus
    doc_id: str | None
    chunks: int
    error: str | None = Field(description="Why the file failed, e.g. 'x.pdf: the file is empty (0 bytes)'.")


class JobOut(BaseModel):
    """An ingestion job and its progress; `files` says per file what happened."""

    id: str
    kind: JobKind
    status: JobStatus
    files_total: int
    files_done: int = Field(description="Files indexed or skipped as unchanged.")
    files_failed: int
    chunks_written: int
    progress: float = Field(ge=0.0, le=1.0, description="Share of files processed (done or failed).")
    current: str | None = Field(default=None, description="What the worker is on now, while running.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    idempotency_key: str | None
    files: list[JobFileOut]

    @classmethod
    def of(cls, job: Job, current: str | None = None) -> JobOut:
        processed = job.files_done + job.files_failed
        return cls(
            id=job.id,
            kind=job.kind,
            status=job.status,
            files_total=job.files_total,
            files_done=job.files_done,
            files_failed=job.files_failed,
            chunks_written=job.chunks_written,
            progress=min(1.0, processed / job.files_total) if job.files_total else 1.0,
            current=current if job.status == "running" else None,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            error=job.error,
            idempotency_key=job.idempotency_key,
            files=[JobFileOut.model_validate(f) for f in job.files],
        )


class JobAccepted(JobOut):
    """The job an ingestion request started (or, for a repeated Idempotency-Key, the one it started before)."""

    location: str = Field(description="Where to poll the job: GET this path.")
    replayed: bool = Field(description="True when the Idempotency-Key was used before: no new job was made.")
    problems: list[str] = Field(
        default_factory=list, description="Parts of the input skipped before the job, e.g. bad JSONL lines."
    )


class TextDocumentIn(BaseModel):
    """A document that is already text; its id is the document id (re-sending it replaces the document)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
    text: str = Field(min_length=1, max_length=1_000_000)
    title: str = Field(default="", max_length=500)
    metadata: dict[str, str | int | float | bool] = Field(default_factory=dict)


class TextDocumentsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    documents: list[TextDocumentIn] = Field(min_length=1, max_length=1000)


# --- Conversations ---


class ConversationClosedOut(BaseModel):
    """What the webhook did with a closed conversation."""

    conversation_id: str
    indexed: bool = Field(description="True when a job indexing the conversation was started.")
    note: str
    job: JobAccepted | None = None


# --- Erasure ---


class ErasureRequest(BaseModel):
    """A customer's erasure request: at least one of their phone number, e-mail address, TCKN or IBAN."""

    model_config = ConfigDict(extra="forbid")

    phone: str | None = Field(default=None, max_length=64, examples=["+90 532 634 54 16"])
    email: str | None = Field(default=None, max_length=254, examples=["ahmet.yilmaz@ornek.com.tr"])
    tckn: str | None = Field(default=None, max_length=32)
    iban: str | None = Field(default=None, max_length=64)

    def values(self) -> list[str]:
        return [v for v in (self.phone, self.email, self.tckn, self.iban) if v and v.strip()]


class ErasureOut(BaseModel):
    """What an erasure removed. Ids are the stored (guarded) ones: no personal data in the answer either."""

    documents: list[str] = Field(description="Documents removed entirely (no tombstone).")
    conversations: list[str] = Field(description="Conversations whose suggestions, feedback and audit went.")
    suggestions: int
    index_points: int = Field(description="Points left in the index after it was rewritten without them.")


# --- Search ---


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="Question or customer message.")
    limit: int = Field(default=5, ge=1, le=100)
    sources: list[Source] | None = Field(default=None, description="Only these sources; all when omitted.")


class SearchHitOut(ChunkOut):
    doc_id: str
    score: float


class SearchResponse(BaseModel):
    hits: list[SearchHitOut]
    note: str | None = Field(description="Why the result is empty, when it is.")
    timings_ms: dict[str, float]

    @classmethod
    def of(cls, result: SearchResult) -> SearchResponse:
        return cls(
            hits=[SearchHitOut.model_validate(h) for h in result.hits],
            note=result.note,
            timings_ms=result.timings_ms,
        )


# --- Feedback ---


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    suggestion_id: str = Field(min_length=1, max_length=64)
    action: FeedbackAction
    final_text: str | None = Field(
        default=None, max_length=8000, description="The text the agent sent; required for 'edited'."
    )


# --- Admin ---


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9_-]{2,64}$", description="Slug, e.g. 'acme-tr'.")
    name: str = Field(min_length=1, max_length=200)
    settings: TenantSettings = Field(default_factory=TenantSettings)


class TenantSettingsPatch(BaseModel):
    """Settings keys to change; a null value resets that key to its default."""

    settings: dict[str, Any] = Field(min_length=1)


class WebhookSecretState(BaseModel):
    """Whether a tenant signs its webhooks: when its secret was made, never the secret."""

    created_at: datetime
    previous_valid_until: datetime | None = Field(
        description="Until when the secret before the last rotation still verifies incoming webhooks."
    )

    @classmethod
    def of(cls, webhook: WebhookSecrets) -> WebhookSecretState:
        return cls(created_at=webhook.created_at, previous_valid_until=webhook.previous_valid_until)


class TenantOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    settings: TenantSettings
    created_at: datetime
    webhook_secret: WebhookSecretState | None = Field(
        default=None,
        description="Set when the tenant has a webhook secret (see its webhook-secret endpoint).",
    )

    @classmethod
    def of(cls, tenant: Tenant) -> TenantOut:
        """Return the tenant as admins see it: whether it has a webhook secret, never the secret."""
        webhook = None if tenant.webhook is None else WebhookSecretState.of(tenant.webhook)
        return cls(
            id=tenant.id,
            name=tenant.name,
            settings=tenant.settings,
            created_at=tenant.created_at,
            webhook_secret=webhook,
        )


class WebhookSecretCreated(WebhookSecretState):
    tenant_id: str
    secret: str = Field(
        description="The webhook secret (`whsec_...`). Shown once: store it now, it cannot be shown again."
    )


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="default", min_length=1, max_length=200, description="What the key is for.")


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    tenant_id: str
    name: str
    key_prefix: str = Field(
        description="The start of the key, to recognise it; the key itself is not stored."
    )
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The API key. Shown once: store it now, it cannot be shown again.")


class ServiceKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="What the key is for, e.g. 'crm'.")
    tenants: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=10_000,
        description="The tenants the key may act for; left out: every tenant, present and future.",
    )


class ServiceKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    key_prefix: str = Field(
        description="The start of the key, to recognise it; the key itself is not stored."
    )
    tenants: list[str] | None = Field(description="The tenants it may act for; null: every tenant.")
    created_at: datetime
    revoked_at: datetime | None


class ServiceKeyCreated(ServiceKeyOut):
    key: str = Field(
        description="The service key (`isk_...`). Shown once: store it now, it cannot be shown again."
    )


# --- Health ---


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    checks: dict[str, str] = Field(description="Per dependency: 'ok' or what is wrong.")
