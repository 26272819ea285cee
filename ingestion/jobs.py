"""The ingestion job runner: saved inputs ingested by worker threads, tenants taking turns.

Every ingestion request becomes a registry job whose input is saved under
`data_dir/uploads/<tenant>/<job id>/` (the files, plus `manifest.json` written last), then queued on its
tenant's queue. Each tenant's jobs run in order on that tenant's worker thread, and the tenants take
turns: the index takes one writer, so one job at a time holds the turn, and it passes it on at each
progress step (a file, or a part of a large file) when another tenant's job waits. One tenant's large
job so slows another's small one by a step, not by the whole job. Files are parsed in a worker process
with a time and a memory limit (`ingestion.parse_worker`); the turn is free while one parses. The
request returns at once with the job; `GET /v1/jobs/{id}` shows its progress. A finished job's folder is
removed (its content is in the index and the registry).

Nothing is lost on a restart: a job that was queued or running when the process stopped still has its
folder, and `resume_interrupted` runs it again at startup (ingestion is idempotent: unchanged documents
are skipped, point ids are deterministic).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, Protocol

from retrieval.models import Source

from .parse_worker import ParseCancelled, ParseLimits
from .pipeline import IngestItem, Ingestor, IngestProgress
from .registry import Registry
from .registry_models import Job, JobKind
from .sources import TextDocument, chat_items, file_items, sheet_item, text_items

log = logging.getLogger(__name__)

UPLOADS_DIR = "uploads"  # under the data dir: uploads/<tenant>/<job id>/
MANIFEST = "manifest.json"
FILES_DIR = "files"
TEXTS_FILE = "documents.json"

InputForm = Literal["files", "faq", "quick_replies", "chats", "text"]
_JOB_KIND: dict[InputForm, JobKind] = {
    "files": "files",
    "faq": "faq",
    "quick_replies": "quick_replies",
    "chats": "chats",
    "text": "files",
}


class JobMetrics(Protocol):
    """What the runner reports to a metrics registry (the API's Prometheus metrics implement it)."""

    def file_processed(self, kind: str, outcome: str, chunks: int) -> None: ...

    def jobs_now(self, running: int, queued: int, files_pending: int) -> None: ...


# --- A job's saved input --------------------------------------------------------------------------

_MAX_DISK_NAME_BYTES = 240  # file systems allow 255 bytes per name; Turkish letters take 2 in UTF-8


def disk_name(name: str) -> str:
    """Return `name` if it fits on disk, else a shortened name with the same extension and a hash of the
    whole name (the shown name stays the job's file name and the document id)."""
    if len(name.encode()) <= _MAX_DISK_NAME_BYTES:
        return name
    stem, suffix = os.path.splitext(name)
    if len(suffix.encode()) > 16:
        stem, suffix = name, ""
    tag = "~" + hashlib.sha256(name.encode()).hexdigest()[:12]
    room = _MAX_DISK_NAME_BYTES - len(tag.encode()) - len(suffix.encode())
    return stem.encode()[:room].decode(errors="ignore") + tag + suffix


@dataclass
class IngestionInput:
    """A checked ingestion request: the job's file names, and how to save the input in the job folder."""

    form: InputForm
    names: list[str]
    write: Callable[[Path], None]
    stored: list[str] = field(default_factory=list)  # shown names of the files saved under files/
    problems: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # file name -> why it fails without a job run

    @property
    def kind(self) -> JobKind:
        return _JOB_KIND[self.form]


def items_for(tenant_id: str, job_dir: Path, limits: ParseLimits | None = None) -> list[IngestItem]:
    """Return the items of the job saved in `job_dir`, in the order of its job file names; files and
    sheets are parsed within `limits` when given (a chat export is read when its job starts)."""
    manifest = json.loads((job_dir / MANIFEST).read_text(encoding="utf-8"))
    form: InputForm = manifest["form"]
    names: list[str] = manifest["stored"]
    stored = [job_dir / FILES_DIR / disk_name(n) for n in names]
    if form == "files":
        return file_items(tenant_id, stored, names=names, limits=limits)
    if form in ("faq", "quick_replies"):
        source: Source = "faq" if form == "faq" else "quick_reply"
        return [sheet_item(tenant_id, stored[0], source, name=names[0], limits=limits)]
    if form == "chats":
        return chat_items(tenant_id, stored[0]).items
    raw = json.loads((job_dir / TEXTS_FILE).read_text(encoding="utf-8"))
    return text_items(tenant_id, [TextDocument(**d) for d in raw])


# --- The worker ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Accepted:
    job: Job
    replayed: bool
    problems: list[str]


class _Stopping(BaseException):  # noqa: N818 - not an error: the job resumes at the next start
    """Raised inside a running job when the service shuts down; the job resumes at the next start."""


@dataclass
class _Running:
    kind: str
    remaining: int
    chunks: int = 0
    last: str | None = None
    partial: int = 0  # chunks of the large file being written, not yet counted in the registry


class _Turns:
    """Which tenant's job may use the index now: tenants take turns in the order they asked."""

    def __init__(self, stopping: threading.Event) -> None:
        self._stopping = stopping
        self._cond = threading.Condition()
        self._holder: str | None = None
        self._waiting: deque[str] = deque()

    def take(self, tenant_id: str) -> None:
        """Wait for the turn; raise `_Stopping` when the service stops meanwhile."""
        with self._cond:
            self._waiting.append(tenant_id)
            self._cond.wait_for(
                lambda: self._stopping.is_set() or (self._holder is None and self._waiting[0] == tenant_id)
            )
            if self._stopping.is_set():
                self._waiting.remove(tenant_id)
                self._cond.notify_all()
                raise _Stopping
            self._waiting.popleft()
            self._holder = tenant_id

    def give_back(self, tenant_id: str) -> None:
        with self._cond:
            if self._holder == tenant_id:
                self._holder = None
                self._cond.notify_all()

    def pass_on(self, tenant_id: str) -> None:
        """Let the tenants waiting go first, then take the turn again."""
        with self._cond:
            if not self._waiting:
                return
        self.give_back(tenant_id)
        self.take(tenant_id)

    @contextlib.contextmanager
    def released(self, tenant_id: str) -> Iterator[None]:
        """Free the turn while the caller does no index work (a file is parsed), then take it again."""
        self.give_back(tenant_id)
        try:
            yield
        finally:
            self.take(tenant_id)

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()


class IngestionJobs:
    """Accepts ingestion requests as jobs; runs each tenant's jobs in order, the tenants taking turns."""

    def __init__(
        self,
        ingestor: Ingestor,
        uploads_dir: Path,
        metrics: JobMetrics | None = None,
        *,
        single_process: bool = True,
        limits: ParseLimits | None = None,
        shutdown_timeout_s: float = 10.0,
        on_finished: Callable[[Job], None] | None = None,
    ) -> None:
        """`single_process`: no other process ingests into this registry (true for the edge index),
        so a job left open without a saved input at startup is dead, not another process's.
        `limits`: how long and with how much memory one file may be parsed (default `ParseLimits()`);
        `shutdown_timeout_s`: how long `close` waits for the running job to stop; `on_finished`: called on
        the worker thread with each job this process ran once it has ended (succeeded, partial or failed),
        and must return quickly (the job callbacks hand it to a thread of their own)."""
        self.ingestor = ingestor
        self.registry = ingestor.registry
        self.uploads_dir = uploads_dir
        self.metrics = metrics
        self.single_process = single_process
        self.limits = limits or ParseLimits()
        self.shutdown_timeout_s = shutdown_timeout_s
        self.on_finished = on_finished
        self._stopping = threading.Event()
        self._turns = _Turns(self._stopping)
        self._lock = threading.Lock()
        self._jobs: dict[str, _Running] = {}  # queued and running jobs of this process
        self._queues: dict[str, deque[tuple[Job, Path]]] = {}  # per tenant, in the order accepted
        self._workers: dict[str, threading.Thread] = {}  # per tenant with queued jobs
        self._current: set[str] = set()  # the running ones (one holds the turn)

    def accept(self, tenant_id: str, job_input: IngestionInput, idempotency_key: str | None) -> Accepted:
        """Return the queued job for `job_input`, or the job an earlier request with the same key made."""
        job = self.registry.create_job(tenant_id, job_input.kind, job_input.names, idempotency_key)
        job_dir = self.uploads_dir / tenant_id / job.id
        if job.status != "queued":
            return Accepted(job, True, job_input.problems)
        try:
            job_dir.mkdir(parents=True)
        except FileExistsError:  # the same key is being (or was) saved by another request
            return Accepted(job, True, job_input.problems)
        try:
            job_input.write(job_dir)
            manifest = {"form": job_input.form, "stored": job_input.stored}
            # Written last: a folder with a manifest holds a complete input.
            (job_dir / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
        except BaseException as exc:
            shutil.rmtree(job_dir, ignore_errors=True)
            self.registry.finish_job(job.id, error=f"could not save the upload: {self._public(exc)}")
            raise
        if job_input.refused:
            for name, reason in job_input.refused.items():
                self.registry.update_job_file(job.id, name, "failed", error=reason)
            job = self.registry.get_job(tenant_id, job.id) or job
        self._submit(job, job_dir)
        return Accepted(job, False, job_input.problems)

    def progress(self, tenant_id: str, job_id: str) -> tuple[Job, str | None] | None:
        """Return the tenant's job with its live progress and the step it is at, or None (also for another
        tenant's job)."""
        job = self.registry.get_job(tenant_id, job_id)
        if job is None:
            return None
        running = self._jobs.get(job_id)
        if running is None:
            return job, None
        if running.partial and job.status == "running":  # a large file's parts written so far
            job = replace(job, chunks_written=job.chunks_written + running.partial)
        return job, running.last

    def resume_interrupted(self) -> int:
        """Queue again the jobs a previous process left queued or running; return how many.

        With `single_process`, a job left open without a saved input is finished as interrupted, and
        upload folders no open job owns (a process stopped between finishing a job and removing its
        folder) are removed: uploads hold raw customer data and never outlive their job.
        """
        if self.single_process:
            jobs, _ = close_interrupted(self.registry, self.uploads_dir)
        else:
            jobs = [j for j in self.registry.interrupted_jobs() if _saved(self.uploads_dir, j)]
        for job in jobs:
            log.info("resuming ingestion job %s (%s, tenant %s)", job.id, job.status, job.tenant_id)
            self._submit(job, self.uploads_dir / job.tenant_id / job.id)
        if self.single_process:
            _remove_orphan_uploads(self.uploads_dir, {(j.tenant_id, j.id) for j in jobs})
        return len(jobs)

    @property
    def alive(self) -> bool:
        return not self._stopping.is_set()

    def close(self) -> None:
        """Stop within `shutdown_timeout_s`: the running job stops at its next progress step (a file being
        parsed is abandoned) and stays open, queued ones stay queued; all resume at the next start."""
        self._stopping.set()
        self._turns.wake()
        deadline = time.monotonic() + self.shutdown_timeout_s
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                log.warning(
                    "ingestion worker %s still busy at shutdown; its job resumes at the next start",
                    worker.name,
                )

    # --- internals ---

    def _submit(self, job: Job, job_dir: Path) -> None:
        if self._stopping.is_set():  # shutting down: the saved job stays queued and resumes at the next start
            return
        tenant_id = job.tenant_id
        with self._lock:
            self._jobs[job.id] = _Running(job.kind, job.files_total - job.files_done - job.files_failed)
            self._queues.setdefault(tenant_id, deque()).append((job, job_dir))
            if tenant_id not in self._workers:
                worker = threading.Thread(
                    target=self._work, args=(tenant_id,), name=f"ingest-{len(self._workers)}", daemon=True
                )
                self._workers[tenant_id] = worker
                worker.start()
        self._update_gauges()

    def _work(self, tenant_id: str) -> None:
        """Run the tenant's queued jobs in order; the thread ends when its queue is empty."""
        while True:
            with self._lock:
                queue = self._queues.get(tenant_id)
                if not queue or self._stopping.is_set():
                    self._queues.pop(tenant_id, None)
                    self._workers.pop(tenant_id, None)
                    return
                job, job_dir = queue.popleft()
            self._run(job, job_dir)

    def _run(self, job: Job, job_dir: Path) -> None:
        if self._stopping.is_set():
            return
        keep_input = False
        try:
            self._turns.take(job.tenant_id)
            with self._lock:
                self._current.add(job.id)
            self._update_gauges()
            # A resumed job goes on where it stopped: what it already indexed stays counted as indexed.
            finished = {f.name for f in job.files if f.status in ("indexed", "skipped")}
            ids = self.registry.ids  # job file names are stored as ids (a name with personal data, keyed)
            limits = replace(
                self.limits,
                cancelled=self._stopping.is_set,
                idle=lambda: self._turns.released(job.tenant_id),
            )
            items = [i for i in items_for(job.tenant_id, job_dir, limits) if ids.id(i.name) not in finished]
            self.ingestor.run(
                job.tenant_id, job.kind, items, job=job, progress=lambda p: self._on_progress(job, p)
            )
        except (_Stopping, ParseCancelled):
            keep_input = True
            log.info("ingestion job %s interrupted by shutdown; it resumes at the next start", job.id)
        except Exception as exc:
            if self._stopping.is_set():  # the index closed under it at shutdown: resume it next time
                keep_input = True
                log.info(
                    "ingestion job %s stopped at shutdown (%s); it resumes at the next start", job.id, exc
                )
                return
            log.exception("ingestion job %s stopped", job.id)
            with contextlib.suppress(LookupError):  # the tenant (and its jobs) was deleted meanwhile
                self.registry.finish_job(job.id, error=f"ingestion stopped: {self._public(exc)}")
        finally:
            self._turns.give_back(job.tenant_id)
            with self._lock:
                self._jobs.pop(job.id, None)
                self._current.discard(job.id)
            self._update_gauges()
            if not keep_input:
                shutil.rmtree(job_dir, ignore_errors=True)
                self._announce(job)

    def _announce(self, job: Job) -> None:
        """Hand the ended job to `on_finished`; what it raises is logged, never the job's concern."""
        if self.on_finished is None:
            return
        try:
            ended = self.registry.get_job(job.tenant_id, job.id)
            if ended is not None and ended.status not in ("queued", "running"):
                self.on_finished(ended)
        except Exception:
            log.exception("announcing the end of ingestion job %s failed", job.id)

    def _public(self, error: BaseException) -> str:
        """Return the error's text without the server's folders (a file under them keeps its name)."""
        return public_text(str(error) or type(error).__name__, self.uploads_dir.parent)

    def _on_progress(self, job: Job, progress: IngestProgress) -> None:
        running = self._jobs.get(job.id)
        if running is not None:
            if progress.partial:
                running.partial += progress.chunks_written - running.chunks
            else:
                running.remaining -= 1
                running.partial = 0
            running.last = f"{progress.current}: {progress.status}"
            if self.metrics:
                outcome = progress.status.split(" ", 1)[0].rstrip(":")
                self.metrics.file_processed(running.kind, outcome, progress.chunks_written - running.chunks)
            running.chunks = progress.chunks_written
            self._update_gauges()
        if self._stopping.is_set():
            raise _Stopping
        self._turns.pass_on(job.tenant_id)  # another tenant's job waiting goes first

    def _update_gauges(self) -> None:
        if self.metrics is None:
            return
        with self._lock:
            running = len(self._current)
            queued = len(self._jobs) - running
            pending = sum(max(0, r.remaining) for r in self._jobs.values())
        self.metrics.jobs_now(running, queued, pending)


# --- Jobs a stopped process left open ------------------------------------------------------------

INTERRUPTED = (
    "interrupted before it finished (the process stopped) and its input was not kept; run it again: "
    "unchanged files are skipped"
)


def _saved(uploads_dir: Path, job: Job) -> bool:
    return (uploads_dir / job.tenant_id / job.id / MANIFEST).is_file()


def close_interrupted(registry: Registry, uploads_dir: Path) -> tuple[list[Job], list[Job]]:
    """Finish as interrupted every open job whose input was not saved (a killed `ingest` command, an
    upload cut short); return (the open jobs whose saved input can run again, the jobs finished).

    Only for a process that is the index's one writer (the edge index's lock says no other runs).
    """
    resumable, closed = [], []
    for job in registry.interrupted_jobs():
        if _saved(uploads_dir, job):
            resumable.append(job)
            continue
        log.warning("ingestion job %s (tenant %s) was interrupted; marked failed", job.id, job.tenant_id)
        with contextlib.suppress(LookupError):
            closed.append(registry.finish_job(job.id, error=INTERRUPTED))
        shutil.rmtree(uploads_dir / job.tenant_id / job.id, ignore_errors=True)
    return resumable, closed


def _remove_orphan_uploads(uploads_dir: Path, keep: set[tuple[str, str]]) -> None:
    if not uploads_dir.is_dir():
        return
    for tenant_dir in uploads_dir.iterdir():
        if not tenant_dir.is_dir():
            continue
        for job_dir in tenant_dir.iterdir():
            if (tenant_dir.name, job_dir.name) not in keep:
                log.info("removing the upload folder of finished job %s", job_dir.name)
                shutil.rmtree(job_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            tenant_dir.rmdir()  # only when empty


def public_text(text: str, data_dir: Path) -> str:
    """Return `text` with paths inside `data_dir` cut to the file's own name (the folder alone: "")."""
    root = re.escape(str(data_dir).rstrip("/"))
    text = re.sub(root + r"/(?:[^/'\"\s]+/)*", "", text)
    return re.sub(root, "the data folder", text)
