"""The HNSW index is built aside: a copy of the shard is optimised in a process of its own while the live
shard answers searches and takes writes, which are replayed onto the copy before it is swapped in. A build
that fails or is killed leaves the index as it was; a service stopped at any step of the swap reopens on
one whole generation, the other removed."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from retrieval.edge_store import EdgeStore, current_shard_dir
from retrieval.sparse import SparseVector
from retrieval.store import StoredPoint
from tests.test_edge_segments import META, _points

BASE, TAIL = 1_500, 600


def _store(index_dir: Path) -> EdgeStore:
    """An index with an HNSW-built base and an unindexed tail for the next build."""
    store = EdgeStore(index_dir, META)
    store.upsert(_points(0, BASE))
    store.optimize()
    for start in range(BASE, BASE + TAIL, 100):
        store.upsert(_points(start, 100))
    return store


def _made(n: int) -> StoredPoint:
    """The point `n` as _store wrote it (each batch of _points has a generator of its own)."""
    start = 0 if n < BASE else BASE + (n - BASE) // 100 * 100
    return _points(start, BASE if n < BASE else 100)[n - start]


def _started_and_stopped(store: EdgeStore) -> Any:
    """Start a build aside and pause its process (SIGSTOP); return the future and the process."""
    future = store.optimize_aside()
    deadline = time.monotonic() + 30
    while (build := store._build) is None or build.process is None:
        assert not future.done() and time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(build.process.pid, signal.SIGSTOP)
    return future, build.process


def _finds_itself(store: EdgeStore, point: StoredPoint) -> bool:
    tenant = point.payload["tenant_id"]
    dense, _ = store.candidates(tenant, point.dense, SparseVector([1], [1.0]), 5)
    return bool(dense) and dense[0].point_id == point.id


def _shard_dirs(index_dir: Path) -> list[str]:
    return sorted(p.name for p in index_dir.iterdir() if p.is_dir())


def test_searches_are_answered_during_a_build_and_writes_made_meanwhile_are_kept(tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    store = _store(index_dir)
    try:
        assert store.info()["unindexed_dense"] == TAIL
        future, process = _started_and_stopped(store)
        assert store.optimize_aside() is future  # one build at a time
        assert store.info()["building"] == 1
        # The build cannot finish (its process is stopped): searches are answered by the live shard.
        assert _finds_itself(store, _made(7)) and _finds_itself(store, _made(BASE + 7))
        assert not future.done()
        # Writes meanwhile: new points, a document deleted, a stale version deleted.
        added = _points(10_000, 40)
        store.upsert(added)
        store.delete_document("t3", "d0")  # points 3 (tenant t3, doc d0)
        doomed = _made(20)  # tenant t0, doc d2
        store.delete_stale("t0", "d2", keep_version=99)
        before = store.count()
        os.kill(process.pid, signal.SIGCONT)
        assert future.result(timeout=120) is True
        # The built copy serves, with every write made during the build.
        assert store.count() == before == BASE + TAIL + 40 - 2  # points 3 and 20 deleted
        assert all(_finds_itself(store, p) for p in added[:5])
        assert store.chunks("t3", "d0") == [] and store.chunks("t0", doomed.payload["doc_id"]) == []
        assert 0 < store.info()["unindexed_dense"] <= 40  # only what was written during the build
        assert store.info()["building"] == 0
        assert store.shard_dir == current_shard_dir(index_dir) == index_dir / "shard-1"
        assert _shard_dirs(index_dir) == ["shard-1"]  # the old generation is gone
    finally:
        store.close()
    reopened = EdgeStore(index_dir, META)
    try:
        assert reopened.count() == before and reopened.shard_dir == index_dir / "shard-1"
        assert all(_finds_itself(reopened, p) for p in added[:5])
    finally:
        reopened.close()


def test_a_killed_build_leaves_the_index_usable_and_unchanged(tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    store = _store(index_dir)
    try:
        info, shard_dir = store.info(), store.shard_dir
        future, process = _started_and_stopped(store)
        os.kill(process.pid, signal.SIGKILL)
        assert future.result(timeout=60) is False
        assert store.info() == info and store.shard_dir == shard_dir
        assert _shard_dirs(index_dir) == ["shard"]  # the build's copy is removed
        assert _finds_itself(store, _made(BASE + 3))
        # The next maintenance tries again, and builds.
        assert store.optimize_aside().result(timeout=120) is True
        assert store.info()["unindexed_dense"] == 0 and store.count() == info["points"]
    finally:
        store.close()


def _crash_at(index_dir: Path, step: str) -> None:
    # Runs in a child: a build aside with writes made meanwhile, the process killed at `step` of the swap.
    store = _store(index_dir)
    point_to = EdgeStore._point_to

    def crashing(self: EdgeStore, shard_dir: Path) -> None:
        if step == "after_pointer":
            point_to(self, shard_dir)
        os._exit(9)

    EdgeStore._point_to = crashing  # type: ignore[method-assign]
    future, process = _started_and_stopped(store)
    store.upsert(_points(10_000, 40))
    store.delete_document("t3", "d0")
    if step == "during_build":
        # The machine goes down: the paused build with it (left stopped, it would outlive the test).
        os.kill(process.pid, signal.SIGKILL)
        os._exit(9)
    os.kill(process.pid, signal.SIGCONT)
    future.result(timeout=120)
    os._exit(0)  # not reached: the swap crashed


@pytest.mark.parametrize("step", ["during_build", "before_pointer", "after_pointer"])
def test_a_crash_at_any_step_of_a_build_reopens_on_one_whole_generation(tmp_path: Path, step: str) -> None:
    index_dir = tmp_path / "index"
    process = multiprocessing.get_context("spawn").Process(target=_crash_at, args=(index_dir, step))
    process.start()
    process.join(180)
    assert process.exitcode == 9
    store = EdgeStore(index_dir, META)
    try:
        current = "shard-1" if step == "after_pointer" else "shard"
        assert store.shard_dir.name == current and _shard_dirs(index_dir) == [current]
        assert not (index_dir / "shard.current.tmp").exists()
        # Every write is there, whichever generation won (the writes reach the live shard's log at once).
        assert store.count() == BASE + TAIL + 40 - 1 and store.chunks("t3", "d0") == []
        assert _finds_itself(store, _points(10_000, 40)[3]) and _finds_itself(store, _made(BASE + 9))
        assert store.optimize_aside().result(timeout=120) is True
    finally:
        store.close()


def test_closing_the_store_stops_a_build(tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    store = _store(index_dir)
    future, process = _started_and_stopped(store)
    store.close()
    assert future.result(timeout=60) is False
    assert process.poll() is not None
    reopened = EdgeStore(index_dir, META)
    try:
        assert _shard_dirs(index_dir) == ["shard"] and reopened.count() == BASE + TAIL
    finally:
        reopened.close()


def test_compaction_stops_a_build_and_is_a_generation_too(tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    store = _store(index_dir)
    try:
        future, _ = _started_and_stopped(store)
        store.delete_document("t3", "d0")
        assert store.compact() == BASE + TAIL - 1
        assert future.result(timeout=60) is False
        assert store.shard_dir == current_shard_dir(index_dir) and store.shard_dir.name != "shard"
        assert _shard_dirs(index_dir) == [store.shard_dir.name]
        assert store.count() == BASE + TAIL - 1 and np.isfinite(store.info()["unindexed_dense"])
    finally:
        store.close()


def test_a_pointer_that_cannot_be_written_keeps_the_old_generation(tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    store = _store(index_dir)
    try:

        def full_disk(shard_dir: Path) -> None:
            raise OSError(28, "No space left on device")

        store._point_to = full_disk  # type: ignore[method-assign]
        assert store.optimize_aside().result(timeout=120) is False
        assert store.shard_dir == index_dir / "shard" and _shard_dirs(index_dir) == ["shard"]
        store.upsert(_points(10_000, 40))
        assert store.count() == BASE + TAIL + 40 and _finds_itself(store, _made(BASE + 5))
        del store._point_to
        assert store.optimize_aside().result(timeout=120) is True
        assert store.count() == BASE + TAIL + 40 and _shard_dirs(index_dir) == ["shard-1"]
    finally:
        store.close()


@pytest.mark.parametrize(
    ("setting", "older"),
    [
        ("SPARSE_FULL_SCAN", None),  # the engine's default sparse full-scan threshold
        ("INDEXES_ON_DISK", False),  # the BM25 and payload keyword indexes read into the heap on open
    ],
)
def test_an_index_written_with_older_index_settings_is_rewritten_once_on_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str, older: object
) -> None:
    import retrieval.edge_build as edge_build
    import retrieval.edge_store as edge_store

    # An older release wrote its segments with other settings.
    monkeypatch.setattr(edge_build, setting, older)
    monkeypatch.setattr(edge_store, setting, older)
    store = EdgeStore(tmp_path, META)
    points = _points(0, 400)
    store.upsert(points)
    store.optimize()
    old_dir = store.shard_dir
    store.close()
    monkeypatch.undo()

    assert edge_store.outdated_segments(old_dir) > 0
    store = EdgeStore(tmp_path, META)
    try:
        assert store.shard_dir != old_dir and not old_dir.exists()
        assert edge_store.outdated_segments(store.shard_dir) == 0
        assert store.count() == len(points)
        sample = points[7]
        _, sparse = store.candidates(sample.payload["tenant_id"], sample.dense, sample.sparse, 3)
        assert sparse[0].point_id == sample.id
        assert _finds_itself(store, sample)
    finally:
        store.close()
    # Opened again: nothing left to rewrite.
    store = EdgeStore(tmp_path, META)
    try:
        assert edge_store.outdated_segments(store.shard_dir) == 0
    finally:
        store.close()
