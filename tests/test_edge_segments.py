"""A long-running index keeps its disk and memory: after ingestion jobs and their optimize, the engine has
released the segments each merge replaced, so the index stays near what a fresh open of it uses."""

from __future__ import annotations

import multiprocessing
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.edge_store import EdgeStore
from retrieval.sparse import SparseVector
from retrieval.store import IndexMeta, StoredPoint

META = IndexMeta(embedder="test", dim=512, sparse="bm25")
BASE, JOBS, JOB_POINTS, STEP = 4_000, 6, 400, 16
BOUND = 1.3


def _points(start: int, count: int) -> list[StoredPoint]:
    rng = np.random.default_rng(start)
    out = []
    for n in range(start, start + count):
        vec = rng.standard_normal(META.dim).astype(np.float32)
        words = sorted({int(i) for i in rng.integers(0, 50_000, 30)})
        payload = {"tenant_id": f"t{n % 20}", "doc_id": f"d{n // 8}", "source": "doc", "text": "söz " * 80}
        out.append(
            StoredPoint(
                str(uuid.UUID(int=n + 1)),
                vec / np.linalg.norm(vec),
                SparseVector(words, [1.0] * len(words)),
                payload,
            )
        )
    return out


def disk_bytes(path: Path) -> int:
    """Return the bytes the files under `path` occupy on disk (allocated blocks: the engine's files are sparse)."""
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file())


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def _search_every_tenant(store: EdgeStore) -> None:
    rng = np.random.default_rng(0)
    for n in range(200):
        vec = rng.standard_normal(META.dim).astype(np.float32)
        dense, _ = store.candidates(
            f"t{n % 20}", vec / np.linalg.norm(vec), SparseVector([1, 2], [1.0, 1.0]), 30
        )
        store.hydrate(f"t{n % 20}", dense[:5])


def _ingest_jobs(index_dir: Path, out: Any) -> None:
    store = EdgeStore(index_dir, META)
    for start in range(0, BASE, 1_000):
        store.upsert(_points(start, 1_000))
    store.optimize()
    written = BASE
    for _ in range(JOBS):
        for start in range(written, written + JOB_POINTS, STEP):
            store.upsert(_points(start, STEP))
        written += JOB_POINTS
        assert store.optimize()
    _search_every_tenant(store)
    out.put((disk_bytes(index_dir), rss_kib(), store.info()))
    store.close()


def _fresh_open(index_dir: Path, out: Any) -> None:
    store = EdgeStore(index_dir, META)
    _search_every_tenant(store)
    out.put((disk_bytes(index_dir), rss_kib(), store.info()))
    store.close()


def _in_child(target: Any, index_dir: Path) -> tuple[int, int, dict[str, int]]:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    process = ctx.Process(target=target, args=(index_dir, out))
    process.start()
    result = out.get(timeout=600)
    process.join(60)
    assert process.exitcode == 0
    return result  # type: ignore[no-any-return]


def test_disk_and_memory_after_ingestion_jobs_stay_near_a_fresh_open(tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    disk, rss, info = _in_child(_ingest_jobs, index_dir)
    fresh_disk, fresh_rss, fresh_info = _in_child(_fresh_open, index_dir)
    assert info["points"] == fresh_info["points"] == BASE + JOBS * JOB_POINTS
    assert info["unindexed_dense"] == 0
    assert disk <= BOUND * fresh_disk, (disk, fresh_disk)
    assert rss <= BOUND * fresh_rss, (rss, fresh_rss)
    # Nothing the merges replaced is left in the shard's folder.
    assert len(list((index_dir / "shard" / "segments").iterdir())) == info["segments"]
