"""`invekto-knowledge serve --workers 2` in a subprocess, used over real HTTP: both workers answer from the
one index (what one ingests the other finds), one tenant rate limit holds across workers, `/metrics` sums
the workers, a killed worker is replaced, and SIGTERM stops everything and releases the index."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from api.bench import free_port
from retrieval.index import KnowledgeIndex
from retrieval.settings import Settings
from tests.conftest import wait_for_exit
from tests.test_api_env import ADMIN, customer_asks, served_env, tenant_with_docs

ROOT = Path(__file__).resolve().parents[1]
BURST = 200


@dataclass
class Served:
    url: str
    process: subprocess.Popen[bytes]
    data: Path
    log: Path


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[1] == str(pid):
                found.append(int(stat.parent.name))
        except (OSError, IndexError):
            continue
    return found


def _serve(data: Path, **variables: str) -> Served:
    port = free_port()
    env = served_env(data, INVEKTO_ENCODE_WORKERS="0", **variables)
    cmd = [sys.executable, "-m", "api.cli", "serve", "--workers", "2", "--port", str(port), "--no-access-log"]
    data.parent.mkdir(parents=True, exist_ok=True)
    log = data.parent / "serve.log"
    process = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        assert process.poll() is None, log.read_text(encoding="utf-8", errors="replace")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200 and "serving" in log.read_text():
                return Served(url, process, data, log)
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "not ready in 180 s"
        time.sleep(0.3)


def _processes(served: Served) -> list[int]:
    """The index process (started first) and the HTTP workers."""
    children = _children(served.process.pid)
    return sorted(c for c in children if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text())


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    # A low rate, so the shared bucket is seen: BURST requests at once, then one every 100 s.
    server = _serve(
        tmp_path_factory.mktemp("workers") / "data", INVEKTO_RATE_LIMIT="0.01", INVEKTO_RATE_BURST=str(BURST)
    )
    yield server
    if server.process.poll() is None:
        server.process.kill()


def test_two_workers_serve_one_index(served: Served) -> None:
    with httpx.Client(base_url=served.url, timeout=60) as http:
        acme = tenant_with_docs(http, "acme")

    # New connections, several at once: the kernel hands them to both workers.
    def search(_: int) -> tuple[str, int, str]:
        with httpx.Client(base_url=served.url, timeout=60) as one:
            response = one.post("/v1/search", json={"query": "kargo ücreti ne kadar"}, headers=acme)
            top = response.json()["hits"][0]["doc_id"] if response.status_code == 200 else ""
            return response.headers.get("X-Invekto-Worker", ""), response.status_code, top

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(search, range(20)))
    assert {status for _, status, _ in answers} == {200}
    assert {top for _, _, top in answers} == {"kargo.md"}  # whichever worker ingested, both find it
    assert {worker for worker, _, _ in answers} == {"0", "1"}, answers

    with httpx.Client(base_url=served.url, timeout=60) as http:
        suggestion = http.post(
            "/v1/assist/suggest", json=customer_asks("Ürünü kaç gün içinde iade edebilirim?"), headers=acme
        ).json()["suggestions"][0]
        assert "30 gün" in suggestion["text"]
        metrics = http.get("/metrics").text
    # The sum over both workers: every search above is counted, whichever worker scraped.
    searched = re.search(
        r'invekto_http_requests_total\{method="POST",route="/v1/search",status="200"\} (\S+)', metrics
    )
    assert searched is not None and float(searched.group(1)) == 20.0, metrics[:2000]


def test_one_rate_limit_across_workers(served: Served) -> None:
    with httpx.Client(base_url=served.url, timeout=60) as http:
        http.post("/v1/admin/tenants", json={"id": "busy", "name": "Busy"}, headers=ADMIN)
        key = http.post("/v1/admin/tenants/busy/keys", json={"name": "crm"}, headers=ADMIN).json()["key"]

    def get(_: int) -> tuple[str, int]:
        with httpx.Client(base_url=served.url, timeout=60) as one:
            response = one.get("/v1/documents", headers={"X-API-Key": key})
            return response.headers.get("X-Invekto-Worker", ""), response.status_code

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(get, range(BURST + 10)))
    statuses = [status for _, status in answers]
    # One bucket for the tenant: BURST requests pass in all, not BURST per worker.
    assert statuses.count(200) == BURST and statuses.count(429) == 10, answers
    assert {worker for worker, _ in answers} == {"0", "1"}, answers


def test_a_killed_worker_is_replaced_then_sigterm_stops_all(served: Served) -> None:
    workers = _processes(served)
    assert len(workers) == 3, workers  # the index process and two HTTP workers
    index_pid, victim = workers[0], workers[-1]
    os.kill(victim, signal.SIGKILL)
    assert wait_for_exit(victim, 10)
    deadline = time.monotonic() + 120
    while "starting it again" not in served.log.read_text() or len(_children(served.process.pid)) < 3:
        assert time.monotonic() < deadline, served.log.read_text()[-3000:]
        time.sleep(0.3)
    with httpx.Client(base_url=served.url, timeout=60) as http:
        assert http.get("/healthz").status_code == 200

    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=120) == 0, served.log.read_text()[-3000:]
    assert wait_for_exit(index_pid, 10)
    output = served.log.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in output, output[-3000:]
    # The index was closed cleanly: its lock is free and what was ingested is there.
    settings = Settings(data_dir=served.data, _env_file=None)  # type: ignore[call-arg]
    with KnowledgeIndex(settings) as index:
        assert index.count("acme") > 0


def test_without_its_index_process_the_server_exits_with_an_error(tmp_path: Path) -> None:
    served = _serve(tmp_path / "data")
    index_pid, *workers = _processes(served)
    os.kill(index_pid, signal.SIGKILL)
    # The workers cannot serve without it: everything stops, with a non-zero status a supervisor sees.
    assert served.process.wait(timeout=120) == 2
    assert "The index process exited" in served.log.read_text()
    assert len(workers) == 2 and all(wait_for_exit(pid, 30) for pid in workers)


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        for child in _children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def test_a_killed_server_leaves_no_process_behind_and_frees_its_port(tmp_path: Path) -> None:
    # SIGKILL (the OOM killer, a container runtime) gives the server no chance to stop its children: each
    # must notice by itself, or orphaned HTTP workers keep the port and answer without their index.
    served = _serve(tmp_path / "data")
    left = _descendants(served.process.pid)
    assert len(_processes(served)) == 3, left
    served.process.kill()
    served.process.wait(timeout=30)
    still = [pid for pid in left if not wait_for_exit(pid, 30)]
    assert not still, [Path(f"/proc/{p}/cmdline").read_bytes() for p in still if Path(f"/proc/{p}").exists()]
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{served.url}/healthz", timeout=5)
