"""The default store: an embedded Qdrant Edge shard on disk under the data dir."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from .edge_build import INDEXES_ON_DISK, SPARSE_FULL_SCAN, keyword_index_params, shard_config
from .models import SearchFilters, SearchHit
from .sparse import SparseVector
from .store import (
    DENSE,
    KEYWORD_FIELDS,
    SPARSE,
    IndexMeta,
    StoredPoint,
    StoreError,
    bare_hit,
    hydrated,
    require_tenant,
)

log = logging.getLogger(__name__)

_META_FILE = "index.json"
_LOCK_FILE = ".lock"
# The shard lives in a generation folder: `shard` (the first), then `shard-1`, `shard-2`, ... as builds
# aside and compactions replace it. The pointer file names the current one (no pointer: `shard`); it is
# replaced atomically, so whatever moment the service stops at, the pointer decides on the next open and
# every other generation folder is a leftover to remove.
_SHARD_DIR = "shard"
_POINTER_FILE = "shard.current"
_GENERATION = re.compile(r"shard(?:-(\d+))?$")
# What an older release's compact() left when it stopped between its two renames.
_LEGACY_NEW_DIR = "shard.compact"
_LEGACY_OLD_DIR = "shard.old"
_BUILD_JOIN_S = 30.0


def current_shard_dir(index_dir: Path) -> Path:
    """Return the folder of the index's current shard generation (what the pointer file names)."""
    pointer = Path(index_dir) / _POINTER_FILE
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return Path(index_dir) / _SHARD_DIR
    if not _GENERATION.match(name):
        raise StoreError(f"The shard pointer {pointer} is damaged ({name[:40]!r}); restore a backup")
    return Path(index_dir) / name


@dataclass(eq=False)
class _Build:
    """An optimize running aside: its folder (the next generation), the writes made since the copy, and
    the future its callers wait on."""

    dir: Path
    future: Future[bool] = field(default_factory=Future)
    journal: list[qe.UpdateOperation] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    aborted: bool = False
    started: float = field(default_factory=time.perf_counter)


def edge_filter(tenant_id: str, filters: SearchFilters | None = None, doc_id: str | None = None) -> qe.Filter:
    """Return the engine filter: always the tenant, then optional source/doc/metadata conditions."""
    must: list[qe.FieldCondition] = [qe.FieldCondition(key="tenant_id", match=qe.MatchValue(tenant_id))]
    if doc_id is not None:
        must.append(qe.FieldCondition(key="doc_id", match=qe.MatchValue(doc_id)))
    if filters is not None:
        if filters.sources:
            must.append(qe.FieldCondition(key="source", match=qe.MatchAny(list(filters.sources))))
        if filters.doc_ids:
            must.append(qe.FieldCondition(key="doc_id", match=qe.MatchAny(list(filters.doc_ids))))
        for key, value in filters.metadata.items():
            must.append(qe.FieldCondition(key=f"metadata.{key}", match=qe.MatchValue(value)))
    return qe.Filter(must=must)  # type: ignore[arg-type]


def _trim_heap() -> None:
    """Give the heap the closed shard freed back to the system (glibc keeps it otherwise: at 20k points
    the index process grew 414 -> 566 MiB over five swaps, 1.31x a fresh open). ctypes releases the GIL."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


def outdated_segments(shard_dir: Path) -> int:
    """Return how many of the shard's segments were written with other index settings than today's: a
    sparse full-scan threshold other than SPARSE_FULL_SCAN, or (INDEXES_ON_DISK) a built BM25 index or
    payload keyword index held in the heap. The engine reads them from each segment's own files."""
    outdated = 0
    for segment in (shard_dir / "segments").iterdir() if (shard_dir / "segments").is_dir() else ():
        try:
            config = json.loads((segment / "segment.json").read_text(encoding="utf-8"))["config"]
            sparse_index = config["sparse_vector_data"][SPARSE]["index"]
            stale = sparse_index["full_scan_threshold"] != SPARSE_FULL_SCAN
            if INDEXES_ON_DISK:
                stale |= sparse_index.get("index_type") == "ImmutableRam"
                stale |= _payload_index_in_heap(segment / "payload_index" / "config.json")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # a layout this check does not know: leave the segment as it is
        outdated += stale
    return outdated


def _payload_index_in_heap(config_file: Path) -> bool:
    if not config_file.exists():
        return False
    fields = json.loads(config_file.read_text(encoding="utf-8")).get("indexed_fields") or {}
    return any(not params.get("on_disk") for params in fields.values())


class EdgeStore:
    """Qdrant Edge shard in the index dir's current generation folder, locked to one process, with the
    index metadata beside it."""

    backend = "edge"

    def __init__(self, index_dir: Path, meta: IndexMeta) -> None:
        self.index_dir = Path(index_dir)
        self._write_lock = threading.Lock()
        # Readers count per shard object: a shard replaced by a build is closed once none uses it.
        self._readers = threading.Condition()
        self._using: dict[int, int] = {}
        self._build: _Build | None = None
        self._build_thread: threading.Thread | None = None
        try:
            self.index_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"Cannot create the index directory {self.index_dir}: {exc}") from exc
        self._lock_fd = self._acquire_process_lock()
        try:
            self.shard_dir = self._recover()
            self._meta = self._load_meta()
            shard_dir = self.shard_dir
            if self._meta is None:
                if shard_dir.exists() and any(shard_dir.iterdir()):
                    raise StoreError(
                        f"The index at {self.index_dir} has shard data but no {_META_FILE}: it is damaged or "
                        "was not written by this service. Move it away and ingest again."
                    )
                self._shard = qe.EdgeShard.create(str(shard_dir), self._config(meta.dim))
                for field_name in KEYWORD_FIELDS:
                    self._shard.update(
                        qe.UpdateOperation.create_field_index(field_name, keyword_index_params(field_name))
                    )
                self._write_meta(meta)
                self._meta = meta
            else:
                try:
                    # The config is re-applied: an index written by an older release gets today's settings.
                    self._shard = qe.EdgeShard.load(str(shard_dir), self._config(self._meta.dim))
                except Exception as exc:
                    raise StoreError(
                        f"The index at {shard_dir} cannot be opened ({exc}). It may be corrupt: restore a "
                        "backup or move it away and ingest again."
                    ) from exc
        except BaseException:
            self._release_process_lock()
            raise
        outdated = outdated_segments(self.shard_dir)
        if outdated:
            # Segments keep the settings they were written with, whatever the shard is opened with.
            log.warning(
                "the index has %d segments written with older search settings: rewriting it once", outdated
            )
            self.compact()
            self.optimize_aside()  # the rewritten shard's HNSW, built aside while it serves

    @staticmethod
    def _config(dim: int) -> qe.EdgeConfig:
        return shard_config(dim)

    def _acquire_process_lock(self) -> int:
        path = self.index_dir / _LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreError(
                f"The index at {self.index_dir} is in use (lock held by pid {holder}). "
                "Stop it, or point INVEKTO_DATA_DIR at another directory."
            ) from exc
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        return fd

    def _release_process_lock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None  # type: ignore[assignment]

    def _load_meta(self) -> IndexMeta | None:
        path = self.index_dir / _META_FILE
        if not path.exists():
            return None
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return IndexMeta(
                embedder=raw["embedder"], dim=int(raw["dim"]), sparse=raw["sparse"], schema=raw["schema"]
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(
                f"The index metadata {path} is corrupt ({exc}); move the index away and re-ingest."
            ) from exc

    def _write_meta(self, meta: IndexMeta) -> None:
        path = self.index_dir / _META_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(meta.as_dict(), indent=2), encoding="utf-8")
        os.replace(tmp, path)

    def meta(self) -> IndexMeta | None:
        return self._meta

    # ----- generations -----

    def _recover(self) -> Path:
        """Return the current shard folder, after removing what a stopped build or compaction left."""
        shard, old = self.index_dir / _SHARD_DIR, self.index_dir / _LEGACY_OLD_DIR
        pointer = self.index_dir / _POINTER_FILE
        if not pointer.exists() and not shard.exists() and old.exists():
            os.rename(old, shard)  # an older release stopped between its compaction's renames
        current = current_shard_dir(self.index_dir)
        for entry in self.index_dir.iterdir():
            leftover = entry.name in (_LEGACY_NEW_DIR, _LEGACY_OLD_DIR) or bool(_GENERATION.match(entry.name))
            if leftover and entry != current and entry.is_dir():
                log.info("removing %s, left by a build or compaction that did not finish", entry)
                shutil.rmtree(entry, ignore_errors=True)
        pointer.with_suffix(".tmp").unlink(missing_ok=True)
        return current

    def _next_generation(self) -> Path:
        numbers = [
            int(m.group(1) or 0) for m in (_GENERATION.match(e.name) for e in self.index_dir.iterdir()) if m
        ]
        return self.index_dir / f"{_SHARD_DIR}-{max(numbers, default=0) + 1}"

    def _point_to(self, shard_dir: Path) -> None:
        """Make `shard_dir` the current generation: the pointer is written aside, synced, then renamed."""
        pointer = self.index_dir / _POINTER_FILE
        tmp = pointer.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as out:
            out.write(shard_dir.name)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, pointer)
        # Once renamed the pointer holds: a failure to sync the folder must not undo the swap.
        try:
            dir_fd = os.open(self.index_dir, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            log.warning("could not sync %s after switching the shard: %s", self.index_dir, exc)

    def _remove_unless_current(self, shard_dir: Path) -> None:
        """Remove a generation that did not become current (the pointer file decides, as on open)."""
        try:
            current = current_shard_dir(self.index_dir)
        except (OSError, StoreError):
            return  # the next open decides
        if shard_dir != current:
            shutil.rmtree(shard_dir, ignore_errors=True)

    def _swap(self, new: qe.EdgeShard, new_dir: Path) -> None:
        """Called with the write lock held and every write in `new` (its write-ahead log at least): make it
        current, on disk then for readers; close and remove the old shard once no search uses it."""
        old, old_dir = self._shard, self.shard_dir
        try:
            self._point_to(new_dir)
        except BaseException:
            new.close()  # the old generation stays current; the caller removes the new one
            raise
        # From here on the new generation is the index: nothing below may fail the swap.
        with self._readers:
            self._shard, self.shard_dir = new, new_dir
            while self._using.get(id(old)):
                self._readers.wait()
        time.sleep(0)  # searches waiting for the GIL run first: closing holds it (0.1 s at 20k points)
        try:
            old.close()
        except Exception as exc:  # its files go below either way; the next open would remove them too
            log.warning("closing the replaced shard %s failed: %s", old_dir, exc)
        shutil.rmtree(old_dir, ignore_errors=True)
        _trim_heap()

    @contextmanager
    def _reading(self) -> Iterator[qe.EdgeShard]:
        """The current shard, kept open until the caller is done with it (a swap waits for that)."""
        with self._readers:
            shard = self._shard
            if shard is None:
                raise StoreError("The index is closed")
            self._using[id(shard)] = self._using.get(id(shard), 0) + 1
        try:
            yield shard
        finally:
            with self._readers:
                left = self._using[id(shard)] - 1
                if left:
                    self._using[id(shard)] = left
                else:
                    del self._using[id(shard)]
                    self._readers.notify_all()

    def _update(self, operation: qe.UpdateOperation) -> None:
        """Apply a write (the write lock held); while a build runs aside it is also kept for the copy."""
        self._shard.update(operation)
        if self._build is not None:
            self._build.journal.append(operation)

    # ----- writes -----

    def upsert(self, points: Sequence[StoredPoint]) -> None:
        if not points:
            return
        batch = [
            qe.Point(
                id=p.id,
                vector={
                    DENSE: p.dense.astype(np.float32).tolist(),
                    SPARSE: qe.SparseVector(p.sparse.indices, p.sparse.values),
                },
                payload=p.payload,
            )
            for p in points
        ]
        with self._write_lock:
            self._update(qe.UpdateOperation.upsert_points(batch))

    def delete_document(self, tenant_id: str, doc_id: str) -> None:
        flt = edge_filter(require_tenant(tenant_id), doc_id=doc_id)
        with self._write_lock:
            self._update(qe.UpdateOperation.delete_points_by_filter(flt))

    def delete_stale(self, tenant_id: str, doc_id: str, keep_version: int) -> None:
        flt = edge_filter(require_tenant(tenant_id), doc_id=doc_id)
        keep = qe.FieldCondition(key="metadata.doc_version", match=qe.MatchValue(keep_version))
        with self._write_lock:
            self._update(
                qe.UpdateOperation.delete_points_by_filter(qe.Filter(must=flt.must, must_not=[keep]))
            )

    def delete_tenant(self, tenant_id: str) -> None:
        with self._write_lock:
            self._update(qe.UpdateOperation.delete_points_by_filter(edge_filter(require_tenant(tenant_id))))

    # ----- reads -----

    def count(self, tenant_id: str | None = None, filters: SearchFilters | None = None) -> int:
        flt = edge_filter(require_tenant(tenant_id), filters) if tenant_id is not None else None
        with self._reading() as shard:
            return int(shard.count(qe.CountRequest(exact=True, filter=flt)))

    def candidates(
        self,
        tenant_id: str,
        dense: np.ndarray,
        sparse: SparseVector,
        limit: int,
        filters: SearchFilters | None = None,
    ) -> tuple[list[SearchHit], list[SearchHit]]:
        flt = edge_filter(require_tenant(tenant_id), filters)
        requests = [
            qe.QueryRequest(
                limit=limit,
                query=qe.Query.Nearest(dense.astype(np.float32).tolist(), using=DENSE),
                filter=flt,
                with_payload=False,
            )
        ]
        if sparse:
            requests.append(
                qe.QueryRequest(
                    limit=limit,
                    query=qe.Query.Nearest(qe.SparseVector(sparse.indices, sparse.values), using=SPARSE),
                    filter=flt,
                    with_payload=False,
                )
            )
        with self._reading() as shard:
            results = shard.query_batch(qe.QueryBatchRequest(requests))
        dense_hits = [bare_hit(p.id, p.score) for p in results[0]]
        sparse_hits = [bare_hit(p.id, p.score) for p in results[1]] if sparse else []
        return dense_hits, sparse_hits

    def hydrate(self, tenant_id: str, hits: Sequence[SearchHit]) -> list[SearchHit]:
        if not hits:
            return []
        with self._reading() as shard:
            records = shard.retrieve([h.point_id for h in hits], with_payload=True, with_vector=False)
        return hydrated(hits, {str(r.id): r.payload or {} for r in records}, require_tenant(tenant_id))

    def chunks(self, tenant_id: str, doc_id: str | None = None) -> list[SearchHit]:
        flt = edge_filter(require_tenant(tenant_id), doc_id=doc_id)
        out: list[SearchHit] = []
        offset = None
        with self._reading() as shard:
            while True:
                records, offset = shard.scroll(
                    qe.ScrollRequest(offset=offset, limit=512, filter=flt, with_payload=True)
                )
                out.extend(SearchHit.from_payload(r.id, 0.0, r.payload or {}) for r in records)
                if offset is None:
                    return out

    # ----- maintenance -----

    def compact(self) -> int:
        """Rewrite the shard with its live points only and return their number.

        Deleting points only marks them: their payloads stay in the segments and the write-ahead log
        until the engine reuses the space. After an erasure nothing of them may stay on disk, so the live
        points are copied into a new shard generation, which replaces the old one; the old one is removed.
        A build running aside is stopped (it would bring the deleted points back). The new shard's dense
        vectors are not in HNSW yet (the next KnowledgeIndex.maintain builds it).
        """
        return self._rewrite(None)

    @staticmethod
    def _vectors(record: Any, encode: Callable[[dict[str, Any]], SparseVector] | None) -> dict[str, Any]:
        vectors = dict(record.vector or {})
        if encode is not None:
            sparse = encode(record.payload or {})
            vectors[SPARSE] = qe.SparseVector(sparse.indices, sparse.values)
        return vectors

    def reencode_sparse(
        self,
        encode: Callable[[dict[str, Any]], SparseVector],
        meta: IndexMeta,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Rewrite the shard with each point's BM25 vector encoded again from its payload by `encode`
        (dense vectors and payloads kept), record `meta` and return the number of points.

        The new generation becomes current before the metadata says so: stopped in between, the index is
        refused on open as still holding the old encoding, and running this again finishes the job.
        """
        copied = self._rewrite(encode, progress)
        self._write_meta(meta)
        self._meta = meta
        return copied

    def _rewrite(
        self,
        encode: Callable[[dict[str, Any]], SparseVector] | None,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Copy the live points into a new generation (their BM25 vectors from `encode` when given) and
        swap it in; return how many were copied."""
        assert self._meta is not None
        config = self._config(self._meta.dim)
        with self._write_lock:
            self._abort_build()
            new_dir = self._next_generation()
            new = qe.EdgeShard.create(str(new_dir), config)
            copied = 0
            try:
                for field_name in KEYWORD_FIELDS:
                    new.update(
                        qe.UpdateOperation.create_field_index(field_name, keyword_index_params(field_name))
                    )
                offset = None
                while True:
                    records, offset = self._shard.scroll(
                        qe.ScrollRequest(offset=offset, limit=256, with_payload=True, with_vector=True)
                    )
                    if records:
                        if any(
                            r.vector is None for r in records
                        ):  # asked with_vector: never, but never lose one
                            raise StoreError(
                                f"The index at {self.index_dir} returned a point without its vectors"
                            )
                        points = [
                            qe.Point(id=r.id, vector=self._vectors(r, encode), payload=r.payload)
                            for r in records
                        ]
                        new.update(qe.UpdateOperation.upsert_points(points))
                        copied += len(points)
                        if progress is not None:
                            progress(len(points))
                    if offset is None:
                        break
                new.flush()
            except BaseException:
                new.close()
                shutil.rmtree(new_dir, ignore_errors=True)
                raise
            try:
                self._swap(new, new_dir)
            except BaseException:
                self._remove_unless_current(new_dir)
                raise
        return copied

    def optimize(self) -> bool:
        """Build HNSW for unindexed segments and merge small ones, here and now; blocks, holding the GIL,
        until done (`index optimize`, tests). The service builds aside instead: optimize_aside.

        The engine frees the segments an optimize replaced (their files and memory mappings) when it next
        flushes, so it flushes at once: without that, each optimize left the replaced copy behind until
        the index was closed (measured at 20k points, 4 jobs of 1k chunks: disk 327 -> 2,078 MiB and
        RSS 284 -> 1,064 MiB, 18 segment folders for 2 live ones).
        """
        with self._write_lock:
            ran = bool(self._shard.optimize())
            if ran:
                self._shard.flush()
            return ran

    def optimize_aside(self) -> Future[bool]:
        """Start building HNSW on a copy of the shard in a process of its own and return a future that is
        True once the built copy serves, False if the build failed (logged; the shard is untouched).

        Searches and writes go on against the live shard meanwhile; the writes are kept in order and
        replayed onto the built copy before it is swapped in. A build already running is the one returned.
        Copying takes the write lock (writes wait; searches do not: `cp` runs in a process of its own).
        The live shard is not flushed first (a flush holds the GIL: 0.2 s at 20k points): with no write
        in flight its files are what a crash would leave, and opening the copy replays the write-ahead log.
        """
        with self._write_lock:
            if self._build is not None:
                return self._build.future
            if self._shard is None:
                raise StoreError("The index is closed")
            build = _Build(self._next_generation())
            try:
                # --sparse=always: the engine's files are mostly holes; a plain copy would fill them.
                subprocess.run(
                    ["cp", "-a", "--sparse=always", str(self.shard_dir), str(build.dir)],
                    check=True,
                    capture_output=True,
                )
            except (OSError, subprocess.CalledProcessError) as exc:
                shutil.rmtree(build.dir, ignore_errors=True)
                detail = getattr(exc, "stderr", b"") or str(exc).encode()
                log.error("could not copy the index for a build: %s", detail.decode(errors="replace").strip())
                build.future.set_result(False)
                return build.future
            self._build = build
            self._build_thread = threading.Thread(
                target=self._run_build, args=(build,), name="index-build", daemon=True
            )
            self._build_thread.start()
        return build.future

    def _run_build(self, build: _Build) -> None:
        # Started in a thread of its own that outlives the build: the build process dies with it.
        assert self._meta is not None
        command = [sys.executable, "-m", "retrieval.edge_build", str(build.dir), str(self._meta.dim)]
        try:
            with self._write_lock:
                if build.aborted:
                    raise StoreError("stopped")
                build.process = subprocess.Popen(
                    [*command, str(os.getpid())],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    cwd=Path(__file__).resolve().parent.parent,
                )
            _, err = build.process.communicate()
            if build.process.returncode != 0:
                tail = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
                raise StoreError(f"the build process exited with code {build.process.returncode} {tail[0]}")
            built = time.perf_counter()
            new = qe.EdgeShard.load(str(build.dir), self._config(self._meta.dim))
            loaded = time.perf_counter()
            with self._write_lock:
                if build.aborted or self._build is not build:
                    new.close()
                    raise StoreError("stopped")
                # The replayed writes are in the copy's write-ahead log, as the live shard's are in its
                # own: no flush here (it holds the GIL, 0.2 s at 20k points, and searches would wait).
                try:
                    for operation in build.journal:
                        new.update(operation)
                except BaseException:
                    new.close()
                    raise
                self._build = None
                self._swap(new, build.dir)
            log.info(
                "index built aside in %.1fs (opened in %.2fs, %d writes replayed, swapped in %.2fs)",
                built - build.started,
                loaded - built,
                len(build.journal),
                time.perf_counter() - loaded,
            )
        except Exception as exc:
            with self._write_lock:
                if self._build is build:
                    self._build = None
            self._remove_unless_current(build.dir)
            if not build.aborted:
                log.error(
                    "building the index aside failed (%s); the index is unchanged, the next "
                    "maintenance tries again",
                    exc,
                )
            build.future.set_result(False)
        else:
            build.future.set_result(True)

    def _abort_build(self) -> threading.Thread | None:
        """Stop a build running aside (the write lock held); return the thread that cleans it up."""
        build, self._build = self._build, None
        if build is None:
            return None
        build.aborted = True
        if build.process is not None and build.process.poll() is None:
            build.process.kill()
        return self._build_thread

    def flush(self) -> None:
        with self._write_lock:
            self._shard.flush()

    def info(self) -> dict[str, int]:
        with self._reading() as shard:
            info = shard.info()
        return {
            "points": info.points_count,
            "indexed_vectors": info.indexed_vectors_count,
            # Sparse vectors are indexed as they are written; dense ones only by optimize() (HNSW), so the
            # engine's count is points (sparse) + dense vectors in an HNSW segment.
            "unindexed_dense": max(0, 2 * info.points_count - info.indexed_vectors_count),
            "segments": info.segments_count,
            "building": int(self._build is not None),
        }

    def close(self) -> None:
        if getattr(self, "_shard", None) is not None:
            with self._write_lock:
                thread = self._abort_build()
            if thread is not None:
                thread.join(_BUILD_JOIN_S)
            with self._write_lock:
                self._shard.flush()
                with self._readers:
                    shard, self._shard = self._shard, None  # type: ignore[assignment]
                shard.close()
        self._release_process_lock()
