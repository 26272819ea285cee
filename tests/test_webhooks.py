"""Signed webhooks both ways: Invekto's `POST /v1/conversations/closed` verified with the tenant's webhook
secret, and a finished ingestion job announced to the tenant's callback URL, signed, with retries.

Real parts: the app over a SQLite registry and the edge index, the ingestion worker, and for callbacks a
real HTTP server on 127.0.0.1 that the sender reaches over the loopback.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.callbacks import CallbackSender
from api.context import ServiceContext
from api.webhooks import SignatureError, signed_headers, verify
from tests.test_api_env import ADMIN, UNLIMITED, new_tenant, wait_for_job

pytest_plugins = ["tests.test_api_env"]  # the api_context and client fixtures

OPEN_CONVERSATION = {
    "conversation_id": "wa-77",
    "channel": "whatsapp",
    "status": "open",
    "messages": [{"role": "customer", "text": "Kargom nerede?", "ts": "2026-11-30T10:01:10+03:00"}],
}


def _body(conversation: dict[str, Any] = OPEN_CONVERSATION) -> bytes:
    return json.dumps(conversation, ensure_ascii=False).encode()


def _hmac(secret: str, timestamp: int | str, body: bytes) -> str:
    """The signature as a receiver written from the docs computes it (not the service's own function)."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def _signed(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": "application/json",
        "X-Invekto-Timestamp": str(ts),
        "X-Invekto-Signature": f"v1={_hmac(secret, ts, body)}",
    }


def _new_secret(client: TestClient, tenant_id: str) -> str:
    created = client.post(f"/v1/admin/tenants/{tenant_id}/webhook-secret", headers=ADMIN)
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    return secret


def _closed(client: TestClient, key: dict[str, str], headers: dict[str, str], body: bytes) -> Any:
    return client.post("/v1/conversations/closed", content=body, headers={**key, **headers})


# --- Incoming ------------------------------------------------------------------------------------


def test_a_signed_webhook_is_accepted_and_bad_ones_are_refused_with_the_reason(client: TestClient) -> None:
    key = new_tenant(client, "acme")
    secret = _new_secret(client, "acme")
    body = _body()

    accepted = _closed(client, key, _signed(secret, body), body)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["indexed"] is False

    def refused(headers: dict[str, str], sent: bytes = body) -> tuple[str, str]:
        response = _closed(client, key, headers, sent)
        assert response.status_code == 401, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        return problem["type"].rsplit("/", 1)[-1], problem["detail"]

    kind, detail = refused({"Content-Type": "application/json"})
    assert kind == "missing-signature"
    assert "X-Invekto-Timestamp and X-Invekto-Signature" in detail
    now = int(time.time())
    kind, detail = refused({**_signed(secret, body), "X-Invekto-Signature": "v1=" + "0" * 64})
    assert kind == "bad-signature" and "does not match" in detail
    kind, _ = refused(_signed("whsec_someone-elses", body))
    assert kind == "bad-signature"
    tampered = body.replace(b"Kargom", b"Paketim")
    kind, _ = refused(_signed(secret, body), tampered)  # signed one body, sent another
    assert kind == "bad-signature"
    kind, detail = refused(_signed(secret, body, now - 301))
    assert kind == "stale-timestamp" and " s old, over the 300 s allowed" in detail
    kind, detail = refused(_signed(secret, body, now + 600))
    assert kind == "future-timestamp" and "in the future" in detail
    kind, detail = refused({**_signed(secret, body), "X-Invekto-Timestamp": "2026-12-01T10:00:00Z"})
    assert kind == "malformed-signature" and "Unix seconds" in detail
    kind, detail = refused({**_signed(secret, body), "X-Invekto-Signature": _hmac(secret, now, body)})
    assert kind == "malformed-signature" and "v1=<hex>" in detail
    # Within the window either way is fine (clocks drift).
    assert _closed(client, key, _signed(secret, body, now - 250), body).status_code == 200
    assert _closed(client, key, _signed(secret, body, now + 250), body).status_code == 200
    # The secret itself is never shown again: only that there is one.
    tenant = client.get("/v1/admin/tenants/acme", headers=ADMIN).json()
    assert tenant["webhook_secret"]["created_at"] and secret not in json.dumps(tenant)
    assert secret not in client.get("/v1/admin/tenants", headers=ADMIN).text


def test_a_rotated_secret_keeps_the_previous_one_valid_and_several_signatures_may_be_sent(
    client: TestClient,
) -> None:
    key = new_tenant(client, "acme")
    old = _new_secret(client, "acme")
    new = _new_secret(client, "acme")
    assert new != old
    state = client.get("/v1/admin/tenants/acme", headers=ADMIN).json()["webhook_secret"]
    assert state["previous_valid_until"] is not None
    body = _body()
    assert _closed(client, key, _signed(old, body), body).status_code == 200
    assert _closed(client, key, _signed(new, body), body).status_code == 200
    # A sender mid-rotation signs with both: one value per secret.
    now = int(time.time())
    both = f"v1={_hmac('whsec_not-ours', now, body)}, v1={_hmac(new, now, body)}"
    headers = {
        "Content-Type": "application/json",
        "X-Invekto-Timestamp": str(now),
        "X-Invekto-Signature": both,
    }
    assert _closed(client, key, headers, body).status_code == 200

    # Removing the secret: webhooks are accepted unsigned again.
    assert client.delete("/v1/admin/tenants/acme/webhook-secret", headers=ADMIN).status_code == 204
    assert client.delete("/v1/admin/tenants/acme/webhook-secret", headers=ADMIN).status_code == 404
    assert _closed(client, key, {"Content-Type": "application/json"}, body).status_code == 200
    assert client.get("/v1/admin/tenants/acme", headers=ADMIN).json()["webhook_secret"] is None
    assert client.post("/v1/admin/tenants/nobody/webhook-secret", headers=ADMIN).status_code == 404


def test_the_previous_secret_stops_verifying_when_its_grace_period_is_over() -> None:
    from datetime import UTC, datetime, timedelta

    from ingestion.registry_models import WebhookSecrets

    now = datetime.now(UTC)
    rotated = WebhookSecrets("whsec_new", now, "whsec_old", now + timedelta(hours=24))
    assert rotated.valid(now) == ["whsec_new", "whsec_old"]
    assert rotated.valid(now + timedelta(hours=25)) == ["whsec_new"]
    body = b'{"a": 1}'
    stamp = time.time()
    headers = signed_headers("whsec_old", body, stamp)
    args = (headers["X-Invekto-Timestamp"], headers["X-Invekto-Signature"], body)
    verify(rotated.valid(now), *args, tolerance_s=300, now=stamp)
    with pytest.raises(SignatureError) as refused:
        verify(rotated.valid(now + timedelta(hours=25)), *args, tolerance_s=300, now=stamp)
    assert refused.value.code == "bad-signature"


def test_a_tenant_without_a_secret_is_served_as_before_and_another_tenants_secret_does_not_apply(
    client: TestClient,
) -> None:
    plain = new_tenant(client, "plain")
    new_tenant(client, "signed")
    _new_secret(client, "signed")
    body = _body()
    response = _closed(client, plain, {"Content-Type": "application/json"}, body)
    assert response.status_code == 200, response.text
    # Still checked against the tenant's API key first.
    assert _closed(client, {}, {"Content-Type": "application/json"}, body).status_code == 401


def test_the_tolerance_is_a_setting(api_context: ServiceContext) -> None:
    settings = api_context.settings.model_copy(update={"webhook_tolerance_s": 30.0})
    with TestClient(create_app(settings, api_context, rate_limit=UNLIMITED)) as client:
        key = new_tenant(client, "acme")
        secret = _new_secret(client, "acme")
        body = _body()
        stale = _closed(client, key, _signed(secret, body, int(time.time()) - 60), body)
        assert stale.status_code == 401 and "over the 30 s allowed" in stale.json()["detail"]


def test_the_webhook_headers_are_in_the_openapi_document(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/v1/conversations/closed"]["post"]
    headers = {p["name"] for p in op["parameters"] if p["in"] == "header"}
    assert {"X-Invekto-Timestamp", "X-Invekto-Signature", "X-Invekto-Tenant"} <= headers
    assert op["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Conversation"
    }
    assert op["operationId"] == "conversationClosed"


# --- Outgoing ------------------------------------------------------------------------------------


class Receiver:
    """A real HTTP server on 127.0.0.1 answering each callback with the next scripted status."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers.items()), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/invekto/jobs"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fast_client(api_context: ServiceContext) -> Iterator[TestClient]:
    """The app with callback retries after 50 ms instead of 1, 4, 16 and 64 s."""
    app = create_app(
        api_context.settings, api_context, rate_limit=UNLIMITED, callback_retry_delays=(0.05,) * 4
    )
    with TestClient(app) as test_client:
        yield test_client


def _with_callback(client: TestClient, tenant_id: str, url: str) -> tuple[dict[str, str], str]:
    key = new_tenant(client, tenant_id)
    patched = client.patch(
        f"/v1/admin/tenants/{tenant_id}", json={"settings": {"callback_url": url}}, headers=ADMIN
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["settings"]["callback_url"] == url
    return key, _new_secret(client, tenant_id)


def _run_job(client: TestClient, key: dict[str, str]) -> dict[str, Any]:
    docs = {"documents": [{"id": "kargo", "title": "Kargo", "text": "Kargo 500 TL üzeri ücretsizdir."}]}
    accepted = client.post("/v1/text-documents", json=docs, headers=key)
    assert accepted.status_code == 202, accepted.text
    return wait_for_job(client, key, accepted.headers["Location"])


def _outcomes(client: TestClient) -> float:
    return sum(_metric(client, outcome) for outcome in ("delivered", "refused", "failed"))


def _callbacks(client: TestClient, before: float) -> CallbackSender:
    """Wait until one more callback than `before` has an outcome: the job shows as ended a moment before
    the runner hands it to the sender."""
    sender: CallbackSender = client.app.state.callbacks  # type: ignore[attr-defined]
    deadline = time.monotonic() + 30
    while _outcomes(client) <= before:
        assert time.monotonic() < deadline, "no callback outcome within 30 s"
        time.sleep(0.05)
    assert sender.wait(30)
    return sender


def _metric(client: TestClient, outcome: str) -> float:
    text = client.get("/metrics").text
    line = next(
        (x for x in text.splitlines() if x.startswith(f'invekto_job_callbacks_total{{outcome="{outcome}"}}')),
        "",
    )
    return float(line.rsplit(" ", 1)[-1]) if line else 0.0


def _announced(
    client: TestClient, statuses: list[int], caplog: pytest.LogCaptureFixture
) -> tuple[list[tuple[dict[str, str], bytes]], str, dict[str, Any]]:
    """Run a job of a tenant whose receiver answers `statuses` in turn; return what it received, the
    tenant's webhook secret and the job, once the callback is delivered or given up."""
    receiver = Receiver(statuses)
    try:
        key, secret = _with_callback(client, "acme", receiver.url)
        with caplog.at_level("INFO", logger="api.callbacks"):
            before = _outcomes(client)
            job = _run_job(client, key)
            _callbacks(client, before)
        return receiver.received, secret, job
    finally:
        receiver.close()


def _signed_by(secret: str, headers: dict[str, str], body: bytes) -> bool:
    return headers["X-Invekto-Signature"] == f"v1={_hmac(secret, headers['X-Invekto-Timestamp'], body)}"


def test_a_finished_job_is_announced_once_signed(
    fast_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    received, secret, job = _announced(fast_client, [], caplog)
    assert len(received) == 1
    headers, body = received[0]
    assert _signed_by(secret, headers, body)
    assert abs(int(headers["X-Invekto-Timestamp"]) - time.time()) < 60
    event = json.loads(body)
    assert event["event"] == "job.finished" and event["tenant_id"] == "acme"
    assert event["job"]["id"] == job["id"] and event["job"]["status"] == "succeeded"
    assert {"kind", "files_total", "files_done", "files_failed", "chunks_written", "finished_at"} <= set(
        event["job"]
    )
    assert event["job"]["chunks_written"] >= 1 and event["job"]["finished_at"]
    assert f"job {job['id']} callback delivered after 1 attempt(s): HTTP 200" in caplog.text
    assert secret not in caplog.text
    assert _metric(fast_client, "delivered") == 1


def test_a_failing_receiver_gets_the_callback_on_the_third_attempt(
    fast_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    received, secret, job = _announced(fast_client, [503, 500, 200], caplog)
    assert len(received) == 3
    assert all(_signed_by(secret, headers, body) for headers, body in received)  # each attempt signed anew
    assert f"job {job['id']} callback delivered after 3 attempt(s)" in caplog.text


def test_a_4xx_is_not_retried_and_the_outcome_is_logged(
    fast_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    received, secret, job = _announced(fast_client, [400, 200], caplog)
    assert len(received) == 1
    assert f"job {job['id']} callback refused after 1 attempt(s): HTTP 400" in caplog.text
    assert secret not in caplog.text
    assert _metric(fast_client, "refused") == 1


def test_retries_stop_after_the_last_delay_and_429_is_retried(
    fast_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    received, _, job = _announced(fast_client, [429, 503, 503, 503, 503, 200], caplog)
    assert len(received) == 5  # four delays: five attempts, then it gives up
    assert f"job {job['id']} callback failed after 5 attempt(s): HTTP 503" in caplog.text
    assert _metric(fast_client, "failed") == 1


def test_network_errors_are_retried_with_the_injected_delays() -> None:
    """The sender alone, over httpx.MockTransport: a refused connection twice, then an answer."""
    from ingestion.registry import Registry

    calls: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) < 3:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(204)

    sender = CallbackSender(
        Registry("sqlite://"), retry_delays=(0.01, 0.01, 0.01), transport=httpx.MockTransport(handle)
    )
    attempts, outcome, detail = sender._attempts("https://crm.example.com/hook", b"{}", "whsec_x")
    assert (attempts, outcome, detail) == (3, "delivered", "HTTP 204")
    assert all("X-Invekto-Signature" in c.headers for c in calls)


def test_a_callback_url_must_be_https_except_on_this_machine(client: TestClient) -> None:
    new_tenant(client, "acme")
    for url in ("http://example.com/hook", "ftp://example.com/hook", "crm.example.com/hook"):
        refused = client.patch(
            "/v1/admin/tenants/acme", json={"settings": {"callback_url": url}}, headers=ADMIN
        )
        assert refused.status_code == 422, (url, refused.text)
        assert "https" in refused.json()["detail"]
    created = client.post(
        "/v1/admin/tenants",
        json={"id": "beta", "name": "Beta", "settings": {"callback_url": "http://example.com/x"}},
        headers=ADMIN,
    )
    assert created.status_code == 422
    for url in ("https://crm.example.com/hook", "http://localhost:8080/x", "http://127.0.0.1:9/x"):
        ok = client.patch("/v1/admin/tenants/acme", json={"settings": {"callback_url": url}}, headers=ADMIN)
        assert ok.status_code == 200, (url, ok.text)
    reset = client.patch("/v1/admin/tenants/acme", json={"settings": {"callback_url": None}}, headers=ADMIN)
    assert reset.json()["settings"]["callback_url"] is None
