"""Past conversations over HTTP: bulk import of an export and the "conversation closed" webhook."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from tests.test_api_env import (
    FIXTURES,
    ON_BOTH_DATABASES,
    new_tenant,
    wait_for_job,
)

pytest_plugins = ["tests.test_api_env"]  # the api_context and client fixtures
pytestmark = ON_BOTH_DATABASES  # SQLite and PostgreSQL


def _search_chats(client: TestClient, headers: dict[str, str], query: str) -> list[dict]:
    response = client.post("/v1/search", json={"query": query, "sources": ["chat"]}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["hits"]


def test_an_export_is_imported_and_its_unreadable_lines_are_reported(client: TestClient) -> None:
    acme = new_tenant(client, "acme")
    export = (FIXTURES / "sohbetler.jsonl").read_bytes()
    response = client.post(
        "/v1/conversations/import", files={"file": ("sohbetler.jsonl", export)}, headers=acme
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["kind"] == "chats" and accepted["files_total"] == 2  # the two resolved conversations
    assert [p for p in accepted["problems"] if p.startswith("line 3: not valid JSON")]
    job = wait_for_job(client, acme, response.headers["Location"])
    assert job["status"] == "succeeded"
    assert sorted(f["doc_id"] for f in job["files"]) == ["chat:c-501", "chat:c-503"]
    hit = _search_chats(client, acme, "fatura nasıl indirilir")[0]
    assert hit["doc_id"] == "chat:c-501" and "Faturalarım" in hit["text"]


def test_deeply_nested_and_lone_surrogate_lines_are_reported_and_the_rest_imported(
    client: TestClient,
) -> None:
    acme = new_tenant(client, "acme")
    lines = (FIXTURES / "sohbetler.jsonl").read_text(encoding="utf-8").splitlines()
    surrogate_reply = lines[0].replace("c-501", "c-504").replace("Faturanızı", "Fatura\\udc80 ekranından")
    assert "\\udc80" in surrogate_reply
    export = "\n".join([*lines, "[" * 10_000 + "]" * 10_000, '"\\udc80"', surrogate_reply]) + "\n"
    response = client.post(
        "/v1/conversations/import", files={"file": ("sohbetler.jsonl", export.encode())}, headers=acme
    )
    assert response.status_code == 202, response.text
    problems = response.json()["problems"]
    assert "line 5: JSON nested too deeply to read" in problems
    assert [p for p in problems if p.startswith("line 6: expected a conversation object")]
    assert [
        p for p in problems if p.startswith("line 7: conversation 'c-504': holds an escaped lone surrogate")
    ]
    job = wait_for_job(client, acme, response.headers["Location"])
    assert job["status"] == "succeeded"
    assert sorted(f["doc_id"] for f in job["files"]) == ["chat:c-501", "chat:c-503"]


def test_an_export_without_a_resolved_question_and_answer_is_refused(client: TestClient) -> None:
    acme = new_tenant(client, "acme")
    only_open = (FIXTURES / "sohbetler.jsonl").read_text(encoding="utf-8").splitlines()[1]
    response = client.post(
        "/v1/conversations/import", files={"file": ("acik.jsonl", only_open.encode())}, headers=acme
    )
    assert response.status_code == 422
    assert response.json()["title"] == "Nothing to index"
    broken = client.post("/v1/conversations/import", files={"file": ("x.json", b"{not json")}, headers=acme)
    assert broken.status_code == 422 and broken.json()["title"] == "Unreadable conversation export"


def test_the_webhook_indexes_a_resolved_conversation_without_the_customers_phone(client: TestClient) -> None:
    acme = new_tenant(client, "acme")
    conversation = json.loads((FIXTURES / "kapanan_sohbet.json").read_text(encoding="utf-8"))
    response = client.post("/v1/conversations/closed", json=conversation, headers=acme)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["indexed"] is True and body["conversation_id"] == "c-900"
    assert response.headers["Location"] == body["job"]["location"]
    assert wait_for_job(client, acme, body["job"]["location"])["status"] == "succeeded"
    hit = _search_chats(client, acme, "garanti süresi")[0]
    assert hit["doc_id"] == "chat:c-900" and "LALEGARANTİ" in hit["text"]
    assert "532" not in json.dumps(hit, ensure_ascii=False)


def test_the_webhook_acknowledges_an_open_conversation_and_indexes_nothing(client: TestClient) -> None:
    acme = new_tenant(client, "acme")
    conversation = {
        **json.loads((FIXTURES / "kapanan_sohbet.json").read_text(encoding="utf-8")),
        "status": "open",
    }
    response = client.post("/v1/conversations/closed", json=conversation, headers=acme)
    assert response.status_code == 200
    assert response.json() == {
        "conversation_id": "c-900",
        "indexed": False,
        "note": "The conversation is open: only resolved ones are indexed.",
        "job": None,
    }
    greeting_only = {**conversation, "status": "resolved", "messages": conversation["messages"][:1]}
    response = client.post("/v1/conversations/closed", json=greeting_only, headers=acme)
    assert response.status_code == 200 and response.json()["indexed"] is False
    assert client.get("/v1/jobs", headers=acme).json() == []


def test_the_webhook_names_the_invalid_field(client: TestClient) -> None:
    acme = new_tenant(client, "acme")
    conversation = json.loads((FIXTURES / "kapanan_sohbet.json").read_text(encoding="utf-8"))
    conversation["channel"] = "fax"
    response = client.post("/v1/conversations/closed", json=conversation, headers=acme)
    assert response.status_code == 422
    assert response.json()["errors"][0]["location"] == "body.channel"
    # An id longer than an assist request may name (PostgreSQL would refuse its document id, SQLite not).
    conversation["channel"], conversation["conversation_id"] = "whatsapp", "c" * 2000
    response = client.post("/v1/conversations/closed", json=conversation, headers=acme)
    assert response.status_code == 422
    assert response.json()["errors"][0]["location"] == "body.conversation_id"
