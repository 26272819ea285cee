"""Auth and tenancy: API keys, the admin token, rate limits, and no route that leaks another tenant's data."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from api.app import create_app
from api.cli import app as cli_app
from api.context import ServiceContext
from api.deps import ApiKeys
from api.ratelimit import RateLimit, RateLimiter
from retrieval.embedders import Embedder
from tests.test_api_env import (
    ADMIN,
    FIXTURES,
    ON_BOTH_DATABASES,
    UNLIMITED,
    customer_asks,
    ingest,
    new_tenant,
    open_context,
    upload_files,
    wait_for_job,
)

pytest_plugins = ["tests.test_api_env"]  # the api_context and client fixtures
pytestmark = ON_BOTH_DATABASES  # SQLite and PostgreSQL

# Text only tenant B's document holds (A's questions name ZEBRAKOD-77, so that word alone proves nothing).
B_ONLY = "B şirketinin gizli indirimi"
# Routes that hold no tenant data, with why.
NOT_TENANT_SCOPED = {
    ("GET", "/healthz"): "liveness only",
    ("GET", "/readyz"): "dependency status only",
    ("GET", "/metrics"): "aggregate counters, no tenant labels",
    ("GET", "/playground"): "a static page; its data comes from the /v1 endpoints",
    **{
        (m, path): "API description"
        for path in ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")
        for m in ("GET", "HEAD")
    },
}


def test_tenant_routes_need_a_valid_key_in_either_header(client: TestClient) -> None:
    acme = new_tenant(client, "acme")
    key = acme["Authorization"].removeprefix("Bearer ")
    missing = client.get("/v1/documents")
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["title"] == "API key required"
    wrong = client.get("/v1/documents", headers={"X-API-Key": key[:-1] + "x"})
    assert wrong.status_code == 401 and wrong.json()["title"] == "Invalid API key"
    assert client.get("/v1/documents", headers={"X-API-Key": key}).status_code == 200
    assert client.get("/v1/documents", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert client.get("/v1/documents", headers={"Authorization": f"Basic {key}"}).status_code == 401


def test_a_revoked_key_stops_working_and_the_tenants_other_keys_do_not(client: TestClient) -> None:
    acme = new_tenant(client, "acme")
    second = client.post("/v1/admin/tenants/acme/keys", json={"name": "crm"}, headers=ADMIN).json()
    keys = client.get("/v1/admin/tenants/acme/keys", headers=ADMIN).json()
    assert {k["name"] for k in keys} == {"test", "crm"} and all("key" not in k for k in keys)
    assert client.delete(f"/v1/admin/tenants/acme/keys/{second['id']}", headers=ADMIN).status_code == 204
    assert client.get("/v1/documents", headers={"X-API-Key": second["key"]}).status_code == 401
    assert client.get("/v1/documents", headers=acme).status_code == 200
    gone = client.delete("/v1/admin/tenants/other/keys/" + second["id"], headers=ADMIN)
    assert gone.status_code == 404


def test_a_key_revoked_by_another_process_stops_working_within_the_cache_ttl(
    api_context: ServiceContext,
) -> None:
    registry = api_context.registry
    registry.create_tenant("acme", "Acme")
    info, key = registry.create_api_key("acme", "crm")
    now = [0.0]
    keys = ApiKeys(registry, ttl_s=2.0, clock=lambda: now[0])
    assert keys.tenant(key).id == "acme"  # type: ignore[union-attr]
    registry.revoke_api_key(info.id)  # as `invekto-knowledge key revoke` does, beside the server
    assert keys.tenant(key) is not None
    now[0] += 2.5
    assert keys.tenant(key) is None
    assert keys.tenant(key + "x") is None


def test_admin_routes_need_the_admin_token_and_are_closed_when_none_is_configured(
    client: TestClient, tmp_path: Path, use_embedder: Embedder
) -> None:
    assert client.get("/v1/admin/tenants").status_code == 401
    wrong = client.get("/v1/admin/tenants", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 403 and wrong.json()["title"] == "Invalid admin token"
    assert (
        client.get("/v1/admin/tenants", headers={"X-Admin-Token": ADMIN["Authorization"][7:]}).status_code
        == 200
    )
    taken = client.post("/v1/admin/tenants", json={"id": "acme", "name": "A"}, headers=ADMIN)
    again = client.post("/v1/admin/tenants", json={"id": "acme", "name": "A"}, headers=ADMIN)
    assert taken.status_code == 201 and taken.headers["Location"] == "/v1/admin/tenants/acme"
    assert again.status_code == 409 and again.json()["title"] == "Tenant already exists"
    bad = client.post("/v1/admin/tenants", json={"id": "Acme Ltd", "name": "A"}, headers=ADMIN)
    assert bad.status_code == 422 and bad.json()["errors"][0]["location"] == "body.id"
    blank = client.post("/v1/admin/tenants", json={"id": "blank", "name": "  "}, headers=ADMIN)
    assert blank.status_code == 422 and blank.json()["detail"] == "Tenant name must not be empty"

    ctx = open_context(tmp_path / "open", use_embedder, admin_token=None)
    with TestClient(create_app(ctx.settings, ctx)) as unconfigured:
        for headers in ({}, ADMIN):
            closed = unconfigured.get("/v1/admin/tenants", headers=headers)
            assert closed.status_code == 503 and closed.json()["title"] == "Admin token not configured"
    ctx.close()


def test_wrong_keys_and_admin_tokens_are_limited_per_client_address(api_context: ServiceContext) -> None:
    now = [1000.0]
    app = create_app(api_context.settings, api_context, rate_limit=UNLIMITED)
    app.state.auth_failures = RateLimiter(RateLimit(rate=0.5, burst=3), clock=lambda: now[0])
    with TestClient(app) as client:
        acme = new_tenant(client, "acme")
        guesses = [client.get("/v1/documents", headers={"X-API-Key": f"ik_guess_{n}"}) for n in range(2)]
        wrong_admin = client.get("/v1/admin/tenants", headers={"X-Admin-Token": "x" * 40})
        assert [r.status_code for r in guesses] + [wrong_admin.status_code] == [401, 401, 403]
        refused = client.get("/v1/documents", headers={"X-API-Key": "ik_guess_3"})
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "2"
        assert refused.json()["title"] == "Too many failed authentications"
        # While the address is blocked, no key it sends is looked at, a valid one neither.
        assert client.get("/v1/documents", headers=acme).status_code == 429
        assert client.get("/v1/admin/tenants", headers=ADMIN).status_code == 429
        now[0] += 2.0  # one attempt back
        assert client.get("/v1/documents", headers=acme).status_code == 200  # a valid key costs nothing
        assert client.get("/v1/documents", headers=acme).status_code == 200
        # Requests without a key are not guesses: they are refused 401 as before.
        assert client.get("/v1/documents").status_code == 401


def test_an_admin_token_shorter_than_32_characters_is_refused_at_startup(
    api_context: ServiceContext, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    short = api_context.settings.model_copy(update={"admin_token": SecretStr("admin123")})
    with pytest.raises(ValueError, match="INVEKTO_ADMIN_TOKEN has 8 characters; it must have at least 32"):
        create_app(short, api_context)
    monkeypatch.setenv("INVEKTO_DATA_DIR", str(tmp_path / "served"))
    monkeypatch.setenv("INVEKTO_ADMIN_TOKEN", "admin123")
    result = CliRunner().invoke(cli_app, ["serve", "--port", "1"])
    assert result.exit_code == 2
    assert "INVEKTO_ADMIN_TOKEN has 8 characters; it must have at least 32" in " ".join(result.output.split())
    assert "admin123" not in result.output


def test_tenant_settings_can_be_changed_and_a_bad_value_is_refused(client: TestClient) -> None:
    new_tenant(client, "acme")
    changed = client.patch("/v1/admin/tenants/acme", json={"settings": {"tone": "sen"}}, headers=ADMIN)
    assert changed.status_code == 200 and changed.json()["settings"]["tone"] == "sen"
    bad = client.patch("/v1/admin/tenants/acme", json={"settings": {"tone": "kaba"}}, headers=ADMIN)
    assert bad.status_code == 422 and bad.json()["title"] == "Invalid tenant settings"


def test_deleting_a_tenant_removes_its_knowledge_and_keys(client: TestClient) -> None:
    acme = new_tenant(client, "acme")
    ingest(client, acme, FIXTURES / "kargo.md")
    assert client.delete("/v1/admin/tenants/acme", headers=ADMIN).status_code == 204
    assert client.get("/v1/documents", headers=acme).status_code == 401
    assert client.app.state.context.index.count("acme") == 0
    assert client.get("/v1/admin/tenants/acme", headers=ADMIN).status_code == 404


def test_a_tenant_over_its_rate_gets_429_with_retry_after_and_others_are_not_slowed(
    api_context: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    app = create_app(api_context.settings, api_context, rate_limit=RateLimit(rate=0.5, burst=2))  # type: ignore[attr-defined]
    app.state.rate_limiter = RateLimiter(RateLimit(rate=0.5, burst=2), clock=lambda: now[0])
    with TestClient(app) as limited:
        acme, other = new_tenant(limited, "acme"), new_tenant(limited, "other")
        assert [limited.get("/v1/documents", headers=acme).status_code for _ in range(2)] == [200, 200]
        refused = limited.get("/v1/documents", headers=acme)
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "2"
        assert (
            refused.json()["title"] == "Rate limit exceeded"
            and "0.5 requests per second" in refused.json()["detail"]
        )
        assert limited.get("/v1/documents", headers=other).status_code == 200
        now[0] += 2.0  # one token back
        assert limited.get("/v1/documents", headers=acme).status_code == 200


def test_rate_limit_and_compute_slots_come_from_settings(api_context: object) -> None:
    settings = api_context.settings.model_copy(  # type: ignore[attr-defined]
        update={"rate_limit": 0.001, "rate_burst": 3, "compute_slots": 5}
    )
    app = create_app(settings, api_context)  # type: ignore[arg-type]
    assert app.state.compute.slots == 5
    with TestClient(app) as limited:
        acme = new_tenant(limited, "acme")
        codes = [limited.get("/v1/documents", headers=acme).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    with pytest.raises(ValueError, match="rate_limit"):
        type(settings)(rate_limit=-1, _env_file=None)  # type: ignore[call-arg]


def test_every_route_refuses_another_tenants_resources(client: TestClient) -> None:
    """Tenant A's key against tenant B's ids and data on every route: 404/403, never B's data.

    The cases are checked against app.routes, so a new route without a case fails this test.
    """
    a, b = new_tenant(client, "tenant-a"), new_tenant(client, "tenant-b")
    secret = ("zebra.md", f"# Zebra\n\nZEBRAKOD-77 ile {B_ONLY} uygulanır.".encode())
    b_job = ingest(client, b, secret)
    assert b_job["status"] == "succeeded"
    keyed = upload_files(client, {**b, "Idempotency-Key": "shared-key-1"}, ("b2.md", b"# B\n\nikinci belge"))
    wait_for_job(client, b, keyed.headers["Location"])
    b_suggestion = client.post(
        "/v1/assist/suggest", json=customer_asks("ZEBRAKOD-77 indirimi nedir?"), headers=b
    ).json()["suggestions"][0]["id"]
    b_key_id = client.get("/v1/admin/tenants/tenant-b/keys", headers=ADMIN).json()[0]["id"]
    # Positive control: B finds its own secret with the query A will send.
    b_hits = client.post("/v1/search", json={"query": "ZEBRAKOD-77 gizli indirim"}, headers=b).json()["hits"]
    assert b_hits[0]["doc_id"] == "zebra.md" and B_ONLY in b_hits[0]["text"]

    def b_unchanged() -> None:
        docs = client.get("/v1/documents", headers=b).json()
        assert {d["doc_id"]: d["status"] for d in docs} == {"b2.md": "indexed", "zebra.md": "indexed"}

    def no_b_data(response: object) -> None:
        text = response.text  # type: ignore[attr-defined]
        assert B_ONLY not in text and "b2.md" not in text and b_job["id"] not in text

    def new_job_is_as(response: object) -> None:
        assert response.status_code == 202, response.text  # type: ignore[attr-defined]
        location = response.headers["Location"]  # type: ignore[attr-defined]
        assert client.get(location, headers=b).status_code == 404  # A's job, invisible to B
        wait_for_job(client, a, location)
        b_unchanged()

    def refused(response: object, *statuses: int) -> None:
        assert response.status_code in statuses, response.text  # type: ignore[attr-defined]
        problem = response.json()  # type: ignore[attr-defined]
        # A problem and nothing else (its detail may echo the id A sent, never B's content).
        assert set(problem) <= {"type", "title", "status", "detail", "instance", "errors"}
        assert B_ONLY not in response.text  # type: ignore[attr-defined]

    def assist_mode() -> None:
        response = client.get("/v1/assist/mode", headers=a)
        assert response.json()["tenant_id"] == "tenant-a"
        no_b_data(response)

    def assist_policy() -> None:
        # A's policy rests on A's knowledge only; B's sources are never probed or shown.
        response = client.get("/v1/assist/policy", headers=a)
        assert response.status_code == 200 and response.json()["evidence"]["self_test"] >= 0
        no_b_data(response)

    def knowledge_gaps() -> None:
        asked = client.post(
            "/v1/assist/resolve", json=customer_asks("ZEBRAKOD-88 kampanyası ne zaman?"), headers=b
        )
        assert asked.status_code == 200 and asked.json()["decision"] == "handoff"
        assert "ZEBRAKOD-88" in client.get("/v1/knowledge/gaps", headers=b).text  # positive control
        response = client.get("/v1/knowledge/gaps", headers=a)
        assert response.status_code == 200 and "ZEBRAKOD" not in response.text
        no_b_data(response)

    def answer_gap() -> None:
        body = {"question": "ZEBRAKOD-88 kampanyası ne zaman?", "answer": "A'nın yanıtı.", "asked": ["x"]}
        response = client.post("/v1/knowledge/gaps/answer", json=body, headers=a)
        assert response.status_code == 200 and response.json()["status"] == "succeeded"
        b_unchanged()
        assert "ZEBRAKOD-88" in client.get("/v1/knowledge/gaps", headers=b).text  # B's gap stays B's

    def knowledge_conflicts() -> None:
        response = client.get("/v1/knowledge/conflicts", headers=a)
        assert response.status_code == 200
        no_b_data(response)

    def search() -> None:
        response = client.post(
            "/v1/search", json={"query": "ZEBRAKOD-77 gizli indirim", "limit": 100}, headers=a
        )
        assert response.status_code == 200
        no_b_data(response)

    def suggest() -> None:
        response = client.post(
            "/v1/assist/suggest", json=customer_asks("ZEBRAKOD-77 indirimi nedir?"), headers=a
        )
        assert response.status_code == 200
        no_b_data(response)

    def resolve() -> None:
        response = client.post(
            "/v1/assist/resolve", json=customer_asks("ZEBRAKOD-77 indirimi nedir?"), headers=a
        )
        assert response.status_code == 200
        no_b_data(response)

    def upload() -> None:
        response = upload_files(
            client, {**a, "Idempotency-Key": "shared-key-1"}, ("zebra.md", b"# A\n\nA belgesi")
        )
        assert response.json()["replayed"] is False and response.json()["id"] != keyed.json()["id"]
        new_job_is_as(response)

    def conversation_closed() -> None:
        conversation = json.loads((FIXTURES / "kapanan_sohbet.json").read_text(encoding="utf-8"))
        new_job_is_as(
            client.post("/v1/conversations/closed", json={**conversation, "tenant_id": "tenant-b"}, headers=a)
        )

    def text_documents() -> None:
        naming_b = {"tenant_id": "tenant-b", "documents": [{"id": "zebra.md", "text": "A metni"}]}
        refused(client.post("/v1/text-documents", json=naming_b, headers=a), 422)
        body = {"documents": [{"id": "zebra.md", "text": "A metni"}]}
        new_job_is_as(client.post("/v1/text-documents", json=body, headers=a))

    def sheet(path: str) -> Callable[[], None]:
        def run() -> None:
            data = (FIXTURES / ("sss.csv" if path == "/v1/faq" else "hazir_yanitlar.csv")).read_bytes()
            new_job_is_as(
                client.post(path, files={"file": ("x.csv", data)}, data={"tenant_id": "tenant-b"}, headers=a)
            )

        return run

    def chats_import() -> None:
        data = (FIXTURES / "sohbetler.jsonl").read_bytes()
        new_job_is_as(client.post("/v1/conversations/import", files={"file": ("s.jsonl", data)}, headers=a))

    def admin(method: str, path: str, body: dict | None = None) -> Callable[[], None]:
        return lambda: refused(client.request(method, path, json=body, headers=a), 403)

    b_admin = "/v1/admin/tenants/tenant-b"
    cases: dict[tuple[str, str], Callable[[], None]] = {
        ("POST", "/v1/documents"): upload,
        ("GET", "/v1/knowledge/gaps"): knowledge_gaps,
        ("POST", "/v1/knowledge/gaps/answer"): answer_gap,
        ("GET", "/v1/knowledge/conflicts"): knowledge_conflicts,
        ("POST", "/v1/text-documents"): text_documents,
        ("POST", "/v1/faq"): sheet("/v1/faq"),
        ("POST", "/v1/quick-replies"): sheet("/v1/quick-replies"),
        ("GET", "/v1/documents"): lambda: no_b_data(
            client.get("/v1/documents", params={"status": "indexed"}, headers=a)
        ),
        ("GET", "/v1/documents/{doc_id:path}"): lambda: refused(
            client.get("/v1/documents/b2.md", params={"include_chunks": True}, headers=a), 404
        ),
        ("DELETE", "/v1/documents/{doc_id:path}"): lambda: (
            refused(client.delete("/v1/documents/b2.md", headers=a), 404),
            b_unchanged(),
        ),
        ("DELETE", "/v1/erasure/documents/{doc_id:path}"): lambda: (
            refused(client.delete("/v1/erasure/documents/b2.md", headers=a), 404),
            b_unchanged(),
        ),
        ("DELETE", "/v1/erasure/conversations/{conversation_id:path}"): lambda: (
            refused(client.delete("/v1/erasure/conversations/c-1", headers=a), 404),
            b_unchanged(),
        ),
        ("POST", "/v1/erasure/customer"): lambda: (
            no_b_data(client.post("/v1/erasure/customer", json={"email": "b@ornek.com.tr"}, headers=a)),
            b_unchanged(),
        ),
        ("GET", "/v1/jobs/{job_id}"): lambda: refused(client.get(f"/v1/jobs/{b_job['id']}", headers=a), 404),
        ("GET", "/v1/jobs"): lambda: no_b_data(client.get("/v1/jobs", headers=a)),
        ("POST", "/v1/conversations/import"): chats_import,
        ("POST", "/v1/conversations/closed"): conversation_closed,
        ("POST", "/v1/search"): search,
        ("POST", "/v1/assist/suggest"): suggest,
        ("POST", "/v1/assist/resolve"): resolve,
        ("GET", "/v1/assist/mode"): assist_mode,
        ("GET", "/v1/assist/policy"): assist_policy,
        ("POST", "/v1/feedback"): lambda: refused(
            client.post(
                "/v1/feedback", json={"suggestion_id": b_suggestion, "action": "accepted"}, headers=a
            ),
            404,
        ),
        ("POST", "/v1/admin/tenants"): admin("POST", "/v1/admin/tenants", {"id": "tenant-c", "name": "C"}),
        ("GET", "/v1/admin/tenants"): admin("GET", "/v1/admin/tenants"),
        ("GET", "/v1/admin/tenants/{tenant_id}"): admin("GET", b_admin),
        ("PATCH", "/v1/admin/tenants/{tenant_id}"): admin("PATCH", b_admin, {"settings": {"tone": "sen"}}),
        ("DELETE", "/v1/admin/tenants/{tenant_id}"): admin("DELETE", b_admin),
        ("POST", "/v1/admin/tenants/{tenant_id}/keys"): admin("POST", f"{b_admin}/keys", {"name": "x"}),
        ("GET", "/v1/admin/tenants/{tenant_id}/keys"): admin("GET", f"{b_admin}/keys"),
        ("DELETE", "/v1/admin/tenants/{tenant_id}/keys/{key_id}"): admin(
            "DELETE", f"{b_admin}/keys/{b_key_id}"
        ),
        ("POST", "/v1/admin/tenants/{tenant_id}/webhook-secret"): admin("POST", f"{b_admin}/webhook-secret"),
        ("DELETE", "/v1/admin/tenants/{tenant_id}/webhook-secret"): admin(
            "DELETE", f"{b_admin}/webhook-secret"
        ),
        ("POST", "/v1/admin/service-keys"): admin("POST", "/v1/admin/service-keys", {"name": "x"}),
        ("GET", "/v1/admin/service-keys"): admin("GET", "/v1/admin/service-keys"),
        ("DELETE", "/v1/admin/service-keys/{key_id}"): admin("DELETE", "/v1/admin/service-keys/x"),
    }
    # Included routers are nested in app.routes; iter_route_contexts flattens them as FastAPI's OpenAPI does.
    routes = {(m, r.path) for r in iter_route_contexts(client.app.routes) for m in r.methods or ()}
    missing = routes - set(NOT_TENANT_SCOPED) - set(cases)
    assert not missing, f"every route needs a cross-tenant case; none for {sorted(missing)}"
    for route, check in cases.items():
        if route not in routes:  # a case written ahead of its route
            continue
        try:
            check()
        except AssertionError as exc:
            raise AssertionError(f"{route}: {exc}") from exc
    b_unchanged()
    assert (
        client.post(
            "/v1/feedback", json={"suggestion_id": b_suggestion, "action": "accepted"}, headers=b
        ).status_code
        == 200
    )
