"""Every error is an RFC 9457 problem with a clear title, and the OpenAPI document describes them."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.errors import TYPE_PREFIX
from retrieval.embedders import Embedder
from retrieval.store import StoreError
from tests.test_api_env import UNLIMITED, new_tenant, open_context

pytest_plugins = ["tests.test_api_env"]  # the api_context and client fixtures


def _problem(response, status: int, title: str) -> dict:  # noqa: ANN001
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"] == title and body["type"].startswith(TYPE_PREFIX)
    assert body["instance"] == response.request.url.path
    return body


def test_routing_errors_are_problems(client: TestClient) -> None:
    missing = _problem(client.get("/v1/nothing-here"), 404, "Not found")
    assert missing["detail"] == "There is no endpoint at /v1/nothing-here; the API is described at /docs."
    wrong = client.put("/v1/search", json={})
    assert wrong.headers["Allow"] == "POST"
    assert (
        _problem(wrong, 405, "Method not allowed")["detail"]
        == "PUT is not allowed on /v1/search; allowed: POST."
    )


def test_validation_errors_name_each_field_without_echoing_the_input(client: TestClient) -> None:
    acme = new_tenant(client, "acme")
    body = {"query": "kargo", "limit": 500, "sources": ["fax"], "tenant_id": "other"}
    problem = _problem(client.post("/v1/search", json=body, headers=acme), 422, "Invalid request")
    assert {e["location"] for e in problem["errors"]} == {"body.limit", "body.sources.0", "body.tenant_id"}
    assert "fax" not in str(problem["errors"])
    assert problem["detail"].startswith("body.limit: Input should be less than or equal to 100")
    broken = client.post(
        "/v1/search", content=b'{"query": ', headers={**acme, "content-type": "application/json"}
    )
    assert _problem(broken, 422, "Malformed JSON")["detail"] == "The request body is not valid JSON."
    blank = _problem(client.post("/v1/search", json={"query": "   "}, headers=acme), 422, "Invalid search")
    assert "empty" in blank["detail"]
    no_customer = {"conversation_id": "c", "messages": [{"role": "agent", "text": "Merhaba"}]}
    invalid = _problem(
        client.post("/v1/assist/suggest", json=no_customer, headers=acme), 422, "Invalid request"
    )
    assert "no customer message" in invalid["detail"]


def test_an_index_outage_is_503_and_an_unexpected_error_is_500_without_internals(
    tmp_path: Path, use_embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = open_context(tmp_path / "data", use_embedder)
    app = create_app(ctx.settings, ctx, rate_limit=UNLIMITED)
    with TestClient(app, raise_server_exceptions=False) as client:
        acme = new_tenant(client, "acme")

        def engine_down(*_args: object, **_kwargs: object) -> None:
            raise StoreError("Qdrant at http://qdrant:6333 did not answer")

        monkeypatch.setattr(ctx.index, "search", engine_down)
        down = client.post("/v1/search", json={"query": "kargo"}, headers=acme)
        assert (
            _problem(down, 503, "Index unavailable")["detail"]
            == "Qdrant at http://qdrant:6333 did not answer"
        )
        assert down.headers["Retry-After"] == "5"

        def bug(*_args: object, **_kwargs: object) -> None:
            raise KeyError("secret_internal_name")

        monkeypatch.setattr(ctx.index, "search", bug)
        crashed = client.post("/v1/search", json={"query": "kargo"}, headers=acme)
        problem = _problem(crashed, 500, "Internal server error")
        assert "secret_internal_name" not in crashed.text and problem["detail"].endswith(
            "it has been logged."
        )
    ctx.close()


def test_readiness_reports_each_dependency(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {
        "status": "ready",
        "checks": {"index": "ok", "database": "ok", "ingestion": "ok"},
    }

    def unreachable(*_args: object) -> None:
        raise StoreError("index closed")

    monkeypatch.setattr(client.app.state.context.index, "count", unreachable)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["index"] == "StoreError: index closed"


def test_the_openapi_document_describes_auth_and_problem_responses(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["info"]["title"] == "Invekto Knowledge API"
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"]["scheme"] == "bearer" and schemes["apiKey"]["name"] == "X-API-Key"
    search = spec["paths"]["/v1/search"]["post"]
    assert {"bearer": []} in search["security"] and {"apiKey": []} in search["security"]
    for status in ("401", "422", "429"):
        assert "application/problem+json" in search["responses"][status]["content"]
    upload = spec["paths"]["/v1/documents"]["post"]
    assert {"413", "415", "202"} <= set(upload["responses"])
    assert any(p["name"] == "Idempotency-Key" for p in upload["parameters"])
    resolve = spec["paths"]["/v1/assist/resolve"]["post"]
    event = resolve["responses"]["200"]["content"]["text/event-stream"]["itemSchema"]
    assert event["required"] == ["event", "data"]
