"""Documents and ingestion jobs, ingestion's records: what a tenant ingested (version, content hash, status
in the index) and the jobs that ingested it, with a row per file and its outcome."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

from sqlalchemy import (
    Select,
    select,
    update,
)
from sqlalchemy.orm import Session, selectinload

from ingestion.registry_models import (
    Document,
    DocumentDecision,
    DocumentRow,
    DocumentSource,
    DocumentStatus,
    Job,
    JobFile,
    JobFileRow,
    JobFileStatus,
    JobKind,
    JobRow,
    to_record,
    utcnow,
)

from .registry_db import (
    RegistryDatabase,
    check_choice,
    drop_subject_links,
    require_tenant,
    retry_once_on_conflict,
)

_DONE_STATUSES = ("indexed", "skipped")
_OPEN_JOB_STATUSES = ("queued", "running")


class DocumentRecords(RegistryDatabase):
    """The tenants' documents and ingestion jobs."""

    # --- Documents ---

    def get_document(self, tenant_id: str, doc_id: str) -> Document | None:
        """Return the tenant's document, or None."""
        with self.transaction(write=False) as session:
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
        with self.transaction(write=False) as session:
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
        check_choice(source, DocumentSource, "Document source")
        spec = self._guarded_spec((doc_id, source, uri, title, content_hash))
        return retry_once_on_conflict(lambda: self._begin_document(tenant_id, *spec))

    def begin_documents(
        self, tenant_id: str, specs: Sequence[tuple[str, DocumentSource, str | None, str | None, str]]
    ) -> list[DocumentDecision]:
        """Return begin_document's decision for each (doc_id, source, uri, title, content_hash), in one transaction."""
        for spec in specs:
            check_choice(spec[1], DocumentSource, "Document source")
        specs = [self._guarded_spec(spec) for spec in specs]

        def attempt() -> list[DocumentDecision]:
            with self.transaction() as session:
                # One locking read for the batch and one flush at the end, not a read and a write per
                # document (they were a fifth of an ingestion job's time besides encoding).
                rows = _documents_for_update(session, tenant_id, [spec[0] for spec in specs])
                if len(rows) < len(specs):
                    require_tenant(session, tenant_id)  # once, not per new document
                decisions = [
                    self._decide(session, rows, tenant_id, *spec, check_tenant=False) for spec in specs
                ]
                session.flush()
                return decisions

        return retry_once_on_conflict(attempt)

    def _guarded_spec(
        self, spec: tuple[str, DocumentSource, str | None, str | None, str]
    ) -> tuple[str, DocumentSource, str | None, str | None, str]:
        doc_id, source, uri, title, content_hash = spec
        return self.ids.id(doc_id), source, self.ids.maybe_id(uri), self.ids.text(title), content_hash

    def _begin_document(
        self, tenant_id: str, doc_id: str, source: str, uri: str | None, title: str | None, content_hash: str
    ) -> DocumentDecision:
        with self.transaction() as session:
            row = session.get(DocumentRow, (tenant_id, doc_id), with_for_update=True)
            rows = {doc_id: row} if row is not None else {}
            decision = self._decide(session, rows, tenant_id, doc_id, source, uri, title, content_hash)
            session.flush()
            return decision

    @staticmethod
    def _decide(
        session: Session,
        rows: dict[str, DocumentRow],
        tenant_id: str,
        doc_id: str,
        source: str,
        uri: str | None,
        title: str | None,
        content_hash: str,
        *,
        check_tenant: bool = True,
    ) -> DocumentDecision:
        """Decide for one document whose row (if any) is in `rows`; a new row is added there too."""
        row = rows.get(doc_id)
        if row is None:
            if check_tenant:
                require_tenant(session, tenant_id)
            row = DocumentRow(tenant_id=tenant_id, doc_id=doc_id, version=1, chunk_count=0)
            session.add(row)
            rows[doc_id] = row
        elif row.status == "indexed" and row.content_hash == content_hash:
            return DocumentDecision("skip", doc_id, row.version, row.indexed_version)
        elif row.content_hash != content_hash or row.status in ("indexed", "deleted"):
            row.version += 1
        row.source, row.source_uri, row.title = source, uri, title
        row.content_hash, row.status = content_hash, "pending"
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
        with self.transaction() as session:
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
        with self.transaction() as session:
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
        with self.transaction() as session:
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
        with self.transaction() as session:
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
        with self.transaction() as session:
            row = self._document_row(session, tenant_id, doc_id)
            if row is not None:
                session.delete(row)
            drop_subject_links(session, tenant_id, "document", [self.ids.id(doc_id)])
            return row is not None

    # --- Ingestion jobs ---

    def create_job(
        self, tenant_id: str, kind: JobKind, file_names: Sequence[str], idempotency_key: str | None = None
    ) -> Job:
        """Return a new queued job, or the existing one if this tenant already used `idempotency_key`."""
        check_choice(kind, JobKind, "Job kind")
        names = [self.ids.id(name) for name in file_names]
        if any(not name for name in names):
            raise ValueError("Job file names must not be empty")
        if len(set(names)) != len(names):
            raise ValueError("Job file names must be unique within a job")
        return retry_once_on_conflict(lambda: self._create_job(tenant_id, kind, names, idempotency_key))

    def _create_job(self, tenant_id: str, kind: str, names: list[str], idempotency_key: str | None) -> Job:
        with self.transaction() as session:
            require_tenant(session, tenant_id)
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
        with self.transaction(write=False) as session:
            row = session.scalar(_job_query().where(JobRow.id == job_id, JobRow.tenant_id == tenant_id))
            return _job(row) if row else None

    def start_job(self, job_id: str) -> Job:
        """Return the job marked running; restarting a running (interrupted) job keeps its start time."""
        with self.transaction() as session:
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
        check_choice(status, JobFileStatus, "Job file status")
        with self.transaction() as session:
            _require_open_job(session, job_id, with_files=False)
            return self._job_file_in(session, job_id, name, status, doc_id, chunks, error)

    def update_job_files(self, job_id: str, entries: Sequence[tuple[str, JobFileStatus, str | None]]) -> None:
        """Set many files of a job to a chunk-less status, e.g. (name, "skipped", doc_id), in one transaction."""
        for _, status, _ in entries:
            check_choice(status, JobFileStatus, "Job file status")
        with self.transaction() as session:
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
        with self.transaction() as session:
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
        with self.transaction(write=False) as session:
            rows = session.scalars(
                _job_query()
                .where(JobRow.tenant_id == tenant_id)
                .order_by(JobRow.created_at.desc())
                .limit(limit)
            )
            return [_job(row) for row in rows]

    def interrupted_jobs(self) -> list[Job]:
        """Return every tenant's queued or running jobs, oldest first: at startup, the work a crash left behind."""
        with self.transaction(write=False) as session:
            rows = session.scalars(
                _job_query().where(JobRow.status.in_(_OPEN_JOB_STATUSES)).order_by(JobRow.created_at)
            )
            return [_job(row) for row in rows]


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


def _job(row: JobRow) -> Job:
    return to_record(Job, row, files=tuple(to_record(JobFile, file) for file in row.files))


# Ids per locking read: well under every database's limit on bound parameters.
_IDS_PER_READ = 500


def _documents_for_update(session: Session, tenant_id: str, doc_ids: Sequence[str]) -> dict[str, DocumentRow]:
    """Return the tenant's existing rows of `doc_ids` by id, locked for this transaction."""
    unique = list(dict.fromkeys(doc_ids))
    rows: dict[str, DocumentRow] = {}
    for start in range(0, len(unique), _IDS_PER_READ):
        part = unique[start : start + _IDS_PER_READ]
        found = session.scalars(
            select(DocumentRow)
            .where(DocumentRow.tenant_id == tenant_id, DocumentRow.doc_id.in_(part))
            .with_for_update()
        )
        rows.update((row.doc_id, row) for row in found)
    return rows
