"""`invekto-knowledge demo`, the README's first command: seed, print what to open, serve.

Run as a user runs it: the console script's module in a subprocess, in a fresh working directory
(so the default ./data is used), without any INVEKTO_* or LLM variables of the machine running the tests.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import get_args

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from api.context import ServiceContext
from assist.models import HANDOFF_REASONS, FeedbackAction, ResolveResponse, Strategy
from ingestion.registry import Registry
from ingestion.registry_models import DocumentSource, DocumentStatus, JobFileStatus, JobStatus
from ingestion.screening import FLAG_REASONS
from retrieval.embedders import Embedder
from retrieval.settings import Settings

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
KEY = re.compile(r"^  API key     (ik_demo_\S+)$", re.MULTILINE)


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("INVEKTO_", "ANTHROPIC_", "OPENAI_")) and k != "PYTHONPATH"
    }
    # The repository on the path (as the editable install puts it), whatever the working directory.
    return {**env, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **extra}


def run_demo(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "demo", *args],
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done


def printed_key(stdout: str) -> str:
    found = KEY.search(stdout)
    assert found, stdout
    return found.group(1)


def test_demo_no_serve_seeds_prints_what_to_open_and_skips_unchanged_files_the_second_time(
    tmp_path: Path,
) -> None:
    first = run_demo(tmp_path, "--no-serve")
    key = printed_key(first.stdout)
    assert "  playground  http://127.0.0.1:7104/playground\n" in first.stdout
    assert f"http://127.0.0.1:7104/playground#key={key}" in first.stdout
    assert (
        "  mode        offline extractive (no LLM; set ANTHROPIC_API_KEY to answer with Claude)"
        in first.stdout
    )
    assert (
        f"curl -sS -X POST http://127.0.0.1:7104/v1/assist/suggest -H 'Authorization: Bearer {key}'"
        in first.stdout
    )
    assert "Taşıt kredisi için şartlar nelerdir?" in first.stdout
    assert "9 documents, 21 chunks (9 files indexed, 0 unchanged, 0 failed)" in first.stderr
    assert (tmp_path / "data" / "registry.sqlite3").is_file()  # the default INVEKTO_DATA_DIR, ./data

    # Again, with a Claude key: nothing is re-indexed, a new key is printed, and Claude would answer.
    second = run_demo(tmp_path, "--no-serve", ANTHROPIC_API_KEY="sk-ant-test-not-used")
    second_key = printed_key(second.stdout)
    assert second_key != key
    assert "0 files indexed, 9 unchanged, 0 failed" in second.stderr
    assert "  mode        Claude (anthropic:claude-haiku-4-5)" in second.stdout
    with Registry(f"sqlite:///{tmp_path / 'data' / 'registry.sqlite3'}") as registry:
        for printed in (key, second_key):  # earlier demo keys keep working
            tenant = registry.authenticate(printed)
            assert tenant is not None and tenant.id == "demo"


def test_demo_with_a_broken_llm_configuration_says_what_is_missing(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "demo", "--no-serve"],
        cwd=tmp_path,
        env=clean_env(INVEKTO_LLM_PROVIDER="anthropic"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "INVEKTO_LLM_PROVIDER=anthropic needs ANTHROPIC_API_KEY" in done.stderr
    assert not (tmp_path / "data").exists()  # refused before touching anything


def test_demo_on_a_port_in_use_says_so_before_seeding(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "api.cli", "demo", "--port", str(port)],
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2
    assert f"127.0.0.1:{port} is in use" in " ".join(done.stderr.split())
    assert not (tmp_path / "data").exists()  # refused before seeding


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """`invekto-knowledge demo --port <free>` running; yields its URL, its stdout so far and its log."""
    port = _free_port()
    out, log = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    process = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "demo", "--port", str(port)],
        cwd=tmp_path,
        env=clean_env(),
        stdout=out.open("wb"),
        stderr=log.open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    # The URL and key are printed once the socket listens.
    while "Press Ctrl+C to stop." not in out.read_text(encoding="utf-8"):
        assert process.poll() is None, log.read_text(encoding="utf-8", errors="replace")
        assert time.monotonic() < deadline, "the demo did not start in 180 s"
        time.sleep(0.2)
    try:
        yield url, out.read_text(encoding="utf-8"), log
    finally:
        process.terminate()
        assert process.wait(timeout=60) in (0, -15)
    output = log.read_text(encoding="utf-8", errors="replace")
    assert "Application shutdown complete." in output and "Traceback" not in output, output[-3000:]


def test_demo_serves_the_playground_and_the_printed_key_and_curl_work(
    demo_server: tuple[str, str, Path],
) -> None:
    url, stdout, _ = demo_server
    key = printed_key(stdout)
    assert f"  playground  {url}/playground\n" in stdout
    with httpx.Client(base_url=url, timeout=60) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        page = http.get("/playground")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert 'data-testid="mode-banner"' in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert http.get("/playground/static/playground.js").status_code == 200
        assert http.get("/v1/assist/mode", headers={"Authorization": f"Bearer {key}"}).json() == {
            "mode": "extractive",
            "offline": True,
            "tenant_id": "demo",
            "tenant_name": "DBank (demo)",
        }
        assert http.get("/v1/assist/mode").status_code == 401
    if shutil.which("curl"):
        curl = stdout.split("Ask the demo bank a question:\n", 1)[1].split("\n\n", 1)[0]
        done = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        body = httpx.Response(200, content=done.stdout.encode()).json()
    else:
        body = httpx.post(
            f"{url}/v1/assist/suggest",
            headers={"Authorization": f"Bearer {key}"},
            json={
                "conversation_id": "demo-1",
                "messages": [{"role": "customer", "text": "Taşıt kredisi için şartlar nelerdir?"}],
            },
            timeout=60,
        ).json()
    first = body["suggestions"][0]
    assert body["mode"] == "extractive"
    assert "18 yaşından büyük" in first["text"] and first["citations"][0]["doc_id"] == "kredi.html"


def test_the_mode_endpoint_names_the_llm_when_one_is_configured(
    tmp_path: Path, use_embedder: Embedder
) -> None:
    settings = Settings(  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        llm_provider="anthropic",
        anthropic_api_key=SecretStr("sk-ant-test"),
        _env_file=None,
    )
    with ServiceContext.open(settings, embedder=use_embedder) as ctx:
        ctx.registry.create_tenant("lale", "Lale Ev")
        _, key = ctx.registry.create_api_key("lale", "test")
        with TestClient(create_app(settings, ctx)) as client:
            answer = client.get("/v1/assist/mode", headers={"X-API-Key": key})
    assert answer.json() == {
        "mode": "anthropic:claude-haiku-4-5",
        "offline": False,
        "tenant_id": "lale",
        "tenant_name": "Lale Ev",
    }


def test_every_playground_label_exists_in_turkish_and_english() -> None:
    """Each label the page uses, and one per status, strategy, reason, source and feedback the API can send."""
    static = ROOT / "api" / "static"
    dictionary = (static / "playground-i18n.js").read_text(encoding="utf-8")
    turkish, english = dictionary.split("\n  en: {", 1)
    labels = {
        lang: set(re.findall(r"^    (\w+): ", text, re.MULTILINE))
        for lang, text in (("tr", turkish), ("en", english))
    }
    assert labels["tr"] == labels["en"] and len(labels["tr"]) > 100
    script = (static / "playground.js").read_text(encoding="utf-8")
    page = (static / "playground.html").read_text(encoding="utf-8")
    used = set(re.findall(r'\bt\("(\w+)"', script)) | set(
        re.findall(r'data-i18n(?:-placeholder)?="(\w+)"', page)
    )
    for prefix, values in (
        ("status", {*get_args(JobStatus), *get_args(JobFileStatus), *get_args(DocumentStatus)}),
        ("strategy", get_args(Strategy)),
        ("reason", HANDOFF_REASONS),
        ("source", get_args(DocumentSource)),
        ("decision", get_args(ResolveResponse.model_fields["decision"].annotation)),
        ("fb", get_args(FeedbackAction)),
        ("flag", FLAG_REASONS),
    ):
        assert f"`{prefix}_${{" in script  # the page builds these names from the API's values
        used |= {f"{prefix}_{value}" for value in values}
    assert used - labels["tr"] == set()
