"""Assist over HTTP: suggestions with citations, resolve (JSON and server-sent events), feedback, metrics."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from tests.test_api_env import (
    ADMIN,
    FIXTURES,
    ON_BOTH_DATABASES,
    customer_asks,
    ingest,
    new_tenant,
    wait_for_job,
)

pytest_plugins = ["tests.test_api_env"]  # the api_context and client fixtures
pytestmark = ON_BOTH_DATABASES  # SQLite and PostgreSQL


@pytest.fixture
def shop(client: TestClient) -> dict[str, str]:
    headers = new_tenant(client, "lale")
    ingest(client, headers, FIXTURES / "kargo.md", FIXTURES / "iade.txt")
    faq = client.post(
        "/v1/faq", files={"file": ("sss.csv", (FIXTURES / "sss.csv").read_bytes())}, headers=headers
    )
    wait_for_job(client, headers, faq.headers["Location"])
    return headers


@pytest.fixture
def shop_auto(client: TestClient, shop: dict[str, str]) -> dict[str, str]:
    """The shop with a threshold its admin set by hand (a few documents cannot certify a precision target)."""
    patched = client.patch(
        "/v1/admin/tenants/lale",
        json={"settings": {"resolve_thresholds": {"auto_threshold": 0.3}}},
        headers=ADMIN,
    )
    assert patched.status_code == 200, patched.text
    return shop


def test_the_policy_says_suggest_only_until_the_target_is_certified(
    client: TestClient, shop: dict[str, str]
) -> None:
    policy = client.get("/v1/assist/policy", headers=shop).json()
    assert policy["mode"] == "suggest_only" and policy["threshold"] is None
    assert policy["precision_target"] == 0.98 and policy["evidence"]["self_test"] > 0
    assert "yalnızca öneri" in policy["note"]
    resolved = client.post(
        "/v1/assist/resolve", json=customer_asks("Ürünü kaç gün içinde iade edebilirim?"), headers=shop
    ).json()
    assert resolved["decision"] == "handoff" and resolved["reason"] == "low_confidence"
    assert "yeterli kanıt yok" in resolved["summary"]
    # Suggestions still reach the agent.
    suggested = client.post(
        "/v1/assist/suggest", json=customer_asks("Ürünü kaç gün içinde iade edebilirim?"), headers=shop
    ).json()
    assert suggested["suggestions"] and suggested["suggestions"][0]["citations"][0]["doc_id"] == "iade.txt"


def _events(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_suggest_returns_cited_replies_from_the_tenants_knowledge(
    client: TestClient, shop: dict[str, str]
) -> None:
    response = client.post(
        "/v1/assist/suggest", json=customer_asks("Hediye paketi yapıyor musunuz?"), headers=shop
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mode"] == "extractive" and body["language"] == "tr"
    best = body["suggestions"][0]
    assert "hediye paketi" in best["text"].lower() and best["id"]
    assert best["citations"][0]["doc_id"] == "faq:sss.csv"


def test_resolve_answers_or_hands_off_with_a_reason(client: TestClient, shop_auto: dict[str, str]) -> None:
    shop = shop_auto
    answered = client.post(
        "/v1/assist/resolve", json=customer_asks("Ürünü kaç gün içinde iade edebilirim?"), headers=shop
    ).json()
    assert answered["decision"] == "answer" and "30 gün" in answered["text"]
    assert answered["citations"][0]["doc_id"] == "iade.txt"
    human = client.post(
        "/v1/assist/resolve", json=customer_asks("Bir temsilciyle görüşmek istiyorum lütfen"), headers=shop
    ).json()
    assert (
        human["decision"] == "handoff" and human["reason"] == "customer_requested_human" and human["summary"]
    )


@pytest.mark.parametrize("how", ["query", "accept"])
def test_resolve_streams_server_sent_events_when_asked(
    client: TestClient, shop_auto: dict[str, str], how: str
) -> None:
    shop = shop_auto
    body = customer_asks("Ürünü kaç gün içinde iade edebilirim?")
    if how == "query":
        response = client.post("/v1/assist/resolve", params={"stream": "true"}, json=body, headers=shop)
    else:
        response = client.post(
            "/v1/assist/resolve", json=body, headers={**shop, "Accept": "text/event-stream"}
        )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = _events(response.text)
    assert [name for name, _ in events] == ["started", "decision", "done"]
    assert events[0][1] == {"conversation_id": "c-1"}
    assert events[1][1]["decision"] == "answer" and "30 gün" in events[1][1]["text"]
    assert events[2][1]["latency_ms"] > 0


def test_an_accepted_suggestion_becomes_knowledge_and_unknown_ones_are_404(
    client: TestClient, shop: dict[str, str]
) -> None:
    suggestion = client.post(
        "/v1/assist/suggest", json=customer_asks("Kargo ücreti ne kadar?"), headers=shop
    ).json()["suggestions"][0]
    edited = client.post(
        "/v1/feedback",
        json={
            "suggestion_id": suggestion["id"],
            "action": "edited",
            "final_text": "750 TL üzeri kargo ücretsiz.",
        },
        headers=shop,
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["action"] == "edited" and edited.json()["learned_doc_id"]
    learned = client.get(f"/v1/documents/{edited.json()['learned_doc_id']}", headers=shop)
    assert learned.status_code == 200 and learned.json()["source"] == "chat"
    missing = client.post("/v1/feedback", json={"suggestion_id": "yok", "action": "accepted"}, headers=shop)
    assert missing.status_code == 404 and missing.json()["title"] == "Suggestion not found"
    no_text = client.post(
        "/v1/feedback", json={"suggestion_id": suggestion["id"], "action": "edited"}, headers=shop
    )
    assert no_text.status_code == 422 and "final text" in no_text.json()["detail"]


def test_metrics_count_requests_by_route_template_strategies_handoffs_and_ingestion(
    client: TestClient, shop: dict[str, str]
) -> None:
    client.post("/v1/assist/suggest", json=customer_asks("Hediye paketi yapıyor musunuz?"), headers=shop)
    client.post("/v1/assist/resolve", json=customer_asks("Bir temsilciyle görüşmek istiyorum"), headers=shop)
    client.get("/v1/documents/kargo.md", headers=shop)
    client.get("/v1/documents/iade.txt", headers=shop)
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert (
        'invekto_http_requests_total{method="GET",route="/v1/documents/{doc_id:path}",status="200"} 2.0'
        in text
    )
    assert "kargo.md" not in text  # raw paths never become labels
    assert 'invekto_assist_suggest_total{strategy="extractive"} 1.0' in text
    assert 'invekto_assist_resolve_total{decision="handoff",reason="customer_requested_human"} 1.0' in text
    assert 'invekto_ingestion_files_total{kind="files",status="indexed"} 2.0' in text
    assert 'invekto_ingestion_files_total{kind="faq",status="indexed"} 1.0' in text
    assert 'invekto_ingestion_jobs{state="running"} 0.0' in text
    assert "invekto_http_request_duration_seconds_bucket" in text and "process_resident_memory_bytes" in text
