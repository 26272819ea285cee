"""Registry tests on a real SQLite file, and the same behaviour on an in-memory database and on PostgreSQL."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from assist.records import AssistRecords
from ingestion.registry import Registry, TenantExistsError
from ingestion.registry_models import SCHEMA_VERSION
from retrieval.settings import Settings
from tests.postgres_support import empty_postgres, needs_postgres


def _file_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'data' / 'registry.sqlite3'}"


@pytest.fixture(params=["file", "memory", pytest.param("postgresql", marks=needs_postgres)])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    urls = {"file": lambda: _file_url(tmp_path), "memory": lambda: "sqlite://", "postgresql": empty_postgres}
    url = urls[request.param]()
    with Registry(url) as reg:
        reg.create_tenant("acme", "Acme Kargo")
        reg.create_tenant("globex", "Globex Market")
        yield reg


# --- Tenants ---


@pytest.mark.parametrize("bad", ["a", "Acme", "acme corp", "ac/me", "şirket", "x" * 65, ""])
def test_tenant_id_must_be_a_slug(registry: Registry, bad: str) -> None:
    with pytest.raises(ValueError, match="2-64 characters"):
        registry.create_tenant(bad, "Bad")
    assert registry.get_tenant(bad) is None


def test_tenant_slugs_with_digits_dashes_underscores_are_accepted(registry: Registry) -> None:
    for good in ("ab", "acme-tr", "shop_42", "x" * 64):
        assert registry.create_tenant(good, "Shop").id == good
    assert {t.id for t in registry.list_tenants()} >= {"ab", "acme-tr", "shop_42", "x" * 64}


def test_duplicate_tenant_is_refused_and_the_original_kept(registry: Registry) -> None:
    with pytest.raises(TenantExistsError, match="already exists"):
        registry.create_tenant("acme", "Someone Else")
    tenant = registry.get_tenant("acme")
    assert tenant is not None and tenant.name == "Acme Kargo"


def test_tenant_settings_default_patch_and_validate(registry: Registry) -> None:
    tenant = registry.get_tenant("acme")
    assert tenant is not None
    assert (tenant.settings.tone, tenant.settings.language) == ("siz", "tr")

    patched = registry.update_tenant_settings(
        "acme",
        {
            "tone": "sen",
            "resolve_thresholds": {"min_confidence": 0.8},
            "pii_patterns": [{"name": "MUSTERI_NO", "regex": r"MŞ-\d{6}"}],
        },
    )
    assert patched.settings.tone == "sen"
    assert patched.settings.resolve_thresholds == {"min_confidence": 0.8}
    assert [p.name for p in patched.settings.extra_patterns()] == ["MUSTERI_NO"]

    domains = registry.update_tenant_settings(
        "acme", {"own_domains": ["https://www.Acme.com.tr/iletisim", "acme.com.tr"]}
    )
    assert domains.settings.own_domains == ("acme.com.tr",)

    for bad in (
        {"tone": "hey"},
        {"pii_patterns": [{"name": "X", "regex": "("}]},
        {"colour": "red"},
        {"own_domains": ["acme kargo"]},
    ):
        with pytest.raises(ValueError):
            registry.update_tenant_settings("acme", bad)
    reset = registry.update_tenant_settings("acme", {"tone": None})
    assert reset.settings.tone == "siz" and reset.settings.resolve_thresholds == {"min_confidence": 0.8}
    with pytest.raises(LookupError):
        registry.update_tenant_settings("nobody", {"tone": "sen"})


# --- API keys ---


def test_api_key_authenticates_its_tenant_only_until_revoked(registry: Registry) -> None:
    info, key = registry.create_api_key("acme", "crm-backend")
    tenant = registry.authenticate(key)
    assert tenant is not None and tenant.id == "acme"
    assert key.startswith("ik_acme_") and info.key_prefix in key and info.key_prefix != key

    wrong_last_char = key[:-1] + ("A" if key[-1] != "A" else "B")
    for wrong in (wrong_last_char, key + "x", "", "Bearer " + key, info.key_prefix):
        assert registry.authenticate(wrong) is None

    assert registry.revoke_api_key(info.id, tenant_id="globex") is False  # not globex's key
    assert registry.authenticate(key) is not None
    assert registry.revoke_api_key(info.id) is True
    assert registry.authenticate(key) is None
    [listed] = registry.list_api_keys("acme")
    assert listed.id == info.id and listed.revoked


def test_api_key_plaintext_is_never_written_to_disk(tmp_path: Path) -> None:
    url = _file_url(tmp_path)
    reg = Registry(url)
    reg.create_tenant("acme", "Acme")
    _, key = reg.create_api_key("acme", "crm-backend")
    secret = key.removeprefix("ik_acme_")
    reg.close()

    on_disk = b"".join(p.read_bytes() for p in (tmp_path / "data").iterdir())
    assert hashlib.sha256(key.encode()).hexdigest().encode() in on_disk  # we are reading the right bytes
    assert key.encode() not in on_disk and secret.encode() not in on_disk
    with sqlite3.connect(tmp_path / "data" / "registry.sqlite3") as conn:
        row = conn.execute("SELECT key_prefix, key_hash FROM api_keys").fetchone()
    assert row[1] == hashlib.sha256(key.encode()).hexdigest() and secret not in row[0] + row[1]


# --- Documents ---


def test_document_lifecycle_index_skip_reindex(registry: Registry) -> None:
    first = registry.begin_document("acme", "iade.pdf", "doc", "s3://acme/iade.pdf", "İade", "h1")
    assert (first.action, first.version, first.indexed_version) == ("index", 1, None)
    assert registry.get_document("acme", "iade.pdf").status == "pending"  # type: ignore[union-attr]
    registry.mark_indexed("acme", "iade.pdf", 1, chunk_count=7)

    same = registry.begin_document("acme", "iade.pdf", "doc", "s3://acme/iade.pdf", "İade", "h1")
    assert (same.action, same.version) == ("skip", 1)

    changed = registry.begin_document("acme", "iade.pdf", "doc", "s3://acme/iade.pdf", "İade", "h2")
    assert (changed.action, changed.version, changed.indexed_version) == ("index", 2, 1)
    doc = registry.mark_indexed("acme", "iade.pdf", 2, chunk_count=9)
    assert (doc.status, doc.version, doc.content_hash, doc.chunk_count) == ("indexed", 2, "h2", 9)
    assert [d.doc_id for d in registry.list_documents("acme", status="indexed", source="doc")] == ["iade.pdf"]
    assert registry.list_documents("acme", source="faq") == []


def test_a_batch_decides_as_one_by_one_would(registry: Registry) -> None:
    # Two tenants set up alike: "acme" decides one document at a time, "globex" in one batch.
    for tenant in ("acme", "globex"):
        registry.begin_document(tenant, "kept.md", "doc", None, "Kept", "h1")
        registry.mark_indexed(tenant, "kept.md", 1, chunk_count=1)
        registry.begin_document(tenant, "changed.md", "doc", None, "Changed", "h1")
        registry.mark_indexed(tenant, "changed.md", 1, chunk_count=1)
    specs = [
        ("kept.md", "doc", None, "Kept", "h1"),  # same content: skipped
        ("changed.md", "doc", None, "Changed", "h2"),  # new content: next version
        ("new.md", "doc", None, "New", "h1"),  # new document
        ("new.md", "doc", None, "New", "h1"),  # the same file twice in one upload
        ("faq:sss-1", "faq", None, None, "h9"),
    ]
    one_by_one = [registry.begin_document("acme", *spec) for spec in specs]  # type: ignore[arg-type]
    batch = registry.begin_documents("globex", specs)  # type: ignore[arg-type]
    assert [(d.action, d.doc_id, d.version, d.indexed_version) for d in batch] == [
        (d.action, d.doc_id, d.version, d.indexed_version) for d in one_by_one
    ]
    assert [d.action for d in batch] == ["skip", "index", "index", "index", "index"]
    assert registry.get_document("globex", "new.md").status == "pending"  # type: ignore[union-attr]
    # An unknown tenant: nothing is written.
    with pytest.raises(LookupError, match="No tenant"):
        registry.begin_documents("nobody", specs[2:3])  # type: ignore[arg-type]
    assert registry.get_document("nobody", "new.md") is None


def test_failed_update_keeps_the_indexed_version(registry: Registry) -> None:
    registry.begin_document("acme", "kargo.md", "doc", None, "Kargo", "h1")
    registry.mark_indexed("acme", "kargo.md", 1, chunk_count=4)
    assert registry.begin_document("acme", "kargo.md", "doc", None, "Kargo", "h2").version == 2

    doc = registry.mark_failed("acme", "kargo.md", "embedder timeout")
    assert (doc.status, doc.version, doc.content_hash, doc.chunk_count) == ("indexed", 1, "h1", 4)
    assert doc.error == "embedder timeout"
    # The old content is still what is live, so it is still skipped; the new one is tried again.
    assert registry.begin_document("acme", "kargo.md", "doc", None, "Kargo", "h1").action == "skip"
    retry = registry.begin_document("acme", "kargo.md", "doc", None, "Kargo", "h2")
    assert (retry.action, retry.version) == ("index", 2)
    assert registry.mark_indexed("acme", "kargo.md", 2, chunk_count=5).error is None


def test_failed_new_document_is_failed_and_retried_at_the_same_version(registry: Registry) -> None:
    registry.begin_document("acme", "bozuk.docx", "doc", None, None, "h1")
    doc = registry.mark_failed("acme", "bozuk.docx", "unreadable file")
    assert (doc.status, doc.error) == ("failed", "unreadable file")
    assert registry.begin_document("acme", "bozuk.docx", "doc", None, None, "h1").version == 1


def test_stale_mark_indexed_is_refused(registry: Registry) -> None:
    registry.begin_document("acme", "a.md", "doc", None, None, "h1")
    registry.begin_document("acme", "a.md", "doc", None, None, "h2")  # a newer upload took over
    with pytest.raises(ValueError, match="version 2"):
        registry.mark_indexed("acme", "a.md", 1, chunk_count=3)


def test_flagged_chunks_belong_to_the_live_version(registry: Registry) -> None:
    registry.begin_document("acme", "sss.csv", "faq", None, None, "h1")
    doc = registry.mark_indexed(
        "acme", "sss.csv", 1, chunk_count=9, flag_reasons={"secret_request": 2, "foreign_link": 1}
    )
    assert (doc.flagged_chunks, doc.flag_reasons) == (3, {"secret_request": 2, "foreign_link": 1})
    # A failed update leaves the old version live, and its flags with it.
    registry.begin_document("acme", "sss.csv", "faq", None, None, "h2")
    assert registry.mark_failed("acme", "sss.csv", "embedder timeout").flagged_chunks == 3
    retry = registry.begin_document("acme", "sss.csv", "faq", None, None, "h3")
    assert registry.mark_indexed("acme", "sss.csv", retry.version, chunk_count=9).flag_reasons == {}
    assert registry.mark_deleted("acme", "sss.csv").flagged_chunks == 0  # type: ignore[union-attr]


def test_deleted_and_forgotten_documents(registry: Registry) -> None:
    registry.begin_document("acme", "eski.md", "faq", None, None, "h1")
    registry.mark_indexed("acme", "eski.md", 1, chunk_count=2)
    doc = registry.mark_deleted("acme", "eski.md")
    assert doc is not None and (doc.status, doc.chunk_count, doc.indexed_version) == ("deleted", 0, None)
    readded = registry.begin_document("acme", "eski.md", "faq", None, None, "h1")
    assert (readded.action, readded.version) == ("index", 2)
    assert registry.forget_document("acme", "eski.md") is True
    assert registry.get_document("acme", "eski.md") is None
    assert registry.mark_deleted("acme", "eski.md") is None


# --- Ingestion jobs ---


def test_idempotency_key_returns_the_same_job_per_tenant(registry: Registry) -> None:
    job = registry.create_job("acme", "files", ["a.pdf", "b.pdf"], idempotency_key="upload-1")
    again = registry.create_job("acme", "files", ["a.pdf", "b.pdf"], idempotency_key="upload-1")
    assert again.id == job.id and len(registry.list_jobs("acme")) == 1
    other = registry.create_job("globex", "files", ["a.pdf"], idempotency_key="upload-1")
    assert other.id != job.id
    assert registry.create_job("acme", "files", ["c.pdf"]).id != job.id  # no key: always a new job


def test_job_counters_and_partial_status(registry: Registry) -> None:
    job = registry.create_job("acme", "files", ["a.pdf", "b.pdf", "c.pdf", "d.pdf"])
    assert (job.status, job.files_total, [f.status for f in job.files]) == ("queued", 4, ["pending"] * 4)
    assert registry.start_job(job.id).status == "running"
    registry.update_job_file(job.id, "a.pdf", "indexed", doc_id="a.pdf", chunks=5)
    registry.update_job_file(job.id, "b.pdf", "skipped", doc_id="b.pdf")
    registry.update_job_file(job.id, "c.pdf", "failed", error="şifreli PDF")
    registry.update_job_file(job.id, "c.pdf", "failed", error="şifreli PDF")  # a repeat does not double count
    registry.update_job_file(job.id, "d.pdf", "failed", error="timeout")
    registry.update_job_file(job.id, "d.pdf", "indexed", doc_id="d.pdf", chunks=3)  # a retry succeeded

    done = registry.finish_job(job.id)
    assert (done.status, done.files_done, done.files_failed, done.chunks_written) == ("partial", 3, 1, 8)
    assert done.finished_at is not None and done.started_at is not None
    assert {f.name: f.error for f in done.files if f.status == "failed"} == {"c.pdf": "şifreli PDF"}
    with pytest.raises(ValueError, match="already finished"):
        registry.update_job_file(job.id, "a.pdf", "failed")


def test_job_final_status_succeeded_or_failed(registry: Registry) -> None:
    ok = registry.create_job("acme", "faq", ["sss.csv"])
    registry.update_job_file(ok.id, "sss.csv", "indexed", chunks=40)
    assert registry.finish_job(ok.id).status == "succeeded"
    bad = registry.create_job("acme", "files", ["x.pdf", "y.pdf"])
    registry.update_job_file(bad.id, "x.pdf", "failed", error="boş dosya")
    finished = registry.finish_job(bad.id)  # y.pdf never ran: it counts as failed too
    assert (finished.status, finished.files_failed) == ("failed", 2)
    assert registry.finish_job(bad.id) == finished
    with pytest.raises(LookupError):
        registry.update_job_file(registry.create_job("acme", "files", ["a.pdf"]).id, "nope.pdf", "indexed")
    with pytest.raises(LookupError):
        registry.start_job("no-such-job")


def test_interrupted_jobs_are_the_unfinished_ones(registry: Registry) -> None:
    running = registry.create_job("acme", "files", ["a.pdf", "b.pdf"])
    registry.start_job(running.id)
    registry.update_job_file(running.id, "a.pdf", "indexed", chunks=2)
    queued = registry.create_job("globex", "chats", ["chats.jsonl"])
    finished = registry.create_job("acme", "quick_replies", [])
    registry.finish_job(finished.id)

    assert [j.id for j in registry.interrupted_jobs()] == [running.id, queued.id]
    recovered = registry.finish_job(running.id, error="worker restarted")
    assert (recovered.status, recovered.files_done, recovered.files_failed) == ("partial", 1, 1)
    assert [j.id for j in registry.interrupted_jobs()] == [queued.id]


def test_concurrent_file_updates_add_up(registry: Registry) -> None:
    names = [f"dosya-{i:02d}.pdf" for i in range(80)]
    job = registry.create_job("acme", "files", names)
    registry.start_job(job.id)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def worker(part: list[str]) -> None:
        try:
            barrier.wait()
            for i, name in enumerate(part):
                if i % 5 == 0:
                    registry.update_job_file(job.id, name, "failed", error="bozuk")
                else:
                    registry.update_job_file(job.id, name, "indexed", doc_id=name, chunks=3)
        except BaseException as err:  # noqa: BLE001 - surfaced by the assert below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(names[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    result = registry.finish_job(job.id)
    assert (result.files_done, result.files_failed, result.chunks_written) == (64, 16, 64 * 3)
    assert result.status == "partial" and all(f.status != "pending" for f in result.files)


def test_concurrent_requests_with_one_idempotency_key_make_one_job(registry: Registry) -> None:
    barrier = threading.Barrier(8)
    ids: list[str] = []

    def submit() -> None:
        barrier.wait()
        ids.append(registry.create_job("acme", "files", ["a.pdf"], idempotency_key="retry-storm").id)

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == 8 and len(set(ids)) == 1


# --- Tenant isolation, suggestions, feedback, audit ---


def test_other_tenants_rows_are_invisible(registry: Registry) -> None:
    job = registry.create_job("acme", "files", ["a.pdf"])
    [suggestion_id] = AssistRecords(registry).record_suggestions(
        "acme", "conv-1", [{"text": "Siparişiniz yola çıktı.", "strategy": "llm", "confidence": 0.9}]
    )
    registry.begin_document("acme", "a.pdf", "doc", None, None, "h1")

    assert registry.get_job("globex", job.id) is None
    assert registry.get_job("acme", job.id) is not None
    assert AssistRecords(registry).get_suggestion("globex", suggestion_id) is None
    with pytest.raises(LookupError):
        AssistRecords(registry).record_feedback("globex", suggestion_id, "accepted")
    assert registry.get_document("globex", "a.pdf") is None
    assert registry.list_documents("globex") == [] and registry.list_jobs("globex") == []


def test_suggestions_and_feedback(registry: Registry) -> None:
    citations = [{"doc_id": "iade.pdf", "chunk_id": "c-3", "score": 0.71}]
    ids = AssistRecords(registry).record_suggestions(
        "acme",
        "conv-7",
        [
            {"text": "İade süresi 14 gündür.", "strategy": "llm", "confidence": 0.82, "citations": citations},
            {"text": "Kargo ücretsizdir.", "strategy": "extractive"},
        ],
    )
    assert len(ids) == 2 and len(set(ids)) == 2
    first = AssistRecords(registry).get_suggestion("acme", ids[0])
    assert first is not None and first.citations == citations and first.conversation_id == "conv-7"

    feedback = AssistRecords(registry).record_feedback(
        "acme", ids[0], "edited", final_text="İade süresi 14 gün."
    )
    assert (feedback.action, feedback.suggestion_id) == ("edited", ids[0])
    with pytest.raises(LookupError):
        AssistRecords(registry).record_feedback("acme", "no-such-id", "accepted")
    with pytest.raises(ValueError):
        AssistRecords(registry).record_feedback("acme", ids[1], "liked")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        AssistRecords(registry).record_suggestions("acme", "conv-7", [{"strategy": "llm"}])


def test_audit_is_listed_newest_first_per_tenant(registry: Registry) -> None:
    for i in range(3):
        AssistRecords(registry).record_audit(
            "acme",
            f"conv-{i}",
            "resolve",
            retrieved_ids=[f"c-{i}"],
            decision="handoff",
            reason="low_confidence",
            provider="extractive",
            confidence=0.3,
            latency_ms=120,
        )
    AssistRecords(registry).record_audit("globex", "conv-x", "suggest", retrieved_ids=[], decision="suggest")
    entries = AssistRecords(registry).list_audit("acme", limit=2)
    assert [e.conversation_id for e in entries] == ["conv-2", "conv-1"]
    assert entries[0].retrieved_ids == ["c-2"] and entries[0].reason == "low_confidence"
    assert [e.tenant_id for e in AssistRecords(registry).list_audit("globex", limit=10)] == ["globex"]


def test_audit_and_its_suggestions_are_stored_together(registry: Registry) -> None:
    audit_id, ids = AssistRecords(registry).record_audit(
        "acme",
        "conv-9",
        "suggest",
        retrieved_ids=["kredi#c-1"],
        decision="suggested",
        provider="extractive",
        suggestions=[{"text": "Faiz oranı %2,5'tir.", "strategy": "extractive", "confidence": 0.7}],
    )
    [entry] = AssistRecords(registry).list_audit("acme", limit=1)
    assert entry.id == audit_id and entry.decision == "suggested"
    [sid] = ids
    stored = AssistRecords(registry).get_suggestion("acme", sid)
    assert stored is not None and stored.text == "Faiz oranı %2,5'tir." and stored.confidence == 0.7

    with pytest.raises(LookupError, match="nobody"):
        AssistRecords(registry).record_audit(
            "nobody",
            "conv-9",
            "suggest",
            retrieved_ids=[],
            decision="suggested",
            suggestions=[{"text": "x", "strategy": "extractive"}],
        )
    with pytest.raises(LookupError, match="nobody"):
        AssistRecords(registry).record_suggestions(
            "nobody", "conv-9", [{"text": "x", "strategy": "extractive"}]
        )
    assert [e.id for e in AssistRecords(registry).list_audit("acme", limit=10)] == [audit_id]


def test_a_conversation_id_full_of_personal_data_still_fits_its_column_once_guarded(
    registry: Registry,
) -> None:
    # 200 characters (the API's limit) of short e-mail addresses, each redacted into a longer placeholder:
    # PostgreSQL refuses a guarded id longer than the column, SQLite would have stored it.
    conversation = ("a@b.co " * 40)[:200]
    [sid] = AssistRecords(registry).record_suggestions(
        "acme", conversation, [{"text": "Merhaba", "strategy": "llm"}]
    )
    AssistRecords(registry).record_audit(
        "acme", conversation, "suggest", retrieved_ids=[], decision="suggest"
    )
    stored = AssistRecords(registry).get_suggestion("acme", sid)
    assert stored is not None and stored.conversation_id == registry.ids.id(conversation)
    assert len(stored.conversation_id) <= 200 and "@" not in stored.conversation_id
    assert registry.ids.id(stored.conversation_id) == stored.conversation_id  # still a fixed point
    assert registry.ids.id(conversation + "x") != stored.conversation_id
    assert registry.erase_conversation("acme", conversation) == ([sid], 1)


def test_ids_are_listed_in_the_same_order_on_every_database(registry: Registry) -> None:
    # By their characters, as SQLite compares them; a PostgreSQL server with a linguistic default collation
    # (en_US in the postgres image) would put "a-c" before "A." before "ab".
    names = ["b.pdf", "A.pdf", "a-c.pdf", "ab.pdf", "Çay.pdf", "z.pdf", "a_c.pdf"]
    for name in names:
        registry.begin_document("acme", name, "doc", None, None, "h1")
    assert [d.doc_id for d in registry.list_documents("acme")] == sorted(names)
    for tenant in ("ab-x", "ab_x", "abx", "ab0"):
        registry.create_tenant(tenant, tenant)
    assert [t.id for t in registry.list_tenants()] == sorted(["acme", "globex", "ab-x", "ab_x", "abx", "ab0"])


def test_nul_characters_are_stored_as_replacement_characters_and_still_found(registry: Registry) -> None:
    # PostgreSQL text cannot hold NUL (SQLite can): a request carrying one must not end in a 500 there.
    registry.begin_document("acme", "a\x00.pdf", "doc", None, "Başlık\x00", "h1")
    doc = registry.mark_indexed("acme", "a\x00.pdf", 1, chunk_count=1)
    assert (doc.doc_id, doc.title) == ("a\ufffd.pdf", "Başlık\ufffd")
    assert registry.get_document("acme", "a\x00.pdf") == doc
    [sid] = AssistRecords(registry).record_suggestions(
        "acme", "c\x00", [{"text": "Merhaba\x00", "strategy": "llm"}]
    )
    AssistRecords(registry).record_feedback("acme", sid, "edited", "Merhaba efendim\x00")
    suggestion = AssistRecords(registry).get_suggestion("acme", sid)
    assert suggestion is not None and suggestion.text == "Merhaba\ufffd"
    assert registry.erase_conversation("acme", "c\x00") == ([sid], 0)


def test_concurrent_requests_of_one_conversation_link_its_personal_data_once(registry: Registry) -> None:
    # A WhatsApp conversation id is the customer's number; its first messages often arrive together.
    errors: list[BaseException] = []

    def link(conversation: str, barrier: threading.Barrier) -> None:
        barrier.wait()
        try:
            registry.link_conversation("acme", conversation)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    for n in range(10):
        barrier = threading.Barrier(4)
        threads = [threading.Thread(target=link, args=(f"wa-90532634{n:04d}", barrier)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    [subject] = registry.ids.subject_keys(["wa-905326340003"])
    assert registry.subject_refs("acme", subject) == [
        ("conversation", registry.ids.id("wa-905326340003"), True)
    ]


def test_deleting_a_tenant_removes_its_rows(registry: Registry) -> None:
    _, key = registry.create_api_key("acme", "k")
    registry.begin_document("acme", "a.pdf", "doc", None, None, "h1")
    job = registry.create_job("acme", "files", ["a.pdf"])
    [sid] = AssistRecords(registry).record_suggestions("acme", "c", [{"text": "Merhaba", "strategy": "llm"}])
    AssistRecords(registry).record_feedback("acme", sid, "accepted")
    AssistRecords(registry).record_audit("acme", "c", "suggest", retrieved_ids=["x"], decision="suggest")

    assert registry.delete_tenant("acme") is True
    assert registry.delete_tenant("acme") is False
    registry.create_tenant("acme", "Acme Again")
    assert registry.authenticate(key) is None
    assert registry.list_documents("acme") == [] and registry.get_job("acme", job.id) is None
    assert (
        AssistRecords(registry).get_suggestion("acme", sid) is None
        and AssistRecords(registry).list_audit("acme", 10) == []
    )
    assert registry.get_tenant("globex") is not None


# --- The file itself ---


def test_reopening_the_file_keeps_the_data(tmp_path: Path) -> None:
    url = _file_url(tmp_path)
    with Registry(url) as reg:
        reg.create_tenant("acme", "Acme", {"tone": "sen"})
        _, key = reg.create_api_key("acme", "k")
        reg.begin_document("acme", "a.pdf", "doc", None, None, "h1")
        reg.mark_indexed("acme", "a.pdf", 1, chunk_count=3)
        job = reg.create_job("acme", "files", ["a.pdf"], idempotency_key="u1")

    with Registry(url) as reopened:
        tenant = reopened.authenticate(key)
        assert tenant is not None and tenant.settings.tone == "sen"
        assert reopened.begin_document("acme", "a.pdf", "doc", None, None, "h1").action == "skip"
        assert reopened.create_job("acme", "files", ["a.pdf"], idempotency_key="u1").id == job.id
    with sqlite3.connect(tmp_path / "data" / "registry.sqlite3") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


def test_a_version_1_file_is_upgraded_in_place_and_keeps_its_documents(tmp_path: Path) -> None:
    url = _file_url(tmp_path)
    with Registry(url) as reg:
        reg.create_tenant("acme", "Acme")
        reg.begin_document("acme", "a.pdf", "doc", None, None, "h1")
        reg.mark_indexed("acme", "a.pdf", 1, chunk_count=3)
    # What a registry written before screening (and before Alembic) looks like: no flag column, version 1.
    with sqlite3.connect(tmp_path / "data" / "registry.sqlite3") as conn:
        conn.execute("DROP TABLE alembic_version")
        conn.execute("ALTER TABLE documents DROP COLUMN flag_reasons")
        conn.execute("UPDATE schema_version SET version = 1")

    with Registry(url) as upgraded:
        doc = upgraded.get_document("acme", "a.pdf")
        assert doc is not None and (doc.chunk_count, doc.flag_reasons, doc.flagged_chunks) == (3, {}, 0)
        upgraded.begin_document("acme", "a.pdf", "doc", None, None, "h2")
        flagged = upgraded.mark_indexed("acme", "a.pdf", 2, chunk_count=4, flag_reasons={"secret_request": 1})
        assert flagged.flagged_chunks == 1
    with sqlite3.connect(tmp_path / "data" / "registry.sqlite3") as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


def test_a_file_from_another_schema_version_is_refused(tmp_path: Path) -> None:
    url = _file_url(tmp_path)
    Registry(url).close()
    with sqlite3.connect(tmp_path / "data" / "registry.sqlite3") as conn:
        conn.execute("DROP TABLE alembic_version")  # written before Alembic, by code newer than this
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(RuntimeError, match="schema version 99"):
        Registry(url)


def test_settings_registry_url_creates_the_file_in_the_data_dir(settings: Settings) -> None:
    assert not settings.data_dir.exists()
    with Registry(settings.registry_url) as reg:
        reg.create_tenant("acme", "Acme")
    assert (settings.data_dir / "registry.sqlite3").is_file()


def test_a_write_the_database_refuses_for_too_long_fails_with_the_database_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another process holds SQLite's write lock past the busy timeout: the writer gets SQLAlchemy's
    # OperationalError (which the API turns into a problem response), and nothing half-written is left.
    from sqlalchemy.exc import OperationalError

    import ingestion.registry_db as registry_db

    monkeypatch.setattr(registry_db, "_BUSY_TIMEOUT_MS", 300)
    registry = Registry(f"sqlite:///{tmp_path / 'r.sqlite3'}")
    registry.create_tenant("acme", "Acme")
    records = AssistRecords(registry)
    other = sqlite3.connect(tmp_path / "r.sqlite3", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(OperationalError, match="locked"):
            records.record_audit("acme", "c-1", "suggest", retrieved_ids=[], decision="no_suggestion")
    finally:
        other.execute("ROLLBACK")
        other.close()
    records.record_audit("acme", "c-1", "suggest", retrieved_ids=[], decision="no_suggestion")
    assert len(records.list_audit("acme")) == 1


def test_a_write_that_must_not_wait_says_so_and_stores_nothing(tmp_path: Path) -> None:
    # A server's event loop stores a suggest's audit row only if it can at once; otherwise it hands the
    # write to a thread. Another process holding SQLite's write lock: WouldWait at once (the busy
    # handler would have slept up to its 10 s timeout and then failed with OperationalError instead).
    from ingestion.registry_db import WouldWait

    registry = Registry(f"sqlite:///{tmp_path / 'r.sqlite3'}")
    registry.create_tenant("acme", "Acme")
    records = AssistRecords(registry)
    suggestion = [
        {"text": "Kargo ücretsizdir.", "strategy": "extractive", "confidence": 0.9, "citations": []}
    ]
    other = sqlite3.connect(tmp_path / "r.sqlite3", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(WouldWait, match="locked"):
            records.record_audit(
                "acme",
                "c-1",
                "suggest",
                retrieved_ids=[],
                decision="suggested",
                suggestions=suggestion,
                wait=False,
            )
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert records.list_audit("acme") == []
    # The same write once the database is free, and the connection waits again as before.
    _, ids = records.record_audit(
        "acme", "c-1", "suggest", retrieved_ids=[], decision="suggested", suggestions=suggestion, wait=False
    )
    assert len(ids) == 1 and len(records.list_audit("acme")) == 1
    records.record_audit("acme", "c-2", "suggest", retrieved_ids=[], decision="no_suggestion")
    assert len(records.list_audit("acme")) == 2

    # A writer of this process holds the database: WouldWait too, nothing stored; it finishes its write.
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with registry.transaction():
            holding.set()
            release.wait(10)

    writer = threading.Thread(target=hold)
    writer.start()
    assert holding.wait(10)
    try:
        with pytest.raises(WouldWait, match="this process"):
            records.record_audit(
                "acme", "c-3", "suggest", retrieved_ids=[], decision="no_suggestion", wait=False
            )
    finally:
        release.set()
        writer.join(10)
    assert len(records.list_audit("acme")) == 2


def test_only_a_sqlite_file_is_written_without_waiting(registry: Registry) -> None:
    # In memory the one connection is every reader's too; PostgreSQL is a network round trip away.
    from ingestion.registry_db import WouldWait

    records = AssistRecords(registry)
    file_backed = registry._engine.url.get_backend_name() == "sqlite" and registry._engine.url.database
    if file_backed:
        records.record_audit("acme", "c-1", "suggest", retrieved_ids=[], decision="no_suggestion", wait=False)
        assert len(records.list_audit("acme")) == 1
    else:
        with pytest.raises(WouldWait):
            records.record_audit(
                "acme", "c-1", "suggest", retrieved_ids=[], decision="no_suggestion", wait=False
            )
        assert records.list_audit("acme") == []


def test_a_conversation_id_with_personal_data_is_not_written_without_waiting(tmp_path: Path) -> None:
    # Its subject link is a second transaction: the whole write goes where it may wait.
    from ingestion.registry_db import WouldWait

    registry = Registry(f"sqlite:///{tmp_path / 'r.sqlite3'}")
    registry.create_tenant("acme", "Acme")
    records = AssistRecords(registry)
    with pytest.raises(WouldWait):
        records.record_audit(
            "acme", "+905321234567", "suggest", retrieved_ids=[], decision="no_suggestion", wait=False
        )
    assert records.list_audit("acme") == []
