"""The registry database: tenants, API keys, documents, ingestion jobs, suggestions, feedback and audit.

`Registry(settings.registry_url)` works on a SQLite file (the default) or PostgreSQL. Each method runs
its own short transaction and returns frozen records, never ORM objects, so no caller holds a session.

SQLite notes: WAL lets readers run beside the one writer; every writing method opens its transaction
with BEGIN IMMEDIATE so read-then-write steps (begin_document, update_job_file) cannot interleave, and
the busy timeout makes concurrent writers queue instead of failing. An in-memory `sqlite://` database
is a single connection, so there every transaction is serialised by a lock.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast, get_args

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    Table,
    create_engine,
    delete,
    event,
    func,
    select,
    update,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker
from sqlalchemy.pool import StaticPool

from ingestion import migrations
from ingestion.pseudonym import IdGuard
from ingestion.registry_models import (
    ApiKeyInfo,
    ApiKeyRow,
    AuditEntry,
    AuditKind,
    AuditRow,
    Document,
    DocumentDecision,
    DocumentRow,
    DocumentSource,
    DocumentStatus,
    Feedback,
    FeedbackAction,
    FeedbackRow,
    GapQuestionRow,
    Job,
    JobFile,
    JobFileRow,
    JobFileStatus,
    JobKind,
    JobRow,
    PiiSubjectRow,
    Suggestion,
    SuggestionRow,
    Tenant,
    TenantRow,
    TenantSettings,
    to_record,
    utcnow,
)

__all__ = [
    "ApiKeyInfo",
    "AuditEntry",
    "Document",
    "DocumentDecision",
    "Feedback",
    "Job",
    "JobFile",
    "Registry",
    "Suggestion",
    "Tenant",
    "TenantExistsError",
    "TenantSettings",
]

_TENANT_SLUG_RE = re.compile(r"[a-z0-9_-]{2,64}")
_BUSY_TIMEOUT_MS = 10_000
_KEY_PREFIX = "ik_"
_KEY_DISPLAY_CHARS = 8
_DONE_STATUSES = ("indexed", "skipped")
_OPEN_JOB_STATUSES = ("queued", "running")
# Feedback whose reply was indexed as knowledge (assist.learning): its suggestion outlives retention.
_LEARNED_ACTIONS = ("accepted", "edited")
_PRUNE_BATCH = 2_000

T = TypeVar("T")


class TenantExistsError(ValueError):
    """Raised when creating a tenant whose id is already taken."""


def _check_choice(value: str, allowed: Any, what: str) -> None:
    choices = get_args(allowed)
    if value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)}; got {value!r}")


def _validate_tenant_id(tenant_id: str) -> None:
    if not isinstance(tenant_id, str) or not _TENANT_SLUG_RE.fullmatch(tenant_id):
        raise ValueError(
            f"Tenant id {tenant_id!r} must be 2-64 characters of lowercase a-z, 0-9, '-' or '_' (e.g. 'acme-tr')"
        )


def _retry_once_on_conflict(attempt: Callable[[], T]) -> T:
    """Return `attempt()`, run again if it lost a unique-key race (PostgreSQL; SQLite writers never race)."""
    try:
        return attempt()
    except IntegrityError:
        return attempt()


def _hash_key(plaintext: str) -> str:
    # API keys carry 192 random bits, so nobody can brute-force them from the hash: a fast SHA-256 is
    # enough, and a slow password hash (bcrypt, argon2) would only add latency to every request.
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def engine_url(url: str) -> URL:
    """Return `url` parsed, a plain postgresql:// meaning psycopg 3 (the driver this package installs;
    SQLAlchemy's own default for it is psycopg2)."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+psycopg") if parsed.drivername == "postgresql" else parsed


def _is_memory_sqlite(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"


def _without_nul(value: Any) -> Any:
    return value.replace("\x00", "\ufffd") if isinstance(value, str) and "\x00" in value else value


def _scrub_parameters(parameters: Any) -> Any:
    """Return statement parameters (a dict or tuple, or a list of them) with NUL characters in strings
    replaced by U+FFFD: PostgreSQL text cannot hold NUL, so neither database stores one, and a lookup by an
    id that had one finds the row (its parameter is scrubbed the same way)."""
    if isinstance(parameters, dict):
        return {key: _without_nul(value) for key, value in parameters.items()}
    if isinstance(parameters, list | tuple):
        if parameters and isinstance(parameters[0], dict | list | tuple):  # executemany
            return type(parameters)(_scrub_parameters(p) for p in parameters)
        return type(parameters)(_without_nul(value) for value in parameters)
    return parameters


def _create_engine(url: URL) -> Engine:
    # pre_ping drops connections the PostgreSQL server closed while the pool held them.
    sqlite = url.get_backend_name() == "sqlite"
    engine = _create_sqlite_engine(url) if sqlite else create_engine(url, pool_pre_ping=True)

    @event.listens_for(engine, "before_cursor_execute", retval=True)
    def _no_nul(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool
    ) -> tuple[str, Any]:
        return statement, _scrub_parameters(parameters)

    return engine


def _create_sqlite_engine(url: URL) -> Engine:
    memory = _is_memory_sqlite(url)
    if not memory and url.database and url.query.get("uri") != "true":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": _BUSY_TIMEOUT_MS / 1000},
        # One shared connection keeps an in-memory database alive and visible to every thread.
        **({"poolclass": StaticPool} if memory else {}),
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module, which would start them lazily on the
        # first write; _on_begin issues BEGIN instead (SQLAlchemy's documented SQLite recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        # Deleted rows are overwritten, not left in free pages: erasure must leave nothing behind.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")  # durable enough with WAL, much faster commits
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


class Registry:
    """The registry database for one service: open it once and share it between threads."""

    def __init__(self, url: str, *, ids: IdGuard | None = None) -> None:
        """`ids` guards document ids, job file names and conversation ids (ingestion.pseudonym): every
        method takes the id a tenant gave and stores or looks up its guarded form. Without it a random
        secret is used, good for this object's lifetime only (tests, throw-away eval registries)."""
        self.ids = ids or IdGuard(secrets.token_bytes(32))
        parsed = engine_url(url)
        self._engine = _create_engine(parsed)
        self._lock: AbstractContextManager[Any] = (
            threading.RLock()
            if parsed.get_backend_name() == "sqlite" and _is_memory_sqlite(parsed)
            else nullcontext()
        )
        writer = self._engine.execution_options(sqlite_begin="IMMEDIATE")
        self._write_engine = writer
        self._reader = sessionmaker(self._engine, expire_on_commit=False)
        self._writer = sessionmaker(writer, expire_on_commit=False)
        # Where the schema stood before this open brought it to head (ingestion.migrations).
        self.schema_on_open: migrations.SchemaState
        self._migrate()

    def close(self) -> None:
        """Close every pooled connection; the registry is unusable afterwards."""
        self._engine.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        # Inside one write transaction: concurrent openers of a new database migrate it once.
        with self._lock, self._write_engine.begin() as connection:
            self.schema_on_open = migrations.upgrade(connection, repr(self._engine.url))

    def schema_state(self) -> migrations.SchemaState:
        """Return the database's schema revision now (head once the registry is open)."""
        with self._lock, self._engine.connect() as connection:
            return migrations.state(connection)

    def _by_id(self, column: ColumnElement[str]) -> ColumnElement[str]:
        """Return `column` to order by, compared character by character as SQLite does: PostgreSQL's default
        collation is usually linguistic (en_US in the postgres image: "a-c" < "A." < "ab")."""
        return column.collate("C") if self._engine.dialect.name == "postgresql" else column

    @contextmanager
    def _transaction(self, *, write: bool = True) -> Iterator[Session]:
        factory = self._writer if write else self._reader
        with self._lock, factory() as session, session.begin():
            yield session

    # --- Tenants ---

    def create_tenant(
        self, tenant_id: str, name: str, settings: Mapping[str, Any] | TenantSettings | None = None
    ) -> Tenant:
        """Return the new tenant; ValueError for a bad slug or settings, TenantExistsError if taken."""
        _validate_tenant_id(tenant_id)
        if not name.strip():
            raise ValueError("Tenant name must not be empty")
        parsed = (
            settings
            if isinstance(settings, TenantSettings)
            else TenantSettings.model_validate(settings or {})
        )
        try:
            with self._transaction() as session:
                if session.get(TenantRow, tenant_id) is not None:
                    raise TenantExistsError(f"Tenant {tenant_id!r} already exists")
                row = TenantRow(id=tenant_id, name=name.strip(), settings=parsed.model_dump(mode="json"))
                session.add(row)
                session.flush()
                return _tenant(row)
        except IntegrityError as err:  # a concurrent create on PostgreSQL won the race
            raise TenantExistsError(f"Tenant {tenant_id!r} already exists") from err

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        """Return the tenant, or None if there is none with this id."""
        with self._transaction(write=False) as session:
            row = session.get(TenantRow, tenant_id)
            return _tenant(row) if row else None

    def list_tenants(self) -> list[Tenant]:
        """Return every tenant, ordered by id."""
        with self._transaction(write=False) as session:
            rows = session.scalars(select(TenantRow).order_by(self._by_id(TenantRow.id)))
            return [_tenant(row) for row in rows]

    def update_tenant_settings(self, tenant_id: str, patch: Mapping[str, Any]) -> Tenant:
        """Return the tenant with `patch` merged into its settings; a None value resets that key to its default.

        The whole result is validated (ValueError) before anything is saved; LookupError if no such tenant.
        """
        with self._transaction() as session:
            row = session.get(TenantRow, tenant_id, with_for_update=True)
            if row is None:
                raise LookupError(f"No tenant {tenant_id!r}")
            merged = {**row.settings, **patch}
            merged = {key: value for key, value in merged.items() if value is not None}
            row.settings = TenantSettings.model_validate(merged).model_dump(mode="json")
            session.flush()
            return _tenant(row)

    def delete_tenant(self, tenant_id: str) -> bool:
        """Return True if the tenant existed; its keys, documents, jobs, suggestions and audit go with it."""
        with self._transaction() as session:
            row = session.get(TenantRow, tenant_id)
            if row is None:
                return False
            session.delete(row)  # the database's ON DELETE CASCADE removes the tenant's rows
            return True

    # --- API keys ---

    def create_api_key(self, tenant_id: str, name: str) -> tuple[ApiKeyInfo, str]:
        """Return the key's record and the plaintext key; the plaintext is never stored or shown again."""
        secret = secrets.token_urlsafe(24)  # 32 characters
        plaintext = f"{_KEY_PREFIX}{tenant_id}_{secret}"
        with self._transaction() as session:
            _require_tenant(session, tenant_id)
            row = ApiKeyRow(
                id=str(uuid.uuid4()),
                tenant_id=tenant_id,
                name=name,
                # The first 8 characters would be "ik_<tenant>" for every key, so show a piece of the secret.
                key_prefix=f"{_KEY_PREFIX}{tenant_id}_{secret[:_KEY_DISPLAY_CHARS]}",
                key_hash=_hash_key(plaintext),
            )
            session.add(row)
            session.flush()
            return to_record(ApiKeyInfo, row), plaintext

    def authenticate(self, plaintext: str) -> Tenant | None:
        """Return the tenant an unrevoked API key belongs to, or None for an unknown or revoked key."""
        if not plaintext.startswith(_KEY_PREFIX):
            return None
        key_hash = _hash_key(plaintext)
        with self._transaction(write=False) as session:
            found = session.execute(
                select(ApiKeyRow, TenantRow)
                .join(TenantRow, TenantRow.id == ApiKeyRow.tenant_id)
                .where(ApiKeyRow.key_hash == key_hash)
            ).first()
            if found is None:
                return None
            key, tenant = found.tuple()
            if not hmac.compare_digest(key.key_hash, key_hash) or key.revoked_at is not None:
                return None
            return _tenant(tenant)

    def revoke_api_key(self, key_id: str, *, tenant_id: str | None = None) -> bool:
        """Return True if the key exists (within `tenant_id` when given) and is now revoked."""
        with self._transaction() as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None or (tenant_id is not None and row.tenant_id != tenant_id):
                return False
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            return True

    def list_api_keys(self, tenant_id: str) -> list[ApiKeyInfo]:
        """Return the tenant's keys, revoked ones included, oldest first."""
        with self._transaction(write=False) as session:
            rows = session.scalars(
                select(ApiKeyRow).where(ApiKeyRow.tenant_id == tenant_id).order_by(ApiKeyRow.created_at)
            )
            return [to_record(ApiKeyInfo, row) for row in rows]

    # --- Documents ---

    def get_document(self, tenant_id: str, doc_id: str) -> Document | None:
        """Return the tenant's document, or None."""
        with self._transaction(write=False) as session:
            row = self._document_row(session, tenant_id, doc_id)
            return to_record(Document, row) if row else None

    def _document_row(
        self, session: Session, tenant_id: str, doc_id: str, *, for_update: bool = False
    ) -> DocumentRow | None:
        """The row of the guarded id, else (a row stored before ids were guarded) of the raw one."""
        guarded = self.ids.id(doc_id)
        row = session.get(DocumentRow, (tenant_id, guarded), with_for_update=for_update)
        if row is None and guarded != doc_id:
            row = session.get(DocumentRow, (tenant_id, doc_id), with_for_update=for_update)
        return row

    def list_documents(
        self, tenant_id: str, status: DocumentStatus | None = None, source: DocumentSource | None = None
    ) -> list[Document]:
        """Return the tenant's documents (all statuses, deleted included, unless filtered), ordered by doc_id."""
        query = select(DocumentRow).where(DocumentRow.tenant_id == tenant_id)
        if status is not None:
            query = query.where(DocumentRow.status == status)
        if source is not None:
            query = query.where(DocumentRow.source == source)
        with self._transaction(write=False) as session:
            rows = session.scalars(query.order_by(self._by_id(DocumentRow.doc_id)))
            return [to_record(Document, row) for row in rows]

    def begin_document(
        self,
        tenant_id: str,
        doc_id: str,
        source: DocumentSource,
        uri: str | None,
        title: str | None,
        content_hash: str,
    ) -> DocumentDecision:
        """Return "skip" if this content is already indexed, else "index" with the version to write.

        On "index" the document is marked pending; the version goes up by one whenever the content differs
        from the last attempt (a retry of the same failed or interrupted content keeps its number).
        """
        _check_choice(source, DocumentSource, "Document source")
        spec = self._guarded_spec((doc_id, source, uri, title, content_hash))
        return _retry_once_on_conflict(lambda: self._begin_document(tenant_id, *spec))

    def begin_documents(
        self, tenant_id: str, specs: Sequence[tuple[str, DocumentSource, str | None, str | None, str]]
    ) -> list[DocumentDecision]:
        """Return begin_document's decision for each (doc_id, source, uri, title, content_hash), in one transaction."""
        for spec in specs:
            _check_choice(spec[1], DocumentSource, "Document source")
        specs = [self._guarded_spec(spec) for spec in specs]

        def attempt() -> list[DocumentDecision]:
            with self._transaction() as session:
                return [self._begin_in(session, tenant_id, *spec) for spec in specs]

        return _retry_once_on_conflict(attempt)

    def _guarded_spec(
        self, spec: tuple[str, DocumentSource, str | None, str | None, str]
    ) -> tuple[str, DocumentSource, str | None, str | None, str]:
        doc_id, source, uri, title, content_hash = spec
        return self.ids.id(doc_id), source, self.ids.maybe_id(uri), self.ids.text(title), content_hash

    def _begin_document(
        self, tenant_id: str, doc_id: str, source: str, uri: str | None, title: str | None, content_hash: str
    ) -> DocumentDecision:
        with self._transaction() as session:
            return self._begin_in(session, tenant_id, doc_id, source, uri, title, content_hash)

    @staticmethod
    def _begin_in(
        session: Session,
        tenant_id: str,
        doc_id: str,
        source: str,
        uri: str | None,
        title: str | None,
        content_hash: str,
    ) -> DocumentDecision:
        row = session.get(DocumentRow, (tenant_id, doc_id), with_for_update=True)
        if row is None:
            _require_tenant(session, tenant_id)
            row = DocumentRow(tenant_id=tenant_id, doc_id=doc_id, version=1, chunk_count=0)
            session.add(row)
        elif row.status == "indexed" and row.content_hash == content_hash:
            return DocumentDecision("skip", doc_id, row.version, row.indexed_version)
        elif row.content_hash != content_hash or row.status in ("indexed", "deleted"):
            row.version += 1
        row.source, row.source_uri, row.title = source, uri, title
        row.content_hash, row.status = content_hash, "pending"
        session.flush()
        return DocumentDecision("index", doc_id, row.version, row.indexed_version)

    def mark_indexed(
        self,
        tenant_id: str,
        doc_id: str,
        version: int,
        chunk_count: int,
        flag_reasons: Mapping[str, int] | None = None,
    ) -> Document:
        """Return the document now live at `version` with `flag_reasons` (flagged chunks per reason); ValueError
        if a newer version was begun meanwhile."""
        with self._transaction() as session:
            return self._mark_indexed_in(
                session, tenant_id, self.ids.id(doc_id), version, chunk_count, flag_reasons
            )

    def complete_documents(
        self, tenant_id: str, job_id: str, entries: Sequence[tuple[str, str, int, int, Mapping[str, int]]]
    ) -> list[Document]:
        """Return the documents marked indexed for each (job file name, doc_id, version, chunk_count,
        flag_reasons), with their job files marked "indexed", all in one transaction (one commit per batch,
        not three per document)."""
        entries = [(self.ids.id(n), self.ids.id(d), v, c, f) for n, d, v, c, f in entries]
        with self._transaction() as session:
            _require_open_job(session, job_id, with_files=False)
            doc_ids = [doc_id for _, doc_id, *_ in entries]
            docs = {
                row.doc_id: row
                for row in session.scalars(
                    select(DocumentRow)
                    .where(DocumentRow.tenant_id == tenant_id, DocumentRow.doc_id.in_(doc_ids))
                    .with_for_update()
                )
            }
            files = {
                row.name: row
                for row in session.scalars(
                    select(JobFileRow)
                    .where(JobFileRow.job_id == job_id, JobFileRow.name.in_([e[0] for e in entries]))
                    .with_for_update()
                )
            }
            moved, written = 0, 0
            for name, doc_id, version, chunks, flag_reasons in entries:
                row, file = docs.get(doc_id), files.get(name)
                if row is None:
                    raise LookupError(f"No document {doc_id!r} for tenant {tenant_id!r}")
                if file is None:
                    raise LookupError(f"Job {job_id} has no file {name!r}")
                if row.version != version:
                    raise ValueError(
                        f"Document {doc_id!r} is at version {row.version}, cannot mark version {version} indexed"
                    )
                row.status, row.chunk_count, row.error = "indexed", chunks, None
                row.indexed_version, row.indexed_hash = version, row.content_hash
                row.flag_reasons = dict(flag_reasons)
                moved += 1 - int(file.status in _DONE_STATUSES)
                written += chunks - file.chunks
                failed_before = file.status == "failed"
                file.status, file.doc_id, file.chunks, file.error = "indexed", doc_id, chunks, None
                if failed_before:
                    session.execute(
                        update(JobRow).where(JobRow.id == job_id).values(files_failed=JobRow.files_failed - 1)
                    )
            # One counter update for the whole batch, in SQL (never a stale read-modify-write).
            session.execute(
                update(JobRow)
                .where(JobRow.id == job_id)
                .values(files_done=JobRow.files_done + moved, chunks_written=JobRow.chunks_written + written)
            )
            session.flush()
            return [to_record(Document, docs[doc_id]) for doc_id in doc_ids]

    @staticmethod
    def _mark_indexed_in(
        session: Session,
        tenant_id: str,
        doc_id: str,
        version: int,
        chunk_count: int,
        flag_reasons: Mapping[str, int] | None,
    ) -> Document:
        row = _require_document(session, tenant_id, doc_id)
        if row.version != version:
            raise ValueError(
                f"Document {doc_id!r} is at version {row.version}, cannot mark version {version} indexed"
            )
        row.status, row.chunk_count, row.error = "indexed", chunk_count, None
        row.indexed_version, row.indexed_hash = version, row.content_hash
        row.flag_reasons = dict(flag_reasons or {})
        session.flush()
        return to_record(Document, row)

    def mark_failed(self, tenant_id: str, doc_id: str, error: str) -> Document:
        """Return the document after a failed attempt, with `error` recorded.

        A document with an indexed version stays "indexed" at that version (its chunks are still served);
        only a document that was never indexed becomes "failed".
        """
        doc_id, error = self.ids.id(doc_id), self.ids.text(error) or error
        with self._transaction() as session:
            row = _require_document(session, tenant_id, doc_id)
            if row.indexed_version is not None and row.indexed_hash is not None:
                row.status, row.version, row.content_hash = "indexed", row.indexed_version, row.indexed_hash
            else:
                row.status = "failed"
            row.error = error
            session.flush()
            return to_record(Document, row)

    def mark_deleted(self, tenant_id: str, doc_id: str) -> Document | None:
        """Return the document marked deleted (kept as a tombstone of its guarded id and redacted title),
        or None if there is none."""
        with self._transaction() as session:
            row = self._document_row(session, tenant_id, doc_id, for_update=True)
            if row is None:
                return None
            row.status, row.chunk_count, row.error = "deleted", 0, None
            row.indexed_version = row.indexed_hash = None
            row.flag_reasons = {}
            session.flush()
            return to_record(Document, row)

    def forget_document(self, tenant_id: str, doc_id: str) -> bool:
        """Return True if the document's record existed and is now gone entirely."""
        with self._transaction() as session:
            row = self._document_row(session, tenant_id, doc_id)
            if row is not None:
                session.delete(row)
            _drop_links(session, tenant_id, "document", [self.ids.id(doc_id)])
            return row is not None

    # --- Ingestion jobs ---

    def create_job(
        self, tenant_id: str, kind: JobKind, file_names: Sequence[str], idempotency_key: str | None = None
    ) -> Job:
        """Return a new queued job, or the existing one if this tenant already used `idempotency_key`."""
        _check_choice(kind, JobKind, "Job kind")
        names = [self.ids.id(name) for name in file_names]
        if any(not name for name in names):
            raise ValueError("Job file names must not be empty")
        if len(set(names)) != len(names):
            raise ValueError("Job file names must be unique within a job")
        return _retry_once_on_conflict(lambda: self._create_job(tenant_id, kind, names, idempotency_key))

    def _create_job(self, tenant_id: str, kind: str, names: list[str], idempotency_key: str | None) -> Job:
        with self._transaction() as session:
            _require_tenant(session, tenant_id)
            if idempotency_key is not None:
                existing = session.scalar(
                    _job_query().where(
                        JobRow.tenant_id == tenant_id, JobRow.idempotency_key == idempotency_key
                    )
                )
                if existing is not None:
                    return _job(existing)
            row = JobRow(
                id=str(uuid.uuid4()),
                tenant_id=tenant_id,
                kind=kind,
                status="queued",
                files_total=len(names),
                idempotency_key=idempotency_key,
                files=[JobFileRow(name=name, position=i, status="pending") for i, name in enumerate(names)],
            )
            session.add(row)
            session.flush()
            return _job(row)

    def get_job(self, tenant_id: str, job_id: str) -> Job | None:
        """Return the tenant's job with its files, or None (also for another tenant's job)."""
        with self._transaction(write=False) as session:
            row = session.scalar(_job_query().where(JobRow.id == job_id, JobRow.tenant_id == tenant_id))
            return _job(row) if row else None

    def start_job(self, job_id: str) -> Job:
        """Return the job marked running; restarting a running (interrupted) job keeps its start time."""
        with self._transaction() as session:
            row = _require_open_job(session, job_id, with_files=True)
            row.status = "running"
            row.started_at = row.started_at or utcnow()
            session.flush()
            return _job(row)

    def update_job_file(
        self,
        job_id: str,
        name: str,
        status: JobFileStatus,
        doc_id: str | None = None,
        chunks: int = 0,
        error: str | None = None,
    ) -> JobFile:
        """Return the file's new state; the job's counters move by the difference, so repeats are safe."""
        _check_choice(status, JobFileStatus, "Job file status")
        with self._transaction() as session:
            _require_open_job(session, job_id, with_files=False)
            return self._job_file_in(session, job_id, name, status, doc_id, chunks, error)

    def update_job_files(self, job_id: str, entries: Sequence[tuple[str, JobFileStatus, str | None]]) -> None:
        """Set many files of a job to a chunk-less status, e.g. (name, "skipped", doc_id), in one transaction."""
        for _, status, _ in entries:
            _check_choice(status, JobFileStatus, "Job file status")
        with self._transaction() as session:
            _require_open_job(session, job_id, with_files=False)
            for name, status, doc_id in entries:
                self._job_file_in(session, job_id, name, status, doc_id, 0, None)

    def _job_file_in(
        self,
        session: Session,
        job_id: str,
        name: str,
        status: str,
        doc_id: str | None,
        chunks: int,
        error: str | None,
    ) -> JobFile:
        name, doc_id, error = self.ids.id(name), self.ids.maybe_id(doc_id), self.ids.text(error)
        file = session.get(JobFileRow, (job_id, name), with_for_update=True)
        if file is None:
            raise LookupError(f"Job {job_id} has no file {name!r}")
        self._move_counters(session, job_id, file, status, chunks)
        file.status, file.doc_id, file.chunks, file.error = status, doc_id, chunks, error
        session.flush()
        return to_record(JobFile, file)

    @staticmethod
    def _move_counters(session: Session, job_id: str, file: JobFileRow, status: str, chunks: int) -> None:
        done = int(status in _DONE_STATUSES) - int(file.status in _DONE_STATUSES)
        failed = int(status == "failed") - int(file.status == "failed")
        # Increments in SQL, not read-modify-write of a possibly stale ORM copy of the job.
        session.execute(
            update(JobRow)
            .where(JobRow.id == job_id)
            .values(
                files_done=JobRow.files_done + done,
                files_failed=JobRow.files_failed + failed,
                chunks_written=JobRow.chunks_written + (chunks - file.chunks),
            )
        )

    def finish_job(self, job_id: str, error: str | None = None) -> Job:
        """Return the finished job: succeeded, partial if some files failed, failed if all did.

        Files still pending (the worker stopped early) count as failed. Finishing twice is a no-op.
        """
        with self._transaction() as session:
            row = session.scalar(_job_query().where(JobRow.id == job_id).with_for_update())
            if row is None:
                raise LookupError(f"No ingestion job {job_id!r}")
            if row.status not in _OPEN_JOB_STATUSES:
                return _job(row)
            error = self.ids.text(error)
            for file in row.files:
                if file.status == "pending":
                    self._move_counters(session, job_id, file, "failed", 0)
                    file.status, file.error = "failed", error or "not processed"
            session.flush()
            session.refresh(row)
            if row.files_failed == 0:
                row.status = "succeeded"
            else:
                row.status = "failed" if row.files_failed >= row.files_total else "partial"
            row.finished_at, row.error = utcnow(), error
            session.flush()
            return _job(row)

    def list_jobs(self, tenant_id: str, limit: int = 50) -> list[Job]:
        """Return the tenant's most recent jobs with their files, newest first."""
        with self._transaction(write=False) as session:
            rows = session.scalars(
                _job_query()
                .where(JobRow.tenant_id == tenant_id)
                .order_by(JobRow.created_at.desc())
                .limit(limit)
            )
            return [_job(row) for row in rows]

    def interrupted_jobs(self) -> list[Job]:
        """Return every tenant's queued or running jobs, oldest first: at startup, the work a crash left behind."""
        with self._transaction(write=False) as session:
            rows = session.scalars(
                _job_query().where(JobRow.status.in_(_OPEN_JOB_STATUSES)).order_by(JobRow.created_at)
            )
            return [_job(row) for row in rows]

    # --- Suggestions and feedback ---

    def record_suggestions(
        self, tenant_id: str, conversation_id: str, suggestions: Sequence[Mapping[str, Any]]
    ) -> list[str]:
        """Return the new suggestion ids, in order; each mapping has "text", "strategy" and optionally
        "confidence" and "citations" (a list of JSON-able dicts). LookupError for an unknown tenant."""
        rows = _suggestion_rows(tenant_id, self.ids.id(conversation_id), suggestions)
        with self._inserting(tenant_id) as connection:
            connection.execute(_SUGGESTIONS_INSERT, rows)
        return [row["id"] for row in rows]

    @contextmanager
    def _inserting(self, tenant_id: str) -> Iterator[Connection]:
        # Core inserts on a plain connection: no ORM session or unit of work on the hot path (every suggest
        # writes here). The tenant foreign key catches an unknown tenant.
        try:
            with self._lock, self._write_engine.begin() as connection:
                yield connection
        except IntegrityError as err:
            raise LookupError(f"No tenant {tenant_id!r}") from err

    def get_suggestion(self, tenant_id: str, suggestion_id: str) -> Suggestion | None:
        """Return the tenant's suggestion, or None (also for another tenant's)."""
        with self._transaction(write=False) as session:
            row = session.get(SuggestionRow, suggestion_id)
            return to_record(Suggestion, row) if row and row.tenant_id == tenant_id else None

    def record_feedback(
        self, tenant_id: str, suggestion_id: str, action: FeedbackAction, final_text: str | None = None
    ) -> Feedback:
        """Return the stored feedback; LookupError if the suggestion is unknown or another tenant's."""
        _check_choice(action, FeedbackAction, "Feedback action")
        if action == "edited" and not final_text:
            raise ValueError("Feedback 'edited' needs the final text the agent sent")
        with self._transaction() as session:
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
        with self._transaction(write=False) as session:
            query = select(func.count()).select_from(FeedbackRow).where(FeedbackRow.tenant_id == tenant_id)
            return int(session.scalar(query) or 0)

    def feedback_evidence(self, tenant_id: str) -> list[tuple[float, str]]:
        """Return (the suggestion's confidence, the agent's action) for every feedback of the tenant."""
        with self._transaction(write=False) as session:
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
    ) -> tuple[int, list[str]]:
        """Return the new audit entry's id and the ids of `suggestions` (see record_suggestions), stored
        in one transaction. Callers pass ids and codes only, never message text (KVKK)."""
        _check_choice(kind, AuditKind, "Audit kind")
        rows = _suggestion_rows(tenant_id, self.ids.id(conversation_id), suggestions)
        audit = {
            "tenant_id": tenant_id,
            "conversation_id": self.ids.id(conversation_id),
            "kind": kind,
            "retrieved_ids": list(retrieved_ids),
            "provider": provider,
            "decision": decision,
            "reason": reason,
            "confidence": confidence,
            "latency_ms": latency_ms,
            "created_at": utcnow(),
        }
        with self._inserting(tenant_id) as connection:
            if rows:
                connection.execute(_SUGGESTIONS_INSERT, rows)
            audit_id = connection.execute(_AUDIT_INSERT, audit).scalar_one()
        if audit["conversation_id"] != conversation_id:  # the id carries personal data: link it for erasure
            own = self.ids.subject_keys([conversation_id])
            with self._transaction() as session:
                self._add_links(
                    session, tenant_id, [("conversation", audit["conversation_id"], k, True) for k in own]
                )
        return int(audit_id), [row["id"] for row in rows]

    def list_audit(self, tenant_id: str, limit: int = 100) -> list[AuditEntry]:
        """Return the tenant's most recent audit entries, newest first."""
        with self._transaction(write=False) as session:
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
        with self._transaction() as session:
            ids = list(session.scalars(expired.limit(_PRUNE_BATCH)))
            if ids and table is SuggestionRow:
                session.execute(delete(FeedbackRow).where(FeedbackRow.suggestion_id.in_(ids)))
            if ids:
                session.execute(delete(table).where(table.id.in_(ids)))
        return len(ids)

    # --- Erasure ---

    def link_subjects(
        self, tenant_id: str, refs: Sequence[str], links: Sequence[tuple[str, str, str, bool]]
    ) -> None:
        """Replace the subject links of the documents `refs` (guarded ids) with `links`, each
        (kind, guarded ref, subject key, in_id), e.g. ingestion.pipeline.SubjectLink."""
        with self._transaction() as session:
            _drop_links(session, tenant_id, "document", refs)
            self._add_links(session, tenant_id, links)

    @staticmethod
    def _add_links(session: Session, tenant_id: str, links: Sequence[tuple[str, str, str, bool]]) -> None:
        for kind, ref, subject, in_id in links:
            session.merge(
                PiiSubjectRow(tenant_id=tenant_id, kind=kind, ref=ref, subject=subject, in_id=in_id)
            )

    def checkpoint(self) -> None:
        """After an erasure: SQLite copies the write-ahead log into the database and truncates it, so the
        log keeps no page images of deleted rows (deleted rows themselves are overwritten, secure_delete).
        PostgreSQL reclaims deleted rows with its own (auto)vacuum."""
        if self._engine.url.get_backend_name() == "sqlite" and not _is_memory_sqlite(self._engine.url):
            with self._lock, self._engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def guard_stored_ids(self) -> int:
        """Rewrite ids a release before guarded ids stored raw: documents (id, uri, title), job files (name,
        document id, error), suggestions and audit entries (conversation id). Return the rows changed;
        running it again changes nothing."""
        ids, changed = self.ids, 0
        with self._transaction() as session:
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
        with self._transaction(write=False) as session:
            rows = session.execute(
                select(PiiSubjectRow.kind, PiiSubjectRow.ref, PiiSubjectRow.in_id).where(
                    PiiSubjectRow.tenant_id == tenant_id, PiiSubjectRow.subject == subject
                )
            ).all()
        return [(str(kind), str(ref), bool(in_id)) for kind, ref, in_id in rows]

    def unlink_subject(self, tenant_id: str, subject: str) -> None:
        """Forget every link of `subject` (its values are already redacted wherever they were)."""
        with self._transaction() as session:
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
        with self._transaction() as session:
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
            _drop_links(session, tenant_id, "conversation", [guarded])
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


def _drop_links(session: Session, tenant_id: str, kind: str, refs: Sequence[str]) -> None:
    if refs:
        session.execute(
            delete(PiiSubjectRow).where(
                PiiSubjectRow.tenant_id == tenant_id,
                PiiSubjectRow.kind == kind,
                PiiSubjectRow.ref.in_(list(refs)),
            )
        )


# --- Lookups that raise, and ORM rows -> records ---


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


def _require_tenant(session: Session, tenant_id: str) -> None:
    if session.get(TenantRow, tenant_id) is None:
        raise LookupError(f"No tenant {tenant_id!r}")


def _require_document(session: Session, tenant_id: str, doc_id: str) -> DocumentRow:
    row = session.get(DocumentRow, (tenant_id, doc_id), with_for_update=True)
    if row is None:
        raise LookupError(f"No document {doc_id!r} for tenant {tenant_id!r}")
    return row


def _require_open_job(session: Session, job_id: str, *, with_files: bool) -> JobRow:
    query = _job_query() if with_files else select(JobRow)
    row = session.scalar(query.where(JobRow.id == job_id).with_for_update())
    if row is None:
        raise LookupError(f"No ingestion job {job_id!r}")
    if row.status not in _OPEN_JOB_STATUSES:
        raise ValueError(f"Ingestion job {job_id} already finished ({row.status})")
    return row


def _job_query() -> Select[JobRow]:
    return select(JobRow).options(selectinload(JobRow.files))


def _tenant(row: TenantRow) -> Tenant:
    return to_record(Tenant, row, settings=TenantSettings.model_validate(row.settings))


def _job(row: JobRow) -> Job:
    return to_record(Job, row, files=tuple(to_record(JobFile, file) for file in row.files))
