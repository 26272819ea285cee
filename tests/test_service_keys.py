"""Service keys: one credential for a backend acting for many tenants, each request naming its tenant in
X-Invekto-Tenant and then served exactly as that tenant's own key would be.

Real parts: the registry on SQLite (and on PostgreSQL with TEST_POSTGRES_URL), the app over it with the
edge index and the ingestion worker, the CLI, and the schema migration from the baseline.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect, text
from typer.testing import CliRunner

from api.app import create_app
from api.context import ServiceContext
from api.ratelimit import RateLimit
from ingestion import migrations
from ingestion.registry import Registry, engine_url
from tests.test_api_env import ADMIN, new_tenant, wait_for_job

pytest_plugins = ["tests.test_api_env"]  # the api_context and client fixtures


def _service_key(client: TestClient, tenants: list[str] | None = None, name: str = "crm") -> dict[str, Any]:
    body: dict[str, Any] = {"name": name} if tenants is None else {"name": name, "tenants": tenants}
    created = client.post("/v1/admin/service-keys", json=body, headers=ADMIN)
    assert created.status_code == 201, created.text
    return created.json()


def _as(key: str, tenant: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {key}"}
    if tenant is not None:
        headers["X-Invekto-Tenant"] = tenant
    return headers


def _add_document(client: TestClient, headers: dict[str, str], doc_id: str, text: str) -> None:
    docs = {"documents": [{"id": doc_id, "title": doc_id, "text": text}]}
    accepted = client.post("/v1/text-documents", json=docs, headers=headers)
    assert accepted.status_code == 202, accepted.text
    assert wait_for_job(client, headers, accepted.headers["Location"])["status"] == "succeeded"


def _problem(response: Any, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    problem = response.json()
    assert problem["type"].endswith("/" + kind), problem
    return problem["detail"]


def test_a_service_key_acts_for_the_tenant_it_names_and_sees_only_its_data(client: TestClient) -> None:
    acme = new_tenant(client, "acme")
    beta = new_tenant(client, "beta")
    new_tenant(client, "gamma")
    _add_document(client, acme, "acme-kargo", "Acme kargo 500 TL üzeri ücretsizdir.")
    _add_document(client, beta, "beta-iade", "Beta iade süresi 30 gündür.")
    created = _service_key(client, ["acme", "beta"])
    key = created["key"]
    assert key.startswith("isk_") and created["tenants"] == ["acme", "beta"]

    docs = client.get("/v1/documents", headers=_as(key, "acme"))
    assert docs.status_code == 200, docs.text
    assert [d["doc_id"] for d in docs.json()] == ["acme-kargo"]
    assert [d["doc_id"] for d in client.get("/v1/documents", headers=_as(key, "beta")).json()] == [
        "beta-iade"
    ]
    # What it writes is the tenant's, as with the tenant's own key.
    _add_document(client, _as(key, "acme"), "acme-iade", "Acme iade süresi 14 gündür.")
    assert {d["doc_id"] for d in client.get("/v1/documents", headers=acme).json()} == {
        "acme-kargo",
        "acme-iade",
    }
    found = client.post("/v1/search", json={"query": "iade süresi"}, headers=_as(key, "acme")).json()
    assert found["hits"] and {r["doc_id"] for r in found["hits"]} <= {"acme-kargo", "acme-iade"}
    # X-API-Key works the same as the bearer form.
    via_header = client.get("/v1/documents", headers={"X-API-Key": key, "X-Invekto-Tenant": "beta"})
    assert via_header.status_code == 200

    detail = _problem(client.get("/v1/documents", headers=_as(key)), 400, "tenant-required")
    assert "X-Invekto-Tenant" in detail
    detail = _problem(client.get("/v1/documents", headers=_as(key, "gamma")), 403, "tenant-not-allowed")
    assert "'gamma'" in detail
    _problem(client.get("/v1/documents", headers=_as(key, "nobody")), 403, "tenant-not-allowed")

    # A tenant's own key may name its own tenant, never another.
    assert client.get("/v1/documents", headers={**acme, "X-Invekto-Tenant": "acme"}).status_code == 200
    detail = _problem(
        client.get("/v1/documents", headers={**acme, "X-Invekto-Tenant": "beta"}), 403, "tenant-not-allowed"
    )
    assert "its own tenant" in detail


def test_a_key_without_a_tenant_list_acts_for_every_tenant_and_revoking_it_takes_effect_at_once(
    client: TestClient,
) -> None:
    new_tenant(client, "acme")
    created = _service_key(client)
    assert created["tenants"] is None
    key = created["key"]
    new_tenant(client, "later")  # a tenant made after the key
    assert client.get("/v1/documents", headers=_as(key, "later")).status_code == 200
    assert client.get("/v1/documents", headers=_as(key, "acme")).status_code == 200

    listed = client.get("/v1/admin/service-keys", headers=ADMIN)
    assert listed.status_code == 200
    assert key not in listed.text and "key_hash" not in listed.text
    [row] = listed.json()
    assert row["id"] == created["id"] and key.startswith(row["key_prefix"]) and row["revoked_at"] is None

    assert client.delete(f"/v1/admin/service-keys/{created['id']}", headers=ADMIN).status_code == 204
    _problem(client.get("/v1/documents", headers=_as(key, "acme")), 401, "invalid-api-key")
    assert client.get("/v1/admin/service-keys", headers=ADMIN).json()[0]["revoked_at"] is not None
    _problem(client.delete("/v1/admin/service-keys/no-such-key", headers=ADMIN), 404, "not-found")


def test_service_keys_need_the_admin_token_and_list_only_existing_tenants(client: TestClient) -> None:
    tenant = new_tenant(client, "acme")
    assert client.post("/v1/admin/service-keys", json={"name": "crm"}, headers=tenant).status_code == 403
    assert client.get("/v1/admin/service-keys").status_code == 401
    detail = _problem(
        client.post(
            "/v1/admin/service-keys", json={"name": "crm", "tenants": ["acme", "nobody"]}, headers=ADMIN
        ),
        404,
        "not-found",
    )
    assert "nobody" in detail
    assert (
        client.post("/v1/admin/service-keys", json={"name": "crm", "tenants": []}, headers=ADMIN).status_code
        == 422
    )
    # A made-up key with the service prefix is just an invalid key.
    _problem(client.get("/v1/documents", headers=_as("isk_made-up", "acme")), 401, "invalid-api-key")


def test_a_service_key_request_takes_from_the_tenants_own_rate_limit(api_context: ServiceContext) -> None:
    app = create_app(api_context.settings, api_context, rate_limit=RateLimit(rate=0.001, burst=2))
    with TestClient(app) as client:
        acme = new_tenant(client, "acme")
        new_tenant(client, "beta")
        key = _service_key(client)["key"]
        assert client.get("/v1/documents", headers=acme).status_code == 200
        assert client.get("/v1/documents", headers=_as(key, "acme")).status_code == 200
        _problem(client.get("/v1/documents", headers=_as(key, "acme")), 429, "rate-limited")
        assert client.get("/v1/documents", headers=_as(key, "beta")).status_code == 200


def test_the_tenant_header_is_in_the_openapi_document(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/v1/documents"]["get"]
    header = next(p for p in op["parameters"] if p["name"] == "X-Invekto-Tenant")
    assert header["in"] == "header" and not header.get("required")
    assert "403" in op["responses"]
    assert "isk_" in spec["components"]["securitySchemes"]["bearer"]["description"]
    ids = {op["operationId"] for ops in spec["paths"].values() for op in ops.values()}
    assert {
        "createServiceKey",
        "listServiceKeys",
        "revokeServiceKey",
        "rotateWebhookSecret",
        "deleteWebhookSecret",
    } <= ids


# --- The registry, on SQLite and PostgreSQL ----------------------------------------------------------


def test_the_registry_stores_service_keys_hashed(database_url: str) -> None:
    with Registry(database_url) as registry:
        registry.create_tenant("acme", "Acme")
        registry.create_tenant("beta", "Beta")
        info, key = registry.create_service_key("crm", ["beta", "acme", "acme"])
        assert info.tenants == ("acme", "beta") and info.may_act_for("acme") and not info.may_act_for("gamma")
        everyone, other = registry.create_service_key("all")
        assert everyone.tenants is None and everyone.may_act_for("anyone")
        assert registry.authenticate_service_key(key) == info
        assert registry.authenticate_service_key(key + "x") is None
        assert registry.authenticate(key) is None  # not a tenant key
        with pytest.raises(LookupError):
            registry.create_service_key("crm", ["nobody"])
        assert [k.name for k in registry.list_service_keys()] == ["crm", "all"]
        assert registry.revoke_service_key(info.id) and registry.authenticate_service_key(key) is None
        assert registry.authenticate_service_key(other) == everyone
        assert not registry.revoke_service_key("no-such-key")
    engine = create_engine(engine_url(database_url))
    try:
        with engine.connect() as connection:
            stored = [row[0] for row in connection.execute(text("SELECT key_hash FROM service_keys"))]
    finally:
        engine.dispose()
    assert len(stored) == 2 and key not in stored and other not in stored


def test_the_registry_rotates_webhook_secrets(database_url: str) -> None:
    with Registry(database_url) as registry:
        registry.create_tenant("acme", "Acme")
        first = registry.rotate_webhook_secret("acme")
        assert first.previous is None and first.current.startswith("whsec_")
        second = registry.rotate_webhook_secret("acme")
        assert second.previous == first.current and second.previous_valid_until is not None
        tenant = registry.get_tenant("acme")
        assert tenant is not None and tenant.webhook == second
        assert first.current not in repr(tenant)  # a logged tenant never shows its secrets
        assert registry.delete_webhook_secret("acme") and not registry.delete_webhook_secret("acme")
        assert registry.get_tenant("acme").webhook is None  # type: ignore[union-attr]
        registry.rotate_webhook_secret("acme")
        assert registry.delete_tenant("acme")  # its secret goes with it
        with pytest.raises(LookupError):
            registry.rotate_webhook_secret("acme")


def test_db_upgrade_brings_a_baseline_database_to_the_service_key_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.cli import app

    data = tmp_path / "data"
    data.mkdir()
    url = f"sqlite:///{data / 'registry.sqlite3'}"
    engine = create_engine(engine_url(url))
    try:
        with engine.begin() as connection:
            command.upgrade(migrations._config(connection), migrations.BASELINE)
            connection.execute(
                text(
                    "INSERT INTO tenants (id, name, settings, created_at) "
                    "VALUES ('acme', 'Acme', '{}', '2026-01-02 03:04:05+00:00')"
                )
            )
        with engine.connect() as connection:
            assert "service_keys" not in inspect(connection).get_table_names()
    finally:
        engine.dispose()

    monkeypatch.setenv("INVEKTO_DATA_DIR", str(data))
    upgraded = CliRunner().invoke(app, ["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert f"upgraded {migrations.BASELINE} -> {migrations.head()}" in upgraded.output
    assert migrations.head() == "0002_service_keys_webhooks"
    with Registry(url) as registry:
        info, key = registry.create_service_key("crm", ["acme"])
        assert registry.authenticate_service_key(key) == info
        assert registry.rotate_webhook_secret("acme").current


# --- The CLI -----------------------------------------------------------------------------------------


def test_the_cli_creates_lists_and_revokes_service_keys_and_webhook_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.cli import app

    monkeypatch.setenv("INVEKTO_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    assert runner.invoke(app, ["tenant", "create", "acme"]).exit_code == 0
    created = runner.invoke(app, ["service-key", "create", "--name", "crm", "--tenant", "acme"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("isk_")
    listed = runner.invoke(app, ["service-key", "list", "--json"])
    rows = json.loads(listed.stdout)
    assert [r["tenants"] for r in rows] == [["acme"]] and key not in listed.stdout
    assert runner.invoke(app, ["service-key", "create", "--name", "x", "-t", "nobody"]).exit_code != 0
    assert runner.invoke(app, ["service-key", "revoke", rows[0]["id"]]).exit_code == 0
    assert "revoked" in runner.invoke(app, ["service-key", "list"]).stdout

    secret = runner.invoke(app, ["tenant", "webhook-secret", "acme"])
    assert secret.exit_code == 0, secret.output
    assert secret.stdout.strip().splitlines()[-1].startswith("whsec_")
    rotated = runner.invoke(app, ["tenant", "webhook-secret", "acme"])
    assert "previous one is valid until" in rotated.output
    assert runner.invoke(app, ["tenant", "webhook-secret", "acme", "--delete"]).exit_code == 0
    assert runner.invoke(app, ["tenant", "webhook-secret", "acme", "--delete"]).exit_code != 0
    assert runner.invoke(app, ["tenant", "webhook-secret", "nobody"]).exit_code != 0
