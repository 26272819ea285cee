"""Build a copy of the edge shard's HNSW index in a process of its own: `python -m retrieval.edge_build`.

`EdgeShard.optimize()` holds the GIL for as long as it runs (seconds at 100k points), so in the process
that serves searches every search would wait for it. `EdgeStore.optimize_aside` copies the shard and runs
this module on the copy: it opens it, optimises, flushes and closes it, and exits 0. Its GIL is its own,
so the searches of the index process go on; the index process then opens the built copy and swaps it in.

The process dies with the thread that started it (Linux: PR_SET_PDEATHSIG), so an index process that is
killed leaves no build running.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from pathlib import Path

import qdrant_edge as qe

from .store import DENSE, SPARSE

# Merge policy. An optimize indexes a new tail and merges the smallest segments while there are more
# than SEGMENTS, never making a segment larger than MERGE_LIMIT_KB of dense vectors (about 16k points of
# 512-d): a segment at the limit is never rewritten for a small tail, and small tails do not stay small. Each
# segment costs every search a fixed share, and one under the HNSW full-scan threshold (10 MB, about 5k
# points) is scanned whole: a 10k-chunk tenant ingested in 7 jobs kept 7 segments of 1.4k points under
# the earlier 8 segments / 16 MB, and the engine took 1.36 ms (dense) + 0.72 ms (BM25) per query; with
# 2 / 32 MB the tails merge into one HNSW segment, 0.17 + 0.26 ms. The price is the merge: an optimize
# per 1k-chunk job at 100k points took 0.3-1.8 s instead of 0.4-0.6 s (as the tail segment grows toward
# the limit), run aside while searches go on (KnowledgeIndex.maintain_async). docs/benchmarks.md.
SEGMENTS = 2
MERGE_LIMIT_KB = 32_000
SPARSE_FULL_SCAN = 200
# A built segment's BM25 inverted index and the keyword indexes of its payload stay in their files
# (memory-mapped, in the page cache) instead of being read into the heap when the shard opens. Opening
# holds the GIL, so every search of the index process waits for it when a build is swapped in: at 100k
# points it took 0.48-0.51 s with both in the heap, 0.27-0.32 s with both mapped (engine search p50 0.67-0.72
# vs 0.71-0.83 ms). docs/benchmarks.md.
INDEXES_ON_DISK = True
_PR_SET_PDEATHSIG = 1
_READ_BYTES = 1 << 20


def shard_config(dim: int) -> qe.EdgeConfig:
    """The shard's configuration, the same wherever it is opened (the service, a build, a compaction)."""
    return qe.EdgeConfig(
        vectors={DENSE: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)},
        # A tenant's BM25 candidates come from the inverted index, whatever the segment's share of the tenant:
        # under the engine's default threshold (5,000 points) a segment scores every point the tenant filter
        # lets through one by one, 10 ms instead of 0.8 ms per query for a 10k-chunk tenant in 8 segments.
        sparse_vectors={
            SPARSE: qe.EdgeSparseVectorParams(
                modifier=qe.Modifier.Idf, full_scan_threshold=SPARSE_FULL_SCAN, on_disk=INDEXES_ON_DISK
            )
        },
        # payload_m builds per-tenant links so filtered HNSW search stays exact within a tenant.
        hnsw_config=qe.HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=10_000, payload_m=16),
        # optimize() indexes every segment it finds unindexed; *when* it runs is KnowledgeIndex.maintain's
        # call (INVEKTO_OPTIMIZE_THRESHOLD), not the engine's default 20 MB segment size.
        optimizers=qe.EdgeOptimizersConfig(
            indexing_threshold=1, default_segment_number=SEGMENTS, max_segment_size=MERGE_LIMIT_KB
        ),
        max_search_threads=1,
    )


def keyword_index_params(field_name: str) -> qe.KeywordIndexParams:
    """The keyword index of a payload field: `tenant_id` marked as the tenant, on disk (INDEXES_ON_DISK)."""
    return qe.KeywordIndexParams(is_tenant=field_name == "tenant_id", on_disk=INDEXES_ON_DISK)


def _die_with_parent(parent: int) -> None:
    # A watcher thread could not run here: optimize() holds the GIL. The kernel signals instead.
    # Not Linux: no such call; the parent kills the build when it closes.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent went before the signal was armed
        os._exit(1)


def build(path: str, dim: int) -> bool:
    """Optimise the shard at `path` and leave it flushed and closed; return whether anything was built."""
    shard = qe.EdgeShard.load(path, shard_config(dim))
    try:
        ran = bool(shard.optimize())
        shard.flush()
    finally:
        shard.close()
    warm(Path(path))
    return ran


def warm(folder: Path) -> None:
    """Read the data of every file under `folder` into the page cache (holes skipped).

    Closing a shard drops its files from the page cache (the engine advises DONTNEED), so the index
    process would open the built copy from disk, holding the GIL: measured at 100k points, 0.6-0.85 s
    from a cold cache against 0.2-0.4 s from a warm one. Reading it here costs the searches nothing.
    """
    for file in folder.rglob("*"):
        if not file.is_file():
            continue
        with contextlib.suppress(OSError), open(file, "rb", buffering=0) as handle:
            fd, end, offset = handle.fileno(), os.fstat(handle.fileno()).st_size, 0
            while offset < end:
                try:
                    offset = os.lseek(fd, offset, os.SEEK_DATA)
                    hole = os.lseek(fd, offset, os.SEEK_HOLE)
                except OSError:  # no data past offset
                    break
                while offset < hole:
                    offset += len(os.pread(fd, min(_READ_BYTES, hole - offset), offset)) or hole - offset


def main(argv: list[str]) -> int:
    path, dim, parent = argv[0], int(argv[1]), int(argv[2])
    # No lower CPU priority: at nice 10 on the 2-core machine under load, a 1k-chunk job's build took
    # 7-18 s instead of about 1 s; the searches wait for no lock of the build either way.
    _die_with_parent(parent)
    build(path, dim)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
