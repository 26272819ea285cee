"""Ingestion jobs: load → redact → chunk → embed → upsert, with a registry row per document and per job.

Every document goes through the same steps whatever its kind:

1. `begin_document` in the registry: unchanged content (same hash) is skipped.
2. build its chunks (parse + chunk, FAQ rows, chat pairs), screen them (`ingestion.screening`: chunks
   that address the assistant, ask for secrets or link to foreign sites get metadata "flagged"), then
   redact every chunk's text, title, section and metadata strings: personal data never reaches the
   embedder or the index.
3. upsert the chunks tagged with the new `doc_version`, then delete the document's chunks of any other
   version, then `mark_indexed` with the count of flagged chunks per reason. A crash anywhere leaves the
   document pending; running the job again repeats the steps and ends in the state one clean run gives
   (point ids are deterministic).

A failing document is marked failed with its error and the rest of the batch goes on; an update that
fails leaves the previously indexed version searchable.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

from retrieval.index import EncodingAhead
from retrieval.index_process import AnyIndex
from retrieval.models import Chunk, Source
from retrieval.store import StoreError

from .pseudonym import SUBJECT_KINDS, IdGuard
from .redact import Redactor
from .registry import Registry
from .registry_models import Job, JobKind, TenantSettings
from .screening import SCREENING_VERSION, flag_counts, screen_chunks

log = logging.getLogger(__name__)

# Part of every content hash: changing how text is chunked re-indexes documents on their next ingest.
PIPELINE_VERSION = "3"
# Documents per registry transaction.
_GROUP = 64


@dataclass(frozen=True)
class IngestItem:
    """One document to ingest; `build` returns its chunks (and may raise a clear ValueError)."""

    name: str
    doc_id: str
    source: Source
    uri: str | None
    content_hash: str
    build: Callable[[], list[Chunk]]
    title: str | None = None


@dataclass(frozen=True)
class IngestProgress:
    files_done: int
    files_total: int
    chunks_written: int
    current: str
    status: str
    # True while one large document is written in parts: `chunks_written` counts its parts written so far.
    partial: bool = False


ProgressFn = Callable[[IngestProgress], None]


def content_hash(data: bytes, *params: object) -> str:
    """Return the sha256 of the content plus the pipeline parameters that shape its chunks."""
    digest = hashlib.sha256(data)
    digest.update(repr((PIPELINE_VERSION, SCREENING_VERSION, *params)).encode())
    return digest.hexdigest()


def _screened_hash(digest: str, own_domains: Sequence[str]) -> str:
    # The tenant's own domains decide which links are flagged: changing them screens documents again.
    if not own_domains:
        return digest
    return hashlib.sha256(f"{digest}|{','.join(sorted(own_domains))}".encode()).hexdigest()


_DOC_ID_UNSAFE = re.compile(r"[^\w.\-:/@]+", re.UNICODE)


def doc_id_for(uri: str) -> str:
    """Return a stable, readable document id for a source uri (file name, URL, sheet name)."""
    cleaned = _DOC_ID_UNSAFE.sub("_", uri.strip()).strip("_")
    if not cleaned:
        raise ValueError("A document needs a name or uri to derive its id from")
    return cleaned[:200]


def tenant_redactor(settings: TenantSettings | None) -> Redactor:
    """Return the KVKK redactor for a tenant: built-in detectors plus its extra patterns and allowed values."""
    if settings is None:
        return Redactor()
    return Redactor(settings.extra_patterns(), allowed=settings.pii_allowed)


def _redact_value(value: Any, redactor: Redactor, found: list[tuple[str, str]]) -> Any:
    if isinstance(value, str):
        result = redactor.redact(value)
        found.extend(result.found)
        return result.text
    if isinstance(value, list):
        return [_redact_value(v, redactor, found) for v in value]
    if isinstance(value, dict):
        return {k: _redact_value(v, redactor, found) for k, v in value.items()}
    return value


def redact_chunk(chunk: Chunk, redactor: Redactor, found: list[tuple[str, str]] | None = None) -> Chunk:
    """Return the chunk with personal data replaced by typed placeholders in every string it carries;
    (kind, original value) of each replacement is added to `found` when given."""
    sink: list[tuple[str, str]] = [] if found is None else found
    return replace(
        chunk,
        text=_redact_value(chunk.text, redactor, sink),
        title=_redact_value(chunk.title, redactor, sink),
        section=_redact_value(chunk.section, redactor, sink),
        metadata=_redact_value(chunk.metadata, redactor, sink),
    )


class SubjectLink(NamedTuple):
    """One personal value (by its keyed hash) found in a document or in a conversation (`kind`), and
    whether it was in the id itself: what erasure by phone or e-mail follows."""

    kind: str  # "document" or "conversation"
    ref: str  # the guarded document or conversation id
    subject: str
    in_id: bool


def _guarded_item(item: IngestItem, ids: IdGuard) -> IngestItem:
    return replace(item, name=ids.id(item.name), doc_id=ids.id(item.doc_id), title=ids.text(item.title))


def _guarded_chunk(chunk: Chunk, doc_id: str, ids: IdGuard) -> Chunk:
    conversation = chunk.metadata.get("conversation_id")
    metadata = chunk.metadata
    if isinstance(conversation, str):
        metadata = {**metadata, "conversation_id": ids.id(conversation)}
    return replace(chunk, doc_id=doc_id, metadata=metadata)


def _subject_links(
    raw: IngestItem,
    guarded: IngestItem,
    raw_chunks: Sequence[Chunk],
    found: list[tuple[str, str]],
    ids: IdGuard,
) -> list[SubjectLink]:
    """Return the document's links, and for a chat its conversation's, to every personal value in it."""
    in_id = {
        ids.subject_key(kind, value)
        for text in (raw.doc_id, raw.name, raw.title or "")
        for kind, value in ids.found(text)
        if kind in SUBJECT_KINDS
    }
    in_text = {ids.subject_key(kind, value) for kind, value in found if kind in SUBJECT_KINDS}
    links = [SubjectLink("document", guarded.doc_id, key, key in in_id) for key in in_id | in_text]
    conversations = {c.metadata.get("conversation_id") for c in raw_chunks} - {None}
    for conversation in conversations:
        own = {ids.subject_key(k, v) for k, v in ids.found(str(conversation)) if k in SUBJECT_KINDS}
        ref = ids.id(str(conversation))
        links += [SubjectLink("conversation", ref, key, key in own) for key in own | in_id | in_text]
    return links


# A document ready to write: the item, its new version, the version indexed before (or None), its chunks.
_Pending = tuple[IngestItem, int, int | None, list[Chunk]]


class Ingestor:
    """Runs ingestion jobs for one index and one registry."""

    def __init__(self, index: AnyIndex, registry: Registry, *, batch_chunks: int = 128) -> None:
        self.index = index
        self.registry = registry
        self.batch_chunks = batch_chunks
        # Called with the tenant id whenever its knowledge changed (a job finished, a document went):
        # what other layers derived from the whole knowledge is stale then.
        self.on_change: list[Callable[[str], None]] = []

    def changed(self, tenant_id: str) -> None:
        """Tell the listeners that the tenant's knowledge changed."""
        for listener in self.on_change:
            listener(tenant_id)

    def ensure_tenant(self, tenant_id: str, name: str | None = None) -> None:
        if self.registry.get_tenant(tenant_id) is None:
            self.registry.create_tenant(tenant_id, name or tenant_id)

    def run(
        self,
        tenant_id: str,
        kind: JobKind,
        items: Sequence[IngestItem],
        *,
        idempotency_key: str | None = None,
        progress: ProgressFn | None = None,
        job: Job | None = None,
    ) -> Job:
        """Ingest `items` as one job and return the finished job (status, counts, per-file results)."""
        tenant = self.registry.get_tenant(tenant_id)
        if tenant is None:
            raise LookupError(f"Unknown tenant {tenant_id!r}: create it first")
        if job is None:
            job = self.registry.create_job(
                tenant_id, kind, [i.name for i in items], idempotency_key=idempotency_key
            )
            if job.status not in ("queued", "running"):
                return job  # the same idempotency key already ran this job
        redactor = tenant_redactor(tenant.settings)
        own_domains = tenant.settings.own_domains
        ids = self.registry.ids
        raw_items = {ids.id(i.doc_id): i for i in items}
        items = [_guarded_item(i, ids) for i in items]
        links: dict[str, list[SubjectLink]] = {}
        self.registry.start_job(job.id)
        state = _JobState(total=len(items))
        pending: list[_Pending] = []
        # When the index encodes in other processes (the index process of `serve`, encode workers), a
        # batch is written on a thread of its own while this one reads, screens and redacts the next
        # documents. In-process encoding stays on this thread: the encoder needs the GIL for most of its
        # work, and a second Python thread beside it slows it more than it saves.
        writer = (
            ThreadPoolExecutor(1, thread_name_prefix="ingest-write") if self.index.encodes_aside else None
        )
        in_flight: list[tuple[Future[Exception | None], list[_Pending]]] = []

        def finish(batch: list[_Pending], error: Exception | None) -> None:
            if error is not None:  # the engine refused the batch: fail these documents, keep the rest
                for item, _, indexed_version, _ in batch:
                    self._drop_partial(tenant_id, item.doc_id, indexed_version)
                    self._fail(
                        tenant_id, job.id, item, f"could not write to the index: {error}", state, progress
                    )
                return
            self.registry.complete_documents(
                tenant_id,
                job.id,
                [
                    (item.name, item.doc_id, version, len(cs), flag_counts(cs))
                    for item, version, _, cs in batch
                ],
            )
            self.registry.link_subjects(
                tenant_id,
                [item.doc_id for item, *_ in batch],
                [ln for i, *_ in batch for ln in links.pop(i.doc_id, [])],
            )
            for item, _, _, cs in batch:
                state.done += 1
                state.chunks += len(cs)
                _report(progress, state, item.name, "indexed")

        def settle() -> None:
            """Finish the batch being written: progress is only reported with no write in flight (a
            progress callback may stop the job or hand the index to another tenant's job)."""
            while in_flight:
                future, batch = in_flight.pop()
                finish(batch, future.result())

        def flush() -> None:
            batch = list(pending)
            pending.clear()
            chunks = [c for *_, cs in batch for c in cs]
            if writer is not None and not (len(batch) == 1 and len(chunks) > self.batch_chunks):
                # The encode workers start on this batch while the one before it is stored.
                ahead = self.index.encode_ahead(chunks, batch_size=64)
                try:
                    settle()
                    write = writer.submit(self._attempt_write, tenant_id, chunks, batch, None, ahead)
                except BaseException:
                    if ahead is not None:
                        ahead.discard()  # the workers are released; the job resumes without it
                    raise
                in_flight.append((write, batch))
                return
            settle()

            def written(n: int) -> None:  # a large document's parts: progress inside the file
                if progress and len(batch) == 1 and n < len(chunks):
                    name = batch[0][0].name
                    status = f"indexing: {n} of {len(chunks)} chunks written"
                    progress(IngestProgress(state.done, state.total, state.chunks + n, name, status, True))

            finish(batch, self._attempt_write(tenant_id, chunks, batch, written))

        try:
            # Registry work goes in groups: one transaction per group instead of several per document.
            for start in range(0, len(items), _GROUP):
                group = items[start : start + _GROUP]
                decisions = self.registry.begin_documents(
                    tenant_id,
                    [
                        (i.doc_id, i.source, i.uri, i.title, _screened_hash(i.content_hash, own_domains))
                        for i in group
                    ],
                )
                skipped = [(i, d) for i, d in zip(group, decisions, strict=True) if d.action == "skip"]
                if skipped:
                    settle()
                    self.registry.update_job_files(
                        job.id, [(i.name, "skipped", i.doc_id) for i, _ in skipped]
                    )
                    for item, _ in skipped:
                        state.done += 1
                        _report(progress, state, item.name, "skipped (unchanged)")
                for item, decision in zip(group, decisions, strict=True):
                    if decision.action == "skip":
                        continue
                    try:
                        # Screened before redaction: links and e-mail domains are still there to judge.
                        built = item.build()
                        screened = screen_chunks(
                            [
                                _guarded_chunk(_versioned(c, decision.version), item.doc_id, ids)
                                for c in built
                            ],
                            own_domains,
                        )
                        found: list[tuple[str, str]] = []
                        chunks = [redact_chunk(c, redactor, found) for c in screened]
                        links[item.doc_id] = _subject_links(raw_items[item.doc_id], item, built, found, ids)
                        if not chunks:
                            raise ValueError("no text to index")
                    except Exception as exc:  # one bad file must not stop the batch
                        settle()
                        self._fail(tenant_id, job.id, item, _describe(exc), state, progress)
                        continue
                    if pending and len(chunks) > self.batch_chunks:
                        flush()  # a large document is written alone, in parts, reporting each
                    pending.append((item, decision.version, decision.indexed_version, chunks))
                    if sum(len(p[3]) for p in pending) >= self.batch_chunks:
                        flush()
            if pending:
                flush()
            settle()
        finally:
            if writer is not None:
                # Stopped early (the service shuts down): a write already sent finishes, nothing is lost;
                # its documents are taken up again when the job resumes, as if never written.
                writer.shutdown(wait=True)
        finished = self.registry.finish_job(job.id)
        self._start_build()
        self.changed(tenant_id)
        return finished

    def _start_build(self) -> None:
        """Start the HNSW build the new points call for, aside (KnowledgeIndex.maintain_async): the next
        job is not held behind it, and searches and writes go on meanwhile. Whoever closes the index right
        after a job waits for it first (`index.maintain()`), or the build is dropped and redone later."""
        try:
            building = self.index.maintain_async()
        except Exception as exc:  # the points are stored and searchable; the next job's build takes them
            log.warning("could not start the index build: %s", exc)
            return
        building.add_done_callback(_report_build)

    def _attempt_write(
        self,
        tenant_id: str,
        chunks: list[Chunk],
        pending: Sequence[tuple[IngestItem, int, int | None, Any]],
        written: Callable[[int], None] | None,
        ahead: EncodingAhead | None = None,
    ) -> Exception | None:
        """Write a batch (once more if the index process died mid-call); return the error, or None.

        `ahead`: the batch's encoding, already started (KnowledgeIndex.encode_ahead)."""
        try:
            try:
                self._write(tenant_id, chunks, pending, written, ahead)
            except StoreError as exc:  # e.g. the index process died mid-call: it starts again on the next
                log.warning("writing to the index failed (%s); trying once more", exc)
                self._write(tenant_id, chunks, pending, written)
        except Exception as exc:
            return exc
        finally:
            if ahead is not None:
                ahead.discard()  # not all of it stored (the write failed): nothing is left waiting
        return None

    def _write(
        self,
        tenant_id: str,
        chunks: list[Chunk],
        pending: Sequence[tuple[IngestItem, int, int | None, Any]],
        written: Callable[[int], None] | None = None,
        ahead: EncodingAhead | None = None,
    ) -> None:
        """Upsert a batch in parts of `batch_chunks` (`written` is told the count after each), then drop
        the older versions of the documents it updates (idempotent). `ahead` is the encoding of all of
        `chunks`, started earlier: they are stored in one upsert, which uses it."""
        if ahead is not None:
            self.index.upsert(chunks, batch_size=64, ahead=ahead)
            if written:
                written(len(chunks))
            chunks = []
        for start in range(0, len(chunks), self.batch_chunks):
            self.index.upsert(chunks[start : start + self.batch_chunks], batch_size=64)
            if written:
                written(min(len(chunks), start + self.batch_chunks))
        for item, version, indexed_version, _ in pending:
            if indexed_version is not None:
                self.index.delete_stale(tenant_id, item.doc_id, version)

    def _fail(
        self,
        tenant_id: str,
        job_id: str,
        item: IngestItem,
        error: str,
        state: _JobState,
        progress: ProgressFn | None,
    ) -> None:
        log.warning("ingestion of %s failed: %s", item.name, error)
        self.registry.mark_failed(tenant_id, item.doc_id, error)
        self.registry.update_job_file(job_id, item.name, "failed", doc_id=item.doc_id, error=error)
        state.done += 1
        _report(progress, state, item.name, f"failed: {error}")

    def _drop_partial(self, tenant_id: str, doc_id: str, indexed_version: int | None) -> None:
        """Remove chunks a failed write may have left, keeping the version that was live before."""
        try:
            if indexed_version is None:
                self.index.delete_document(tenant_id, doc_id)
            else:
                self.index.delete_stale(tenant_id, doc_id, indexed_version)
        except Exception:  # the engine is down; the next run of the job cleans up through delete_stale
            log.exception("could not remove partial chunks of %s", doc_id)

    def delete_document(self, tenant_id: str, doc_id: str) -> bool:
        """Remove every chunk of a document from the index and mark it deleted; False if unknown."""
        if self.registry.get_document(tenant_id, doc_id) is None:
            return False
        self.index.delete_document(tenant_id, doc_id)
        self.registry.mark_deleted(tenant_id, doc_id)
        self.changed(tenant_id)
        return True


@dataclass
class _JobState:
    total: int
    done: int = 0
    chunks: int = 0


def _report(progress: ProgressFn | None, state: _JobState, name: str, status: str) -> None:
    if progress:
        progress(IngestProgress(state.done, state.total, state.chunks, name, status))


def _versioned(chunk: Chunk, version: int) -> Chunk:
    return replace(chunk, metadata={**chunk.metadata, "doc_version": version})


def _describe(exc: Exception) -> str:
    text = str(exc) or exc.__class__.__name__
    return text if isinstance(exc, ValueError) else f"{exc.__class__.__name__}: {text}"


def iter_files(paths: Iterable[Path]) -> list[Path]:
    """Return the files named by `paths`, walking folders (hidden files skipped), sorted for a stable order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(p for p in sorted(path.rglob("*")) if p.is_file() and not p.name.startswith("."))
        else:
            files.append(path)
    return files


def _report_build(building: Future[Any]) -> None:
    error = building.exception()
    if error is not None:
        log.warning("the index build failed: %s", error)
