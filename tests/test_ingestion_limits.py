"""One file must not stall every tenant: parse limits, progress inside a large file, tenants taking turns,
and a shutdown that stops within a bound and leaves the running job to resume."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.bench import free_port
from api.context import ServiceContext
from api.schemas import JobOut
from ingestion.parse_worker import ParseLimits
from retrieval.embedders import Embedder
from tests.test_api_env import (
    ADMIN,
    FIXTURES,
    UNLIMITED,
    new_tenant,
    open_context,
    served_env,
    upload_files,
    wait_for_job,
)

ROOT = Path(__file__).resolve().parents[1]

PARAGRAPH = (
    "Kargo ücreti 59,90 TL olup siparişiniz iki iş günü içinde teslim edilir. İade süresi on dört gündür, "
    "ürün kullanılmamış ve faturasıyla birlikte gönderilmelidir.\n\n"
)


def _large_text(paragraphs: int) -> bytes:
    return (PARAGRAPH * paragraphs).encode()


def _client(ctx: ServiceContext) -> TestClient:
    return TestClient(create_app(ctx.settings, ctx, rate_limit=UNLIMITED))


def _slow_writes(ctx: ServiceContext, pause_s: float, on_write: Callable[[], None] | None = None) -> None:
    """Make every index write take `pause_s` longer per chunk (a large file takes a while to index)."""
    upsert = ctx.index.upsert

    def slow(chunks: list[Any], *args: Any, **kwargs: Any) -> Any:
        if on_write:
            on_write()
        time.sleep(pause_s * len(chunks))
        return upsert(chunks, *args, **kwargs)

    ctx.index.upsert = slow  # type: ignore[method-assign]


@pytest.fixture
def small_batches(tmp_path: Path, use_embedder: Embedder) -> Iterator[ServiceContext]:
    """A service whose index writes go in parts of 8 chunks; files parsed in this process."""
    ctx = open_context(tmp_path / "data", use_embedder)
    ctx.ingestor.batch_chunks = 8
    yield ctx
    ctx.close()


def _in_process(client: TestClient) -> None:
    client.app.state.jobs.limits = ParseLimits(in_process=True)


def test_a_file_over_the_parse_memory_or_time_limit_fails_alone_naming_the_limit(
    tmp_path: Path, use_embedder: Embedder
) -> None:
    ctx = open_context(tmp_path / "data", use_embedder, parse_memory_mb=4, parse_timeout_s=60)
    with _client(ctx) as client:
        acme = new_tenant(client, "acme")
        job = wait_for_job(
            client,
            acme,
            upload_files(client, acme, ("buyuk.txt", _large_text(20000)), FIXTURES / "iade.txt").headers[
                "Location"
            ],
        )
        files = {f["name"]: f for f in job["files"]}
        assert files["iade.txt"]["status"] == "indexed"
        assert files["buyuk.txt"]["status"] == "failed"
        assert "4 MB memory limit" in files["buyuk.txt"]["error"]
        assert "INVEKTO_PARSE_MEMORY_MB" in files["buyuk.txt"]["error"]

        client.app.state.jobs.limits = ParseLimits(timeout_s=3.0, memory_mb=0)
        job = wait_for_job(
            client,
            acme,
            upload_files(
                client, acme, ("cok-buyuk.txt", _large_text(30000)), ("kisa.txt", _large_text(1))
            ).headers["Location"],
        )
        files = {f["name"]: f for f in job["files"]}
        assert files["kisa.txt"]["status"] == "indexed"
        assert files["cok-buyuk.txt"]["status"] == "failed"
        assert "longer than the 3 s limit" in files["cok-buyuk.txt"]["error"]
        assert "INVEKTO_PARSE_TIMEOUT_S" in files["cok-buyuk.txt"]["error"]
        docs = {d["doc_id"]: d["status"] for d in client.get("/v1/documents", headers=acme).json()}
        assert docs["iade.txt"] == docs["kisa.txt"] == "indexed"
    ctx.close()


def test_a_large_files_job_shows_the_chunks_written_so_far_while_it_is_indexed(
    small_batches: ServiceContext,
) -> None:
    with _client(small_batches) as client:
        _in_process(client)
        acme = new_tenant(client, "acme")
        seen: list[dict[str, Any]] = []
        location: list[str] = []

        def look() -> None:  # the job as the API shows it, before each part is written
            if location:
                found = client.app.state.jobs.progress("acme", location[0].rsplit("/", 1)[1])
                seen.append(JobOut.of(*found).model_dump())

        _slow_writes(small_batches, 0.0, look)
        response = upload_files(client, acme, ("buyuk.txt", _large_text(600)))
        location.append(response.headers["Location"])
        job = wait_for_job(client, acme, location[0])
    assert job["status"] == "succeeded" and job["chunks_written"] > 24
    inside = [s for s in seen if s["status"] == "running" and s["files_done"] == 0 and s["chunks_written"]]
    assert len(inside) >= 2, seen
    assert [s["chunks_written"] for s in inside] == sorted({s["chunks_written"] for s in inside})
    assert f"of {job['chunks_written']} chunks written" in inside[-1]["current"]


def test_another_tenants_small_job_finishes_while_a_large_job_is_still_running(
    small_batches: ServiceContext,
) -> None:
    _slow_writes(small_batches, 0.03)
    with _client(small_batches) as client:
        _in_process(client)
        acme, globex = new_tenant(client, "acme"), new_tenant(client, "globex")
        large = upload_files(client, acme, ("buyuk.txt", _large_text(600)), FIXTURES / "iade.txt")
        first_small = upload_files(client, acme, FIXTURES / "kargo.md")
        deadline = time.monotonic() + 60
        while client.get(large.headers["Location"], headers=acme).json()["status"] == "queued":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        small = upload_files(client, globex, FIXTURES / "kargo.md")
        done = wait_for_job(client, globex, small.headers["Location"])
        assert done["status"] == "succeeded"
        assert client.get(large.headers["Location"], headers=acme).json()["status"] == "running"
        # The tenant's own jobs keep their order: its later small job waits for its large one.
        assert client.get(first_small.headers["Location"], headers=acme).json()["status"] == "queued"
        large_done = wait_for_job(client, acme, large.headers["Location"])
        assert large_done["status"] == "succeeded" and large_done["files_done"] == 2
        assert wait_for_job(client, acme, first_small.headers["Location"])["status"] == "succeeded"
        assert (
            large_done["finished_at"]
            <= client.get(first_small.headers["Location"], headers=acme).json()["started_at"]
        )


def test_shutdown_stops_within_its_bound_and_the_running_job_resumes_at_the_next_start(
    tmp_path: Path, use_embedder: Embedder
) -> None:
    data = tmp_path / "data"
    ctx = open_context(data, use_embedder, shutdown_timeout_s=5)
    ctx.ingestor.batch_chunks = 8
    writes: list[float] = []
    _slow_writes(ctx, 0.1, lambda: writes.append(time.monotonic()))  # the large file takes 8 s and more
    client = _client(ctx).__enter__()
    _in_process(client)
    acme = new_tenant(client, "acme")
    location = upload_files(client, acme, ("buyuk.txt", _large_text(600)), FIXTURES / "iade.txt").headers[
        "Location"
    ]
    deadline = time.monotonic() + 60
    while not writes:
        assert time.monotonic() < deadline, "the job wrote nothing"
        time.sleep(0.05)
    started = time.monotonic()
    client.__exit__(None, None, None)  # the lifespan's shutdown, as on SIGTERM
    stopped_in = time.monotonic() - started
    ctx.close()
    assert stopped_in < 4, f"shutdown took {stopped_in:.1f} s"

    ctx = open_context(data, use_embedder)
    with _client(ctx) as again:
        job = wait_for_job(again, acme, location)
        docs = {d["doc_id"]: d for d in again.get("/v1/documents", headers=acme).json()}
    ctx.close()
    assert job["status"] == "succeeded" and job["files_done"] == 2
    assert docs["buyuk.txt"]["status"] == "indexed" and docs["iade.txt"]["status"] == "indexed"
    assert job["chunks_written"] == sum(d["chunk_count"] for d in docs.values())


def _serve(data: Path, port: int) -> subprocess.Popen[bytes]:
    """Start `invekto-knowledge serve` on `port`; return it once it answers /readyz."""
    env = served_env(data, INVEKTO_SHUTDOWN_TIMEOUT_S="5")
    data.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--no-access-log"]
    log = (data.parent / "server.log").open("ab")
    process = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, (data.parent / "server.log").read_text(errors="replace")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return process
        assert time.monotonic() < deadline, "the server did not get ready in 120 s"
        time.sleep(0.2)


def test_sigterm_stops_the_server_within_its_bound_while_a_large_file_is_indexed(tmp_path: Path) -> None:
    data, port = tmp_path / "data", free_port()
    url = f"http://127.0.0.1:{port}"
    process = _serve(data, port)
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            created = http.post("/v1/admin/tenants", json={"id": "acme", "name": "Acme"}, headers=ADMIN)
            assert created.status_code == 201, created.text
            key = http.post("/v1/admin/tenants/acme/keys", json={"name": "t"}, headers=ADMIN).json()["key"]
            acme = {"Authorization": f"Bearer {key}"}
            location = upload_files(
                http, acme, ("buyuk.txt", _large_text(10000)), FIXTURES / "iade.txt"
            ).headers["Location"]
            deadline = time.monotonic() + 120
            while http.get(location, headers=acme).json()["status"] != "running":
                assert time.monotonic() < deadline
                time.sleep(0.1)
            time.sleep(8)  # parsed, and part of its 650 chunks being embedded (half a minute of work)
            assert http.get(location, headers=acme).json()["status"] == "running"
        started = time.monotonic()
        process.terminate()
        process.wait(timeout=120)
        stopped_in = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
    assert stopped_in < 20, f"the server took {stopped_in:.1f} s to stop"

    process = _serve(data, port)
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            job = wait_for_job(http, acme, location, timeout_s=300)
    finally:
        process.terminate()
        process.wait(timeout=60)
    assert job["status"] == "succeeded" and job["files_done"] == 2 and job["files_failed"] == 0


def test_a_faq_sheet_over_the_parse_memory_limit_fails_naming_the_limit(
    tmp_path: Path, use_embedder: Embedder
) -> None:
    """Sheets are read in the worker too: a huge FAQ sheet cannot take the server's memory."""
    ctx = open_context(tmp_path / "data", use_embedder, parse_memory_mb=4, parse_timeout_s=60)
    rows = "".join(f'"Soru {i}: kargo ne zaman gelir?","{PARAGRAPH.strip()} {i}"\n' for i in range(20000))
    with _client(ctx) as client:
        acme = new_tenant(client, "acme")
        big = client.post(
            "/v1/faq", files={"file": ("sss.csv", ("soru,cevap\n" + rows).encode())}, headers=acme
        )
        assert big.status_code == 202, big.text
        job = wait_for_job(client, acme, big.headers["Location"])
        assert job["status"] == "failed"
        assert "4 MB memory limit" in job["files"][0]["error"], job
        small = client.post(
            "/v1/faq",
            files={"file": ("kisa.csv", b"soru,cevap\nKargo ne zaman gelir?,Iki is gunu icinde.\n")},
            headers=acme,
        )
        assert wait_for_job(client, acme, small.headers["Location"])["status"] == "succeeded"
    ctx.close()
