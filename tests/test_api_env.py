"""Shared builders for the API tests (this module holds no tests).

Everything is real: the app from `create_app` over a ServiceContext with Qdrant Edge and SQLite in a
temp dir (or PostgreSQL, ON_BOTH_DATABASES), the session's USE embedder, the ingestion worker thread.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.context import ServiceContext
from api.ratelimit import RateLimit
from retrieval.embedders import Embedder
from retrieval.settings import Settings

FIXTURES = Path(__file__).parent / "fixtures" / "api"
ADMIN_TOKEN = "test-admin-token-1f8c-7d2e9a4b0c6f5e13"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
UNLIMITED = RateLimit(rate=0)


def served_env(data_dir: Path, **variables: str) -> dict[str, str]:
    """Return the environment of a `serve` subprocess on `data_dir` (edge, SQLite, offline answers)."""
    return {
        **os.environ,
        "INVEKTO_DATA_DIR": str(data_dir),
        "INVEKTO_ADMIN_TOKEN": ADMIN_TOKEN,
        "INVEKTO_LLM_PROVIDER": "extractive",
        "INVEKTO_STORE": "edge",
        "INVEKTO_DATABASE_URL": "",
        # Requests wait for a tenant's policy to be derived: the tests assert calibrated answers (the
        # suggest-only interim of a slow derivation has its own test, tests/test_tenant_knowledge.py).
        "INVEKTO_KNOWLEDGE_WAIT_S": "120",
        # The console script next to this interpreter, for the CLI commands the docs show.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        **variables,
    }


def api_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "admin_token": ADMIN_TOKEN,
        "llm_provider": "extractive",
        "knowledge_wait_s": 120.0,  # as in served_env
    }
    return Settings(**{**values, **overrides}, _env_file=None)  # type: ignore[call-arg]


def open_context(data_dir: Path, embedder: Embedder, **overrides: Any) -> ServiceContext:
    return ServiceContext.open(api_settings(data_dir, **overrides), embedder=embedder)


# A test module that sets `pytestmark = ON_BOTH_DATABASES` runs its tests once on SQLite and once on
# PostgreSQL (tests/conftest.py `database_url`; skipped without TEST_POSTGRES_URL).
ON_BOTH_DATABASES = pytest.mark.usefixtures("database_url")


@pytest.fixture
def api_context(
    request: pytest.FixtureRequest, tmp_path: Path, use_embedder: Embedder
) -> Iterator[ServiceContext]:
    overrides = {}
    if "database_url" in request.fixturenames:
        overrides["database_url"] = request.getfixturevalue("database_url")
    ctx = open_context(tmp_path / "data", use_embedder, **overrides)
    yield ctx
    ctx.close()


@pytest.fixture
def client(api_context: ServiceContext) -> Iterator[TestClient]:
    with TestClient(create_app(api_context.settings, api_context, rate_limit=UNLIMITED)) as test_client:
        yield test_client


def new_tenant(client: TestClient, tenant_id: str) -> dict[str, str]:
    """Create a tenant and a key over the admin API; return the headers that authenticate as it."""
    created = client.post(
        "/v1/admin/tenants", json={"id": tenant_id, "name": tenant_id.title()}, headers=ADMIN
    )
    assert created.status_code == 201, created.text
    key = client.post(f"/v1/admin/tenants/{tenant_id}/keys", json={"name": "test"}, headers=ADMIN)
    assert key.status_code == 201, key.text
    return {"Authorization": f"Bearer {key.json()['key']}"}


def wait_for_job(
    client: Any, headers: dict[str, str], location: str, timeout_s: float = 120
) -> dict[str, Any]:
    """Poll a job's status URL until it finishes; return its last status body."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = client.get(location, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        if body["status"] not in ("queued", "running"):
            return body
        assert time.monotonic() < deadline, f"job still {body['status']} after {timeout_s} s: {body}"
        time.sleep(0.1)


def upload_files(
    client: Any, headers: dict[str, str], *files: Path | tuple[str, bytes], **kwargs: Any
) -> Any:
    """POST /v1/documents with the given files (paths, or (name, bytes) pairs)."""
    parts = [
        ("files", (f.name, f.read_bytes(), "application/octet-stream"))
        if isinstance(f, Path)
        else ("files", (f[0], f[1], "application/octet-stream"))
        for f in files
    ]
    return client.post("/v1/documents", files=parts, headers=headers, **kwargs)


def ingest(client: Any, headers: dict[str, str], *files: Path | tuple[str, bytes]) -> dict[str, Any]:
    """Upload files and wait for the job; return the finished job."""
    response = upload_files(client, headers, *files)
    assert response.status_code == 202, response.text
    return wait_for_job(client, headers, response.headers["Location"])


def tenant_with_docs(http: Any, tenant_id: str) -> dict[str, str]:
    """Create `tenant_id` over the admin API, upload kargo.md and iade.txt with its new key and wait for the
    job to succeed; return the tenant's auth headers."""
    assert (
        http.post("/v1/admin/tenants", json={"id": tenant_id, "name": tenant_id}, headers=ADMIN).status_code
        == 201
    )
    key = http.post(f"/v1/admin/tenants/{tenant_id}/keys", json={"name": "crm"}, headers=ADMIN).json()["key"]
    headers = {"X-API-Key": key}
    files = [("files", (p.name, p.read_bytes())) for p in (FIXTURES / "kargo.md", FIXTURES / "iade.txt")]
    upload = http.post("/v1/documents", files=files, headers=headers)
    assert upload.status_code == 202, upload.text
    job = wait_for_job(http, headers, upload.headers["Location"])
    assert job["status"] == "succeeded" and job["files_done"] == 2, job
    return headers


def customer_asks(text: str, conversation_id: str = "c-1") -> dict[str, Any]:
    return {"conversation_id": conversation_id, "messages": [{"role": "customer", "text": text}]}
