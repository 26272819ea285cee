"""The OpenAPI document a .NET team generates its client from: readable operation ids and schema names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from retrieval.settings import Settings
from tests.test_api_env import ADMIN, new_tenant

pytest_plugins = ["tests.test_api_env"]  # the api_context and client fixtures


def _spec(tmp_path: Path) -> dict:
    settings = Settings(data_dir=tmp_path, admin_token="t" * 40, _env_file=None)  # type: ignore[call-arg]
    return create_app(settings).openapi()


def test_every_operation_has_a_stable_readable_unique_id(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z][a-zA-Z]+", i) for i in ids), ids
    by_route = {
        (m.upper(), p): op["operationId"] for p, ops in spec["paths"].items() for m, op in ops.items()
    }
    assert by_route[("POST", "/v1/assist/suggest")] == "suggestReplies"
    assert by_route[("POST", "/v1/documents")] == "uploadDocuments"
    assert by_route[("GET", "/v1/knowledge/gaps")] == "listKnowledgeGaps"


def test_schemas_are_named_after_what_they_are_and_every_operation_has_a_tag(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    text = json.dumps(spec)
    assert "Body_" not in text and "_v1_" not in text
    assert "UploadDocumentsForm" in spec["components"]["schemas"]
    assert spec["paths"]["/v1/documents"]["post"]["requestBody"]["content"]["multipart/form-data"][
        "schema"
    ] == {"$ref": "#/components/schemas/UploadDocumentsForm"}
    assert all(op.get("tags") for ops in spec["paths"].values() for op in ops.values())
    assert spec["servers"][0]["url"].startswith("http")

    # An optional plain field is one schema (`type: [string, "null"]`), not a union a generator turns into
    # a wrapper class; unions stay only around references.
    def unions(node: object) -> list[list]:
        if isinstance(node, dict):
            found = [node["anyOf"]] if "anyOf" in node else []
            return found + [u for v in node.values() for u in unions(v)]
        if isinstance(node, list):
            return [u for v in node for u in unions(v)]
        return []

    nullable = [u for u in unions(spec) if {"type": "null"} in u]
    assert nullable and all(any("$ref" in option for option in union) for union in nullable), nullable
    # The same document twice: generators cache by it.
    assert _spec(tmp_path) == spec


def test_the_docs_page_loads_swagger_ui_from_the_service_not_a_cdn(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, admin_token="t" * 40, _env_file=None)  # type: ignore[call-arg]
    app = TestClient(create_app(settings))  # no startup: the page and its assets need no service
    page = app.get("/docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(a.startswith("/playground/static/") for a in assets), assets
    assert "cdn" not in page.text and "/openapi.json" in page.text
    for asset in assets:
        got = app.get(asset)
        assert got.status_code == 200 and len(got.content) > 500, asset
    assert app.get("/redoc").status_code == 404


def test_every_json_request_body_has_an_example_the_service_accepts(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    tenant = new_tenant(client, "ornek")
    tried = 0
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body is None:
                continue
            assert "example" in body, f"{method.upper()} {path} has no example"
            url = path.replace("{tenant_id}", "ornek")
            headers = ADMIN if path.startswith("/v1/admin") else tenant
            response = client.request(method, url, json=body["example"], headers=headers)
            tried += 1
            # Valid as written: never a validation error (an example naming a suggestion id that does not
            # exist here, or a tenant that already does, may get 404 / 409).
            assert response.status_code in (200, 201, 202, 404, 409), (method, path, response.text)
            assert response.status_code != 422
    assert tried >= 11


def _closed(node: object) -> object:
    """Return a schema in which every object with listed properties allows no others (catches a misspelt
    key in an example; the service's response models add none)."""
    if isinstance(node, list):
        return [_closed(v) for v in node]
    if not isinstance(node, dict):
        return node
    closed = {k: (v if k == "example" else _closed(v)) for k, v in node.items()}
    if "properties" in closed and "additionalProperties" not in closed:
        closed["additionalProperties"] = False
    return closed


def test_every_response_body_has_an_example_that_matches_its_schema(tmp_path: Path) -> None:
    jsonschema_rs = pytest.importorskip("jsonschema_rs", reason="installed with the test extra")
    spec = _spec(tmp_path)
    components = _closed(spec["components"])
    checked: list[str] = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for status, response in op["responses"].items():
                for media, content in response.get("content", {}).items():
                    if "json" not in media:
                        continue
                    where = f"{op['operationId']} ({method.upper()} {path}) {status} {media}"
                    assert "example" in content, f"{where} has no example"
                    schema = {**_closed(content["schema"]), "components": components}
                    validator = jsonschema_rs.Draft202012Validator(schema, validate_formats=True)
                    errors = [
                        f"{e.instance_path}: {e.message}" for e in validator.iter_errors(content["example"])
                    ]
                    assert not errors, f"{where}: {errors}"
                    checked.append(where)
    assert any(w.startswith("suggestReplies") and " 200 " in w for w in checked)
    assert sum("problem+json" in w for w in checked) > 50
    # Every 2xx answer of every operation is JSON with an example, but for SSE and Prometheus text.
    for ops in spec["paths"].values():
        for op in ops.values():
            for status, response in op["responses"].items():
                if status.startswith("2") and status != "204":
                    media = set(response.get("content", {}))
                    assert "application/json" in media or media <= {
                        "text/plain; version=0.0.4; charset=utf-8"
                    }, (
                        op["operationId"],
                        status,
                        media,
                    )
