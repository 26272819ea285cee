"""The OpenAPI document a .NET team generates its client from: readable operation ids and schema names."""

from __future__ import annotations

import json
import re
from pathlib import Path

from api.app import create_app
from retrieval.settings import Settings


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
    # The same document twice: generators cache by it.
    assert _spec(tmp_path) == spec


def test_the_docs_page_loads_swagger_ui_from_the_service_not_a_cdn(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    settings = Settings(data_dir=tmp_path, admin_token="t" * 40, _env_file=None)  # type: ignore[call-arg]
    client = TestClient(create_app(settings))  # no startup: the page and its assets need no service
    page = client.get("/docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(a.startswith("/playground/static/") for a in assets), assets
    assert "cdn" not in page.text and "/openapi.json" in page.text
    for asset in assets:
        got = client.get(asset)
        assert got.status_code == 200 and len(got.content) > 500, asset
    assert client.get("/redoc").status_code == 404
