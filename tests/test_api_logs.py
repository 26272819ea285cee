"""Structured logs and optional tracing: a request id on every line and span of a request, JSON lines that
keep personal data redacted, and OpenTelemetry spans of request -> search -> answer without customer text."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.context import ServiceContext
from api.logs import JsonFormatter, json_log_config, resolve_format
from retrieval import tracing
from retrieval.embedders import Embedder
from retrieval.settings import Settings, unknown_variables
from tests.test_api_env import FIXTURES, UNLIMITED, customer_asks, ingest, new_tenant, open_context

ROOT = Path(__file__).resolve().parents[1]
PHONE_SPACED = "0532 634 54 16"
QUESTION = "Kargo ücreti ne kadar, kaç günde gelir?"


@pytest.fixture
def served(
    tmp_path: Path, use_embedder: Embedder
) -> Iterator[tuple[TestClient, ServiceContext, io.StringIO]]:
    """A client (500s answered, not raised), its context, and the JSON lines every logger wrote."""
    ctx = open_context(tmp_path / "data", use_embedder)
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        app = create_app(ctx.settings, ctx, rate_limit=UNLIMITED)
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client, ctx, lines
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        ctx.close()


def _records(lines: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines.getvalue().splitlines() if line.strip()]


def test_json_lines_carry_the_request_id_tenant_and_route_and_keep_personal_data_redacted(
    served: tuple[TestClient, ServiceContext, io.StringIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _, lines = served
    acme = new_tenant(client, "acme")
    ingest(client, acme, FIXTURES / "kargo.md")

    answered = client.post(
        "/v1/assist/suggest", json=customer_asks(QUESTION), headers={**acme, "X-Request-ID": "inbox-42.a"}
    )
    assert answered.status_code == 200 and answered.headers["X-Request-ID"] == "inbox-42.a"
    request_line = next(
        r for r in _records(lines) if r["logger"] == "api.request" and r["request_id"] == "inbox-42.a"
    )
    assert request_line["tenant_id"] == "acme" and request_line["route"] == "/v1/assist/suggest"
    assert request_line["method"] == "POST" and request_line["status"] == 200
    assert isinstance(request_line["duration_ms"], float) and request_line["level"] == "info"

    # An id with unsafe characters, too long, or carrying personal data is replaced by a new one.
    for given in ("bir iki", "x" * 65, "05326345416"):
        response = client.get("/v1/documents", headers={**acme, "X-Request-ID": given})
        assert response.status_code == 200 and response.headers["X-Request-ID"] != given
        assert len(response.headers["X-Request-ID"]) == 32
    unauthenticated = client.get("/v1/documents")
    assert unauthenticated.status_code == 401 and unauthenticated.headers["X-Request-ID"]

    # An unexpected error: its line and traceback name the request, tenant and route, never the phone.
    async def broken(*args: object) -> None:
        raise RuntimeError(f"müşteri {PHONE_SPACED} numarasından yazdı; bozuk kayıt")

    monkeypatch.setattr(client.app.state.assist, "suggest_async", broken)  # type: ignore[attr-defined]
    failed = client.post("/v1/assist/suggest", json=customer_asks(QUESTION), headers=acme)
    assert failed.status_code == 500
    request_id = failed.headers["X-Request-ID"]
    records = _records(lines)
    error = next(r for r in records if r["level"] == "error" and r["request_id"] == request_id)
    assert error["tenant_id"] == "acme" and error["route"] == "/v1/assist/suggest"
    assert "RuntimeError: müşteri [TELEFON] numarasından yazdı" in error["exception"]
    assert any(
        r["logger"] == "api.request" and r["status"] == 500 for r in records if r["request_id"] == request_id
    )
    assert PHONE_SPACED not in lines.getvalue() and "05326345416" not in lines.getvalue()


def test_the_log_format_setting_and_its_default() -> None:
    assert resolve_format("json") == "json" and resolve_format("text") == "text"
    assert resolve_format(None) == ("text" if sys.stderr.isatty() else "json")
    assert Settings(log_format="json", _env_file=None).log_format == "json"  # type: ignore[call-arg]
    assert unknown_variables({"INVEKTO_LOG_FORMAT": "json", "INVEKTO_OTEL": "1"}) == []
    assert unknown_variables({"INVEKTO_LOGFORMAT": "json"}) == [("INVEKTO_LOGFORMAT", "INVEKTO_LOG_FORMAT")]
    config = json_log_config("info", access_log=False)
    assert config["loggers"]["api.request"]["level"] == "WARNING"
    assert json_log_config("info", access_log=True)["loggers"]["api.request"]["level"] == "INFO"
    assert config["loggers"]["uvicorn.access"]["propagate"] is False


def test_tracing_off_costs_no_opentelemetry_sdk_import(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from fastapi.testclient import TestClient
        from api.app import create_app
        from retrieval import tracing
        from tests.test_api_env import api_settings
        app = create_app(api_settings({str(tmp_path)!r}))
        response = TestClient(app).get("/v1/nowhere")
        assert response.status_code == 404 and response.headers["X-Request-ID"], response
        assert not tracing.enabled()
        loaded = sorted(m for m in sys.modules if m.startswith(("opentelemetry.sdk", "opentelemetry.exporter")))
        assert not loaded, loaded
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_otel_without_its_extra_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from api.cli.common import configuration_problems

    settings = Settings(otel=True, llm_provider="extractive", _env_file=None)  # type: ignore[call-arg]
    monkeypatch.setattr(tracing.importlib.util, "find_spec", lambda name: None)
    problem = tracing.tracing_problem(settings)
    assert problem == "INVEKTO_OTEL=1 needs the otel extra: pip install 'invekto-knowledge[otel]'"
    assert configuration_problems(settings) == [problem]  # what the CLI prints before it exits
    with pytest.raises(ValueError, match="otel extra"):
        tracing.configure(settings)


def test_a_suggest_request_is_traced_request_search_answer_without_customer_text(
    served: tuple[TestClient, ServiceContext, io.StringIO],
) -> None:
    pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    client, _, _ = served
    acme = new_tenant(client, "acme")
    ingest(client, acme, FIXTURES / "kargo.md")
    # The tenant's policy is derived first (in the server's background thread, traces of its own).
    assert client.get("/v1/assist/policy", headers=acme).status_code == 200
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider)
    try:
        caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        response = client.post(
            "/v1/assist/suggest",
            json=customer_asks(f"{QUESTION} Numaram {PHONE_SPACED}"),
            headers={**acme, "traceparent": caller, "X-Request-ID": "inbox-43"},
        )
        assert response.status_code == 200, response.text
    finally:
        tracing.disable()
    finished = exporter.get_finished_spans()
    spans = {s.name: s for s in finished}
    request = spans["POST /v1/assist/suggest"]
    assert request.kind == SpanKind.SERVER
    assert (
        request.attributes["invekto.tenant_id"] == "acme"
        and request.attributes["invekto.request_id"] == "inbox-43"
    )
    assert request.attributes["http.route"] == "/v1/assist/suggest"
    assert request.attributes["http.response.status_code"] == 200
    # The caller's trace goes on: same trace id, the caller's span is the request span's parent.
    assert {f"{s.context.trace_id:032x}" for s in finished} == {caller.split("-")[1]}
    assert f"{request.parent.span_id:016x}" == caller.split("-")[2]

    # Below the request: the query, the search, the answer (the verifier inside it).
    below = {s.name: s for s in finished if s.parent and s.parent.span_id == request.context.span_id}
    assert set(below) == {"assist.query", "retrieval.search", "assist.answer"}
    search, answer = below["retrieval.search"], below["assist.answer"]
    assert search.attributes["invekto.tenant_id"] == "acme" and search.attributes["retrieval.hits"] >= 1
    assert any(s.name == "assist.verify" and s.parent.span_id == answer.context.span_id for s in finished)
    assert answer.attributes["assist.suggestions"] >= 1 and answer.attributes["assist.mode"] == "extractive"

    words = {"kargo", "ücreti", "numaram", "0532", "634", "[telefon]"}
    for traced in finished:
        for value in (traced.attributes or {}).values():
            assert not words & set(str(value).lower().split()), (traced.name, value)
