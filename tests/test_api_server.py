"""The real thing: `invekto-knowledge serve` in a subprocess on a free loopback port, used over HTTP.

Also runs every ```bash example of docs/api.md against it, and the admin CLI beside it.
"""

from __future__ import annotations

import contextlib
import json
import re
import select
import shutil
import socket
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
from tests.test_api_env import ADMIN, ADMIN_TOKEN, FIXTURES, customer_asks, served_env, wait_for_job

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "api.md"


@dataclass
class Server:
    url: str
    env: dict[str, str]
    pid: int


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("served") / "data"
    port = free_port()
    env = served_env(data)
    # Short read deadlines, so the slow-client test waits seconds, not the default 10 and 30.
    deadlines = ["--header-timeout", "2", "--body-timeout", "3"]
    cmd = [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--no-access-log", *deadlines]
    log = data.parent / "server.log"
    process = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, log.read_text(encoding="utf-8", errors="replace")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the server did not get ready in 120 s"
        time.sleep(0.2)
    yield Server(url, env, process.pid)
    process.terminate()  # SIGTERM: uvicorn drains, the lifespan stops the ingestion worker and closes the index
    # uvicorn re-raises the signal once it has shut down, so the exit status is the signal's.
    assert process.wait(timeout=60) in (0, -15)
    output = log.read_text(encoding="utf-8", errors="replace")
    assert "Application shutdown complete." in output and "Traceback" not in output, output[-3000:]
    # Not a terminal: the log lines are JSON (INVEKTO_LOG_FORMAT unset), uvicorn's own included.
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    messages = {r["message"] for r in records}
    assert {"Application startup complete.", "Application shutdown complete."} <= messages


def test_silent_slow_and_stalled_clients_are_disconnected_at_the_read_deadlines(server: Server) -> None:
    address = ("127.0.0.1", int(server.url.rsplit(":", 1)[1]))
    silent = socket.create_connection(address)  # connects and sends nothing
    dripping = socket.create_connection(address)  # sends its headers a byte every 0.25 s
    dripping.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    stalled = socket.create_connection(address)  # stops after 2 of 100 body bytes
    stalled.sendall(
        b"POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{}"
    )
    start = time.monotonic()
    closed: dict[str, float] = {}
    sockets = {"silent": silent, "dripping": dripping, "stalled": stalled}
    try:
        while len(closed) < len(sockets) and time.monotonic() - start < 10:
            with contextlib.suppress(OSError):
                dripping.sendall(b"X")
            for name, sock in sockets.items():
                if name in closed or not select.select([sock], [], [], 0)[0]:
                    continue
                try:
                    data = sock.recv(4096)
                except ConnectionResetError:
                    data = b""
                assert data == b"", f"{name} got an answer: {data[:80]!r}"
                closed[name] = time.monotonic() - start
            time.sleep(0.25)
    finally:
        for sock in sockets.values():
            sock.close()
    assert set(closed) == set(sockets), closed
    assert 1.5 < closed["silent"] < 4 and 1.5 < closed["dripping"] < 4, closed  # the 2 s header deadline
    assert 2.5 < closed["stalled"] < 5, closed  # 3 s without a body byte
    assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200


def test_a_tenant_is_served_end_to_end_over_http(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/healthz", headers={"X-Request-ID": "inbox-7"}).headers["X-Request-ID"] == "inbox-7"
        assert http.get("/readyz").json()["status"] == "ready"
        assert (
            http.post("/v1/admin/tenants", json={"id": "acme", "name": "Acme"}, headers=ADMIN).status_code
            == 201
        )
        key = http.post("/v1/admin/tenants/acme/keys", json={"name": "crm"}, headers=ADMIN).json()["key"]
        acme = {"X-API-Key": key}

        files = [("files", (p.name, p.read_bytes())) for p in (FIXTURES / "kargo.md", FIXTURES / "iade.txt")]
        upload = http.post("/v1/documents", files=files, headers=acme)
        assert upload.status_code == 202
        job = wait_for_job(http, acme, upload.headers["Location"])
        assert job["status"] == "succeeded" and job["files_done"] == 2

        hits = http.post("/v1/search", json={"query": "kargo ücreti ne kadar"}, headers=acme).json()["hits"]
        assert hits[0]["doc_id"] == "kargo.md" and "59,90 TL" in hits[0]["text"]
        suggestion = http.post(
            "/v1/assist/suggest", json=customer_asks("Ürünü kaç gün içinde iade edebilirim?"), headers=acme
        ).json()["suggestions"][0]
        assert "30 gün" in suggestion["text"] and suggestion["citations"][0]["doc_id"] == "iade.txt"

        # Server-sent events arrive as a stream over the real connection.
        body = customer_asks("Ürünü kaç gün içinde iade edebilirim?")
        with http.stream(
            "POST", "/v1/assist/resolve", json=body, headers={**acme, "Accept": "text/event-stream"}
        ) as sse:
            assert sse.headers["content-type"].startswith("text/event-stream")
            events = [line.removeprefix("event: ") for line in sse.iter_lines() if line.startswith("event: ")]
        assert events == ["started", "decision", "done"]

        metrics = http.get("/metrics").text
        assert (
            'invekto_http_requests_total{method="POST",route="/v1/assist/suggest",status="200"} 1.0'
            in metrics
        )


def test_concurrent_suggestions_match_one_by_one_from_the_index_process(server: Server) -> None:
    # `serve` runs the index in a child process; searches that arrive together are answered as a batch.
    children = [
        int(stat.parent.name)
        for stat in Path("/proc").glob("[0-9]*/stat")
        if stat.read_text().rsplit(")", 1)[1].split()[1] == str(server.pid)
    ]
    assert any("spawn_main" in Path(f"/proc/{c}/cmdline").read_text() for c in children), children
    with httpx.Client(base_url=server.url, timeout=60) as http:
        http.post("/v1/admin/tenants", json={"id": "batch", "name": "Batch"}, headers=ADMIN)
        key = http.post("/v1/admin/tenants/batch/keys", json={"name": "t"}, headers=ADMIN).json()["key"]
        headers = {"X-API-Key": key}
        files = [("files", (p.name, p.read_bytes())) for p in (FIXTURES / "kargo.md", FIXTURES / "iade.txt")]
        job = wait_for_job(
            http, headers, http.post("/v1/documents", files=files, headers=headers).headers["Location"]
        )
        assert job["status"] == "succeeded"
        questions = [
            "Kargo ücreti ne kadar?",
            "Ürünü kaç gün içinde iade edebilirim?",
            "İade kargosu ücretli mi?",
        ]

        def ask(question: str) -> list[tuple[str, str]]:
            response = http.post("/v1/assist/suggest", json=customer_asks(question), headers=headers)
            assert response.status_code == 200, response.text
            return [(s["text"], s["citations"][0]["doc_id"]) for s in response.json()["suggestions"]]

        one_by_one = {q: ask(q) for q in questions}
        assert all(one_by_one.values())
        with ThreadPoolExecutor(12) as pool:
            together = list(pool.map(lambda q: (q, ask(q)), questions * 8))
    assert all(answer == one_by_one[q] for q, answer in together)


def test_admin_commands_work_beside_the_running_server(server: Server) -> None:
    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "api.cli", *args], env=server.env, cwd=ROOT, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert cli("tenant", "create", "cli-shop", "--name", "CLI Shop") == "created tenant cli-shop (CLI Shop)"
    key = cli("key", "create", "--tenant", "cli-shop")
    assert key.startswith("ik_cli-shop_")
    assert httpx.get(f"{server.url}/v1/documents", headers={"X-API-Key": key}).json() == []
    key_id = cli("key", "list", "--tenant", "cli-shop").split("\t")[0]
    assert cli("key", "revoke", key_id) == f"revoked {key_id}"
    # The server remembers a key's tenant for ApiKeys.ttl_s (2 s); a revocation made elsewhere lands within it.
    deadline = time.monotonic() + 10
    while httpx.get(f"{server.url}/v1/documents", headers={"X-API-Key": key}).status_code != 401:
        assert time.monotonic() < deadline, "the revoked key still works"
        time.sleep(0.2)
    assert "cli-shop\tCLI Shop" in cli("tenant", "list")
    taken = subprocess.run(
        [sys.executable, "-m", "api.cli", "tenant", "create", "cli-shop"],
        env=server.env,
        capture_output=True,
        text=True,
    )
    assert taken.returncode == 1 and "already exists" in taken.stderr


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="needs curl and jq")
def test_every_curl_example_in_the_api_docs_runs(server: Server, tmp_path: Path) -> None:
    blocks = re.findall(r"```bash\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) >= 10
    for name in (
        "kargo.md",
        "iade.txt",
        "sss.csv",
        "hazir_yanitlar.csv",
        "sohbetler.jsonl",
        "kapanan_sohbet.json",
    ):
        shutil.copy(FIXTURES / name, tmp_path / name)
    script = "set -euo pipefail\n" + "".join(
        f"{block}echo '<<<block {n}>>>'\n" for n, block in enumerate(blocks)
    )
    done = subprocess.run(
        ["bash", "-c", script],
        env={**server.env, "API": server.url, "ADMIN": ADMIN_TOKEN},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    outputs = re.split(r"<<<block \d+>>>\n", done.stdout)

    def output_of(marker: str) -> str:
        """Return what the one block containing `marker` printed."""
        [n] = [n for n, block in enumerate(blocks) if marker in block]
        return outputs[n]

    assert '"id":"lale"' in output_of("export API=")
    assert "created tenant magaza-2" in output_of("invekto-knowledge tenant create magaza-2")
    assert output_of("key revoke").strip().endswith("401")
    uploaded = output_of("wait_for_job() {")
    assert '"status": "succeeded"' in uploaded and '"files_done": 2' in uploaded
    assert uploaded.count('"status": "queued"') == 1 and '"files_total": 2' in uploaded
    assert output_of("file=@sss.csv").count('"status": "succeeded"') == 2
    assert output_of("/v1/text-documents").startswith("/v1/jobs/")
    listed = output_of("documents?source=doc")
    assert "kargo.md indexed v1" in listed and listed.strip().endswith("204")
    assert '"files_total": 2' in output_of("/v1/conversations/import")
    assert output_of('"own_domains"').strip() == '["laleev.com.tr"]'
    assert '"indexed": true' in output_of("-d @kapanan_sohbet.json")
    signed = output_of("X-Invekto-Signature").split()
    assert signed == ['{"indexed":true}', "tag:invekto.com,2025:knowledge/problem/missing-signature", "204"]
    served = output_of("X-Invekto-Tenant: lale").split()
    assert served[0].isdigit() and served[1] == "403" and '"tenants":["lale"]' in served[2]
    assisted = output_of("/v1/feedback")
    # A tenant with a handful of documents cannot certify the default 98% target: suggest-only, so the
    # resolve is a handoff while suggestions and feedback work.
    assert '"decision": "handoff"' in assisted and '"action": "accepted"' in assisted
    policy = output_of("/v1/assist/policy")
    assert '"mode": "suggest_only"' in policy and '"precision_target":0.9' in policy
    streamed = output_of("resolve?stream=true")
    assert "event: decision" in streamed and "customer_requested_human" in streamed
    assert '"status": "ready"' in output_of('"$API/healthz"')
    assert '"title":"Invalid request"' in output_of('"limit": 500')
