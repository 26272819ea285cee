"""KVKK: no raw personal data on disk, in ids or logs, and erasure that leaves nothing of the person behind.

A tenant's data carries known raw values (a TCKN in a file name, an e-mail in a text document's id and
title, a WhatsApp conversation id that is the customer's number, and the same values in the text). After
ingestion, suggestions, feedback and each erasure, every file of the data dir is read byte by byte for
them: none may be found.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from uvicorn.logging import AccessFormatter

from api.app import create_app
from api.context import ServiceContext
from assist.records import AssistRecords
from ingestion.erasure import subject_kind
from ingestion.pseudonym import IdGuard, install_log_redaction, load_id_secret
from retrieval.edge_store import current_shard_dir
from retrieval.embedders import Embedder
from tests.test_api_env import ADMIN, UNLIMITED, new_tenant, open_context, upload_files, wait_for_job

TCKN = "28609139020"
PHONE = "905326345416"
PHONE_SPACED = "0532 634 54 16"
EMAIL = "ahmet.yilmaz7@ornekmail.com.tr"
OTHER_PHONE = "905441112233"
OTHER_EMAIL = "ayse.kaya@ornek.com.tr"
RAW = [TCKN, PHONE[2:], PHONE_SPACED, EMAIL, OTHER_PHONE[2:], OTHER_EMAIL, "ayse.kaya%40ornek"]

REPLIES = [
    (
        "Kargonuz yarın teslim edilecek, takip numarası SMS ile gelecek.",
        "İade için 14 gün içinde kargo ile gönderebilirsiniz.",
    ),
    (
        "Paketiniz depodan çıktı; kurye öğleden sonra kapınızda olur.",
        "Mağazalarımıza faturayla gelip ürünü değiştirebilirsiniz.",
    ),
]
FILE_NAME = f"musteri-{TCKN}.txt"
TEXT_ID = f"not-{EMAIL}"
CONVERSATION = f"wa-{PHONE}"
OTHER_CONVERSATION = f"wa-{OTHER_PHONE}"


def raw_hits(data_dir: Path) -> dict[str, list[str]]:
    """Return, per raw value, the files of `data_dir` whose bytes contain it (utf-8)."""
    found: dict[str, list[str]] = {}
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for value in RAW:
            if value.encode() in data:
                found.setdefault(value, []).append(str(path.relative_to(data_dir)))
    return found


@pytest.fixture
def service(tmp_path: Path, use_embedder: Embedder) -> Iterator[tuple[TestClient, ServiceContext, Path]]:
    data_dir = tmp_path / "data"
    ctx = open_context(data_dir, use_embedder)
    # What an operator keeps: the service's own log lines and the access log, in the data dir.
    (data_dir / "logs").mkdir(parents=True)
    service_log = logging.FileHandler(data_dir / "logs" / "service.log", encoding="utf-8")
    access_log = logging.FileHandler(data_dir / "logs" / "access.log", encoding="utf-8")
    access_log.setFormatter(AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s'))
    root, access = logging.getLogger(), logging.getLogger("uvicorn.access")
    root.addHandler(service_log)
    access.addHandler(access_log)
    old_level = root.level
    root.setLevel(logging.INFO)
    try:
        with TestClient(create_app(ctx.settings, ctx, rate_limit=UNLIMITED)) as client:
            yield client, ctx, data_dir
    finally:
        root.removeHandler(service_log)
        access.removeHandler(access_log)
        root.setLevel(old_level)
        service_log.close()
        access_log.close()
        ctx.close()


def _conversation(conversation_id: str, phone: str, email: str, replies: tuple[str, str]) -> dict:
    def message(role: str, text: str, minute: int) -> dict:
        return {"role": role, "text": text, "ts": f"2024-05-02T10:{minute:02d}:00+03:00", "agent_id": "a-7"}

    return {
        "conversation_id": conversation_id,
        "channel": "whatsapp",
        "status": "resolved",
        "messages": [
            message("customer", f"Kargom nerede? Numaram {phone}, e-postam {email}", 1),
            message("agent", replies[0], 2),
            message("customer", "İade nasıl yapılır?", 3),
            message("agent", replies[1], 4),
        ],
    }


def _ingest(client: TestClient, headers: dict[str, str]) -> None:
    note = f"Müşteri notu. Telefon {PHONE_SPACED}, e-posta {EMAIL}, TCKN {TCKN}. Kargo adresi değişti."
    job = upload_files(client, headers, (FILE_NAME, note.encode()))
    assert job.status_code == 202, job.text
    assert wait_for_job(client, headers, job.headers["Location"])["status"] == "succeeded"
    text = {"id": TEXT_ID, "title": f"Not {EMAIL}", "text": f"Ahmet Bey {PHONE_SPACED} numarasından aradı."}
    job = client.post("/v1/text-documents", json={"documents": [text]}, headers=headers)
    assert wait_for_job(client, headers, job.headers["Location"])["status"] == "succeeded"
    export = "\n".join(
        json.dumps(c, ensure_ascii=False)
        for c in (
            _conversation(CONVERSATION, PHONE_SPACED, EMAIL, REPLIES[0]),
            _conversation(OTHER_CONVERSATION, OTHER_PHONE, OTHER_EMAIL, REPLIES[1]),
        )
    )
    job = client.post(
        "/v1/conversations/import", files={"file": ("export.jsonl", export.encode())}, headers=headers
    )
    assert job.status_code == 202, job.text
    assert wait_for_job(client, headers, job.headers["Location"])["status"] == "succeeded"


def _assist(client: TestClient, headers: dict[str, str], conversation_id: str) -> None:
    body = {
        "conversation_id": conversation_id,
        "messages": [{"role": "customer", "text": "İade nasıl yapılır?"}],
    }
    suggestion = client.post("/v1/assist/suggest", json=body, headers=headers).json()["suggestions"][0]
    feedback = {"suggestion_id": suggestion["id"], "action": "edited", "final_text": "14 gün içinde iade."}
    assert client.post("/v1/feedback", json=feedback, headers=headers).status_code == 200


def _access_log_line(path: str) -> None:
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", path, "1.1", 200
    )


def test_ids_are_guarded_but_the_api_still_finds_a_document_by_the_id_the_tenant_gave(service) -> None:  # noqa: ANN001
    client, ctx, data_dir = service
    acme = new_tenant(client, "acme")
    _ingest(client, acme)
    _assist(client, acme, CONVERSATION)
    docs = {d["doc_id"]: d for d in client.get("/v1/documents", headers=acme).json()}
    assert not any(value in json.dumps(docs) for value in RAW)
    guarded = ctx.registry.ids.id(FILE_NAME)
    assert guarded.startswith("musteri-[TCKN].txt~") and guarded in docs
    assert docs[ctx.registry.ids.id(TEXT_ID)]["title"] == "Not [EPOSTA]"
    for asked in (FILE_NAME, guarded):  # the raw id the tenant gave, or the stored one it got back
        detail = client.get(f"/v1/documents/{asked}", params={"include_chunks": True}, headers=acme)
        assert detail.status_code == 200 and detail.json()["doc_id"] == guarded
        assert detail.json()["chunks"] and "[TCKN]" in detail.json()["chunks"][0]["text"]
    _access_log_line(f"/v1/documents/{FILE_NAME}")
    _access_log_line("/v1/documents/not-ayse.kaya%40ornek.com.tr")
    ctx.index.compact()  # the engine's files as they are at rest
    assert raw_hits(data_dir) == {}


def test_each_erasure_leaves_no_raw_value_in_any_file_of_the_data_dir(service) -> None:  # noqa: ANN001
    client, ctx, data_dir = service
    acme, other = new_tenant(client, "acme"), new_tenant(client, "globex")
    for headers in (acme, other):
        _ingest(client, headers)
    _assist(client, acme, CONVERSATION)
    _assist(client, acme, OTHER_CONVERSATION)
    assert raw_hits(data_dir) == {}
    ids = ctx.registry.ids

    erased = client.delete(f"/v1/erasure/documents/{FILE_NAME}", headers=acme)
    assert erased.status_code == 200 and erased.json()["documents"] == [ids.id(FILE_NAME)]
    assert client.get(f"/v1/documents/{FILE_NAME}", headers=acme).status_code == 404  # no tombstone
    assert raw_hits(data_dir) == {}

    erased = client.delete(f"/v1/erasure/conversations/{CONVERSATION}", headers=acme)
    assert erased.status_code == 200, erased.text
    body = erased.json()
    assert ids.id(f"chat:{CONVERSATION}") in body["documents"] and body["suggestions"] >= 1
    assert AssistRecords(ctx.registry).list_audit("acme") and all(
        a.conversation_id != ids.id(CONVERSATION) for a in AssistRecords(ctx.registry).list_audit("acme")
    )
    assert client.delete("/v1/erasure/conversations/yok-1", headers=acme).status_code == 404

    # The other customer: by e-mail, through the chat they wrote it in and their conversation's audit.
    erased = client.post("/v1/erasure/customer", json={"email": OTHER_EMAIL.upper()}, headers=acme)
    assert erased.status_code == 200, erased.text
    assert ids.id(f"chat:{OTHER_CONVERSATION}") in erased.json()["documents"]
    assert ids.id(OTHER_CONVERSATION) in erased.json()["conversations"]
    assert not AssistRecords(ctx.registry).list_audit("acme")
    # By phone: the text document that named the customer in its id goes too.
    erased = client.post(
        "/v1/erasure/customer", json={"email": EMAIL, "phone": "+90 532 634 54 16"}, headers=acme
    )
    assert ids.id(TEXT_ID) in erased.json()["documents"]
    assert (
        client.get("/v1/documents", headers=acme).json() == []
    )  # learned replies went with their conversations
    assert raw_hits(data_dir) == {}

    # The other tenant is untouched until it goes as a whole.
    assert len(client.get("/v1/documents", headers=other).json()) == 4
    assert client.delete("/v1/admin/tenants/globex", headers=ADMIN).status_code == 204
    assert ctx.index.count("globex") == 0 and not (data_dir / "uploads" / "globex").exists()
    # The compacted shard is a generation of its own; the pointer names it, nothing else is left.
    current = current_shard_dir(data_dir / "index").name
    assert sorted(p.name for p in (data_dir / "index").iterdir()) == sorted(
        [".lock", "index.json", current, "shard.current"]
    )
    assert raw_hits(data_dir) == {}


def test_customer_erasure_names_what_it_needs() -> None:
    assert subject_kind("Ahmet@Ornek.com") == "EPOSTA"
    assert subject_kind("+90 532 634 54 16") == "TELEFON"
    assert subject_kind(TCKN) == "TCKN"
    assert subject_kind("TR33 0006 1005 1978 6457 8413 26") == "IBAN"
    with pytest.raises(ValueError, match="not a phone number"):
        subject_kind("12")


def test_a_guarded_id_is_stable_distinct_and_guarded_again_unchanged(tmp_path: Path) -> None:
    secret = load_id_secret(tmp_path)
    assert load_id_secret(tmp_path) == secret and oct((tmp_path / "id_secret").stat().st_mode)[-3:] == "600"
    ids, other = IdGuard(secret), IdGuard(b"another deployment's secret")
    assert ids.id("kargo.md") == "kargo.md"  # nothing personal: kept as it is
    one, two = ids.id(f"chat:wa-{PHONE}"), ids.id(f"chat:wa-{OTHER_PHONE}")
    assert one.startswith("chat:wa-[TELEFON]~") and one != two and PHONE not in one
    assert ids.id(one) == one and other.id(f"chat:wa-{PHONE}") != one
    assert ids.subject_key("TELEFON", "+90 532 634 54 16") == ids.subject_key("TELEFON", "05326345416")


def test_log_lines_lose_personal_data_but_keep_their_shape(caplog: pytest.LogCaptureFixture) -> None:
    install_log_redaction()
    formatter = AccessFormatter('"%(request_line)s" %(status_code)s')
    with caplog.at_level(logging.INFO):
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d', "1.2.3.4:5", "GET", f"/v1/documents/{FILE_NAME}", "1.1", 200
        )
        logging.getLogger("ingestion.pipeline").warning(
            "ingestion of %s failed: %s", FILE_NAME, f"{EMAIL}: bad"
        )
        try:
            raise ValueError(f"uploads/acme/1/files/{FILE_NAME}: bozuk")
        except ValueError:
            logging.getLogger("ingestion.jobs").exception("ingestion job %s stopped", "1")
    access, error, crash = caplog.records[-3:]
    assert formatter.format(access) == '"GET /v1/documents/musteri-[TCKN].txt HTTP/1.1" 200 OK'
    assert error.getMessage() == "ingestion of musteri-[TCKN].txt failed: [EPOSTA]: bad"
    traceback = logging.Formatter().format(crash)
    assert "ValueError: uploads/acme/1/files/musteri-[TCKN].txt: bozuk" in traceback and TCKN not in traceback


def test_the_cli_erases_a_customer_and_a_document_by_their_raw_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from api.cli import app

    data_dir = tmp_path / "data"
    monkeypatch.setenv("INVEKTO_DATA_DIR", str(data_dir))
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / FILE_NAME).write_text(f"Müşteri {TCKN} kargo adresini değiştirdi.", encoding="utf-8")
    (folder / "arama.txt").write_text(
        f"Ayşe Hanım {OTHER_EMAIL} adresinden yazdı, iade istiyor.", encoding="utf-8"
    )
    runner = CliRunner()
    ingested = runner.invoke(app, ["ingest", "files", "--tenant", "acme", str(folder)])
    assert ingested.exit_code == 0, ingested.output
    assert raw_hits(data_dir) == {}
    erased = runner.invoke(app, ["ingest", "erase", "--tenant", "acme", "--document", FILE_NAME])
    assert erased.exit_code == 0, erased.output
    assert json.loads(erased.output)["documents"][0].startswith("musteri-[TCKN].txt~")
    # arama.txt only mentioned the customer: its text is already redacted, so it stays.
    erased = runner.invoke(app, ["ingest", "erase", "--tenant", "acme", "--email", OTHER_EMAIL])
    assert erased.exit_code == 0 and json.loads(erased.output)["documents"] == []
    listed = runner.invoke(app, ["ingest", "list", "--tenant", "acme"])
    assert "arama.txt" in listed.output and "musteri" not in listed.output
    assert runner.invoke(app, ["ingest", "erase", "--tenant", "acme"]).exit_code == 2
    assert raw_hits(data_dir) == {}
    assert runner.invoke(app, ["tenant", "delete", "acme"]).exit_code == 2  # not without --yes
    deleted = runner.invoke(app, ["tenant", "delete", "acme", "--yes"])
    assert deleted.exit_code == 0, deleted.output
    assert runner.invoke(app, ["tenant", "delete", "acme", "--yes"]).exit_code == 1
    assert "Ayşe Hanım" not in "".join(
        p.read_bytes().decode("utf-8", "replace") for p in data_dir.rglob("*") if p.is_file()
    )


def test_a_document_stored_before_ids_were_guarded_is_still_found_and_forgotten() -> None:
    from ingestion.registry import Registry

    with Registry("sqlite://") as registry:
        registry.create_tenant("acme", "Acme")
        registry._begin_document(
            "acme", FILE_NAME, "doc", FILE_NAME, "eski", "h1"
        )  # as an older release stored it
        assert registry.get_document("acme", FILE_NAME).doc_id == FILE_NAME
        assert registry.forget_document("acme", FILE_NAME)
        assert registry.get_document("acme", FILE_NAME) is None


def test_ids_an_older_release_stored_raw_are_guarded_in_place(
    service, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    from assist.learning import learned_doc_id
    from ingestion.erasure import Eraser

    client, ctx, data_dir = service
    acme = new_tenant(client, "acme")
    with monkeypatch.context() as older_release:  # ids and titles stored as they came
        older_release.setattr(IdGuard, "id", lambda self, raw: raw)
        older_release.setattr(IdGuard, "text", staticmethod(lambda raw: raw))
        _ingest(client, acme)
        _assist(client, acme, CONVERSATION)
    assert ctx.registry.get_document("acme", FILE_NAME).doc_id == FILE_NAME
    assert raw_hits(data_dir)  # the raw ids are on disk
    eraser = Eraser(ctx.ingestor, data_dir / "uploads", learned_doc_id)
    moved, changed = eraser.guard_stored_ids()
    assert moved >= 4 and changed >= 4 and eraser.guard_stored_ids() == (0, 0)
    for raw in (FILE_NAME, TEXT_ID, f"chat:{CONVERSATION}"):
        detail = client.get(f"/v1/documents/{raw}", params={"include_chunks": True}, headers=acme).json()
        assert detail["doc_id"] == ctx.registry.ids.id(raw) != raw and detail["chunks"]
    assert client.get("/v1/documents", headers=acme).json()[0]["title"] != f"Not {EMAIL}"
    hits = client.post("/v1/search", json={"query": "iade nasıl yapılır"}, headers=acme).json()["hits"]
    assert hits and not any(value in json.dumps(hits) for value in RAW)
    ctx.index.compact()
    assert {v: f for v, f in raw_hits(data_dir).items() if not all(x.startswith("logs/") for x in f)} == {}
