"""A server's long-lived objects are kept out of full garbage collections (retrieval/heap.py), without
keeping garbage for ever: a real app over a real index and SQLite registry for the server's part."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.context import ServiceContext
from retrieval import heap
from retrieval.embedders import Embedder
from tests.test_api_env import FIXTURES, UNLIMITED, ingest, new_tenant, open_context


@pytest.fixture
def api_context(tmp_path: Path, use_embedder: Embedder) -> Iterator[ServiceContext]:
    ctx = open_context(tmp_path / "data", use_embedder)
    yield ctx
    ctx.close()


@pytest.fixture(autouse=True)
def _process_as_it_was() -> Iterator[None]:
    yield
    heap._server = False
    heap._last = float("-inf")
    if heap._deferred is not None:
        heap._deferred.cancel()
        heap._deferred = None
    gc.unfreeze()


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_settled_objects_are_skipped_by_full_collections_and_freed_at_the_next_settle() -> None:
    node = _Node()
    alive = weakref.ref(node)
    heap.settle("test")
    assert gc.get_freeze_count() > 0
    del node
    gc.collect()
    # Settled: a full collection does not walk it (that is what makes those collections short).
    assert alive() is not None
    heap.settle("test")
    assert alive() is None


def test_only_a_server_settles_when_its_state_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "MIN_SETTLE_INTERVAL_S", 0.0)
    assert heap.settle_if_server("knowledge derived") is None
    assert gc.get_freeze_count() == 0
    heap.start_settled("server started")
    frozen = gc.get_freeze_count()
    assert frozen > 0
    kept = [_Node() for _ in range(1000)]
    assert heap.settle_if_server("knowledge derived") is not None
    assert gc.get_freeze_count() >= frozen + len(kept)


def test_a_server_settles_at_startup_and_when_a_tenant_knowledge_is_derived(
    api_context: ServiceContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    reasons: list[str] = []
    settle = heap.settle

    def noted(reason: str) -> float:
        reasons.append(reason)
        return settle(reason)

    monkeypatch.setattr(heap, "settle", noted)
    monkeypatch.setattr(heap, "MIN_SETTLE_INTERVAL_S", 0.0)
    app = create_app(api_context.settings, api_context, rate_limit=UNLIMITED, settle_heap=True)
    with TestClient(app) as client:
        assert reasons == ["server started"]
        acme = new_tenant(client, "acme")
        ingest(client, acme, FIXTURES / "kargo.md")
        assert client.get("/v1/assist/policy", headers=acme).status_code == 200
    assert reasons[1:] == ["knowledge of tenant acme derived"]


def test_an_app_that_is_not_a_server_leaves_the_collector_alone(api_context: ServiceContext) -> None:
    with TestClient(create_app(api_context.settings, api_context, rate_limit=UNLIMITED)) as client:
        acme = new_tenant(client, "acme")
        ingest(client, acme, FIXTURES / "kargo.md")
        assert client.get("/v1/assist/policy", headers=acme).status_code == 200
    assert gc.get_freeze_count() == 0


def test_changes_close_together_are_settled_once_when_the_interval_has_passed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each settle holds the GIL for a full collection: knowledge derived for tenant after tenant within
    # the interval is settled once, at its end, not once per tenant.
    reasons: list[str] = []
    settle = heap.settle
    settled = threading.Event()

    def noted(reason: str) -> float:
        reasons.append(reason)
        took = settle(reason)
        settled.set()
        return took

    monkeypatch.setattr(heap, "settle", noted)
    monkeypatch.setattr(heap, "MIN_SETTLE_INTERVAL_S", 0.5)
    heap.start_settled("server started")
    settled.clear()
    for tenant in ("acme", "globex", "initech"):
        assert heap.settle_if_server(f"knowledge of tenant {tenant} derived") is None
    assert reasons == ["server started"]
    assert settled.wait(10)
    assert reasons == ["server started", "knowledge of tenant acme derived (deferred)"]


def test_settling_gives_the_memory_freed_by_a_derivation_back_to_the_system() -> None:
    # What a derivation thread allocated and freed stays in the C allocator's arena (counted in RSS)
    # until it is trimmed; a settle trims it. Measured in a fresh interpreter, so other tests' memory
    # does not blur the figure.
    code = (
        "import threading\n"
        "from retrieval import heap\n"
        "def rss():\n"
        "    return int(next(l for l in open('/proc/self/status') if l.startswith('VmRSS')).split()[1]) // 1024\n"
        "kept = []\n"
        "def derive():\n"
        "    rows = [bytes(2000) + str(i).encode() for i in range(60000)]\n"
        "    kept.extend(rows[::500])\n"
        "worker = threading.Thread(target=derive)\n"
        "worker.start()\n"
        "worker.join()\n"
        "before = rss()\n"
        "heap.settle('derived')\n"
        "print(before, rss(), len(kept))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after, kept = (int(v) for v in out.stdout.split())
    assert kept == 120
    assert before - after >= 60, (before, after)  # about 115 MB of freed rows were still held
