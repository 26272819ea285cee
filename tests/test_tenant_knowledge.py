"""A tenant's knowledge is derived again in the background in the server: a request never waits a minute
for a large tenant's policy, and until the new policy is ready no automatic answer goes out."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assist import tenant_knowledge
from assist.policy import CALIBRATING_NOTE
from assist.service import AssistService
from assist.verify import TenantVocabulary
from retrieval.embedders import UseMultilingualEmbedder
from tests.assist_env import SHOP, AssistEnv, ask, shop_env
from tests.conftest import child_of_killed_parent, wait_for_exit


@pytest.fixture(scope="module")
def shop(
    tmp_path_factory: pytest.TempPathFactory, use_embedder: UseMultilingualEmbedder
) -> Iterator[AssistEnv]:
    yield from shop_env(tmp_path_factory, use_embedder)


def _background(env: AssistEnv, wait_s: float) -> AssistService:
    return AssistService(env.settings, env.index, env.registry, env.ingestor, knowledge_wait_s=wait_s)


def _slowed(service: AssistService, gate: threading.Event) -> None:
    derive = service.knowledge._derive

    def slow(*args: Any, **kwargs: Any) -> Any:
        gate.wait(60)
        return derive(*args, **kwargs)

    service.knowledge._derive = slow  # type: ignore[method-assign]


def test_a_slow_derivation_serves_suggestions_only_and_then_the_calibrated_policy(shop: AssistEnv) -> None:
    calibrated = shop.service().policy(SHOP)  # derived in the caller, as eval and the CLI do
    assert calibrated.mode == "auto"
    service = _background(shop, wait_s=0.2)
    gate = threading.Event()
    _slowed(service, gate)
    try:
        started = time.monotonic()
        interim = service.policy(SHOP)
        assert time.monotonic() - started < 5  # the request did not wait for the derivation
        assert interim.mode == "suggest_only" and interim.note == CALIBRATING_NOTE
        question = "Kargo ücreti ne kadar?"
        resolved = service.resolve(SHOP, ask(question))
        # No automatic answer on a policy not derived for this knowledge, and the agent is told why.
        assert resolved.decision == "handoff" and "yeniden hesaplanıyor" in (resolved.summary or "")
        assert service.suggest(SHOP, ask(question)).suggestions  # agents still get suggestions
        gate.set()
        deadline = time.monotonic() + 60
        while service.policy(SHOP).note == CALIBRATING_NOTE and time.monotonic() < deadline:
            time.sleep(0.05)
        ready = service.policy(SHOP)
        assert (ready.mode, ready.threshold) == (calibrated.mode, calibrated.threshold)
        assert (
            service.resolve(SHOP, ask(question)).decision
            == shop.service().resolve(SHOP, ask(question)).decision
        )
    finally:
        gate.set()
        service.close()


def test_a_quick_derivation_is_waited_for(shop: AssistEnv) -> None:
    service = _background(shop, wait_s=120.0)
    try:
        assert service.policy(SHOP).note != CALIBRATING_NOTE
    finally:
        service.close()


def test_an_idle_knowledge_worker_gives_its_memory_back_and_starts_again(
    shop: AssistEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The process that finds sources at odds holds about 170 MB; knowledge changes rarely, so it stops
    # once idle, and the next derivation starts it again with the same result.
    monkeypatch.setattr(tenant_knowledge, "WORKER_IDLE_S", 0.5)
    service = _background(shop, wait_s=120.0)
    cache = service.knowledge
    try:
        chunks = shop.index.chunks(SHOP)
        vocabulary = TenantVocabulary(chunks)
        first = cache._sources_at_odds(chunks, vocabulary)
        assert cache._worker is not None
        pid = next(iter(cache._worker._processes))
        assert wait_for_exit(pid, 30), "the idle knowledge worker kept running"
        assert cache._worker is None
        assert cache._sources_at_odds(chunks, vocabulary) == first
        assert cache._worker is not None and next(iter(cache._worker._processes)) != pid
    finally:
        service.close()
    assert cache._worker is None and (cache._worker_idle is None or not cache._worker_idle.is_alive())


def test_the_knowledge_worker_process_exits_when_the_server_is_killed(tmp_path: Path) -> None:
    # The worker that finds sources at odds is started by the first background derivation; a server
    # killed with SIGKILL cannot shut it down, and it would wait on its queue for ever.
    script = (
        "import time\n"
        "from assist.tenant_knowledge import TenantKnowledgeCache\n"
        "from assist.verify import TenantVocabulary\n"
        "if __name__ == '__main__':\n"
        "    cache = TenantKnowledgeCache(None, None, None, wait_s=1.0)\n"
        "    cache._sources_at_odds([], TenantVocabulary([]))\n"
        "    print(next(iter(cache._worker._processes)), flush=True)\n"
        "    time.sleep(120)\n"
    )
    child = child_of_killed_parent(script, tmp_path)
    assert wait_for_exit(child), f"knowledge worker {child} outlived its killed server"


def test_a_stopped_server_leaves_no_semaphore_of_its_knowledge_worker(tmp_path: Path) -> None:
    # The worker that finds sources at odds is joined when the server stops (it is idle by then): the
    # resource tracker has no "leaked semaphore objects" of its pool to report after SIGTERM.
    import httpx

    from api.bench import free_port
    from tests.test_api_env import customer_asks, served_env, tenant_with_docs

    port, log = free_port(), tmp_path / "serve.log"
    cmd = [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--no-access-log"]
    env = {k: v for k, v in served_env(tmp_path / "data").items() if k != "INVEKTO_KNOWLEDGE_WAIT_S"}
    root = Path(__file__).resolve().parents[1]
    process = subprocess.Popen(cmd, env=env, cwd=root, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            deadline = time.monotonic() + 120
            while True:
                assert process.poll() is None, log.read_text(errors="replace")
                try:
                    if http.get("/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "not ready in 120 s"
                time.sleep(0.2)
            headers = tenant_with_docs(http, "acme")
            while http.get("/v1/assist/policy", headers=headers).json()["note"] == CALIBRATING_NOTE:
                assert time.monotonic() < deadline + 120, "the policy was not derived"
                assert http.post("/v1/assist/suggest", json=customer_asks("iade kaç gün"), headers=headers)
                time.sleep(0.5)
    finally:
        process.terminate()
        process.wait(timeout=60)
    output = log.read_text(errors="replace")
    assert "leaked semaphore" not in output, output[-3000:]
