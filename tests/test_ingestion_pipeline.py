"""Ingestion end to end: real files, real index, real registry (SQLite and PostgreSQL); what a tenant admin
would notice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import zipfile
from contextlib import ExitStack
from pathlib import Path

import pytest

from ingestion.pipeline import Ingestor, IngestProgress, iter_files
from ingestion.registry import Registry
from ingestion.sources import TextDocument, chat_items, file_items, sheet_item, text_items
from retrieval.index import KnowledgeIndex, QueryOptions
from retrieval.index_process import HostedIndex, open_index
from retrieval.models import SearchFilters
from retrieval.settings import Settings
from tests.conftest import DBANK
from tests.postgres_support import fresh_postgres_database, needs_postgres

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def service(settings: Settings, database_url: str, use_embedder):  # noqa: ANN001, ANN201
    index = KnowledgeIndex(settings, embedder=use_embedder)
    registry = Registry(database_url)
    ingestor = Ingestor(index, registry)
    ingestor.ensure_tenant("acme")
    yield index, registry, ingestor
    index.close()
    registry.close()


@pytest.mark.parametrize("name", ["kredi.html", "DBank.pdf"])
def test_dbank_file_answers_the_vehicle_loan_question_first(service, name: str) -> None:  # noqa: ANN001
    index, _, ingestor = service
    job = ingestor.run("acme", "files", file_items("acme", [DBANK / "kredi.html", DBANK / "DBank.pdf"]))
    assert job.status == "succeeded" and job.files_done == 2
    hits = index.search(
        "acme", "taşıt kredisi için şartlar nelerdir", QueryOptions(limit=3), SearchFilters(doc_ids=(name,))
    ).hits
    top = hits[0]
    assert top.doc_id == name
    assert "Taşıt kredisi için şartlar nelerdir" in top.text and "18 yaşından büyük" in top.text
    assert top.title and top.section  # citation data travels with the chunk


def test_unchanged_file_is_skipped_and_a_changed_one_replaces_every_old_chunk(
    service, tmp_path: Path
) -> None:  # noqa: ANN001
    index, registry, ingestor = service
    doc = tmp_path / "kargo.md"
    doc.write_text("# Kargo\n\nSiparişler ZEPLİNKARGO ile 3 iş gününde teslim edilir.\n", encoding="utf-8")
    first = ingestor.run("acme", "files", file_items("acme", [doc]))
    again = ingestor.run("acme", "files", file_items("acme", [doc]))
    assert [f.status for f in again.files] == ["skipped"] and first.chunks_written == index.count("acme")
    doc.write_text("# Kargo\n\nSiparişler artık HIZLIKARGO ile ertesi gün teslim edilir.\n", encoding="utf-8")
    ingestor.run("acme", "files", file_items("acme", [doc]))
    texts = [h.text for h in index.search("acme", "ZEPLİNKARGO teslimat", QueryOptions(limit=20)).hits]
    assert texts and not any("ZEPLİNKARGO" in t for t in texts)
    assert any("HIZLIKARGO" in t for t in texts)
    record = registry.get_document("acme", "kargo.md")
    assert record is not None and record.version == 2 and record.status == "indexed"


def _zip_bomb(path: Path) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", b"0" * (300 * 1024 * 1024))


def test_bad_files_are_reported_and_the_rest_of_the_batch_goes_in(service, tmp_path: Path) -> None:  # noqa: ANN001
    index, registry, ingestor = service
    tmp_path = tmp_path / "upload"
    tmp_path.mkdir()
    ingestor.run("acme", "files", file_items("acme", [DBANK / "kredi.html"]))
    before = index.count("acme")
    good = tmp_path / "iade.txt"
    good.write_text("İade süresi 14 gündür. Kargo ücreti iade sırasında alınmaz.", encoding="utf-8")
    (tmp_path / "bozuk.pdf").write_bytes(b"%PDF-1.7\n1 0 obj <<>> trailing garbage without xref")
    (tmp_path / "bos.txt").write_bytes(b"")
    (tmp_path / "sahte.pdf").write_text("aslında düz metin", encoding="utf-8")
    _zip_bomb(tmp_path / "bomba.docx")
    job = ingestor.run("acme", "files", file_items("acme", iter_files([tmp_path])))
    status = {f.name: (f.status, f.error or "") for f in job.files}
    assert status["iade.txt"][0] == "indexed"
    for name in ("bozuk.pdf", "bos.txt", "sahte.pdf", "bomba.docx"):
        assert status[name][0] == "failed", name
        assert name in status[name][1], status[name]  # the message names the file
    assert "empty" in status["bos.txt"][1].lower()
    assert job.status == "partial"
    assert index.count("acme") == before + 1  # nothing already indexed was lost
    assert registry.get_document("acme", "bomba.docx").status == "failed"  # type: ignore[union-attr]


def test_a_failed_update_keeps_the_previous_version_searchable(service, tmp_path: Path) -> None:  # noqa: ANN001
    index, registry, ingestor = service
    doc = tmp_path / "fiyat.pdf"
    doc.write_bytes((DBANK / "DBank.pdf").read_bytes())
    ingestor.run("acme", "files", file_items("acme", [doc]))
    doc.write_bytes(b"%PDF-1.4 broken")
    job = ingestor.run("acme", "files", file_items("acme", [doc]))
    assert job.files[0].status == "failed"
    hits = index.search("acme", "taşıt kredisi şartları", QueryOptions(limit=3)).hits
    assert hits and hits[0].doc_id == "fiyat.pdf"
    record = registry.get_document("acme", "fiyat.pdf")
    assert record is not None and record.status == "indexed" and record.error


def test_delete_removes_every_chunk_of_a_document(service) -> None:  # noqa: ANN001
    index, registry, ingestor = service
    ingestor.run("acme", "files", file_items("acme", [DBANK / "kredi.html", DBANK / "DBank.pdf"]))
    assert ingestor.delete_document("acme", "kredi.html")
    hits = index.search("acme", "taşıt kredisi", QueryOptions(limit=20)).hits
    assert hits and {h.doc_id for h in hits} == {"DBank.pdf"}
    assert registry.get_document("acme", "kredi.html").status == "deleted"  # type: ignore[union-attr]
    assert not ingestor.delete_document("acme", "no-such-doc")


def test_personal_data_never_reaches_the_index(service) -> None:  # noqa: ANN001
    index, _, ingestor = service
    text = (
        "Müşteri Ahmet, TC 10000000146, telefon +90 532 123 45 67, e-posta ahmet@example.com, "
        "IBAN TR33 0006 1005 1978 6457 8413 26 ve kart 4111 1111 1111 1111 ile ödeme yaptı. "
        "Sipariş no 12345678901 kargoda."
    )
    ingestor.run(
        "acme", "files", text_items("acme", [TextDocument("pii-doc", text, "Ödeme notu", {"note": text})])
    )
    hit = index.search("acme", "ödeme kargo sipariş", QueryOptions(limit=1)).hits[0]
    for raw in ("10000000146", "532 123 45 67", "ahmet@example.com", "TR33 0006", "4111 1111"):
        assert raw not in hit.text and raw not in json.dumps(hit.metadata, ensure_ascii=False)
    for placeholder in ("[TCKN]", "[TELEFON]", "[EPOSTA]", "[IBAN]", "[KART]"):
        assert placeholder in hit.text
    assert "12345678901" in hit.text  # an order number failing the TCKN checksum is kept


def test_faq_sheet_and_chats_are_indexed_with_their_sources(service, tmp_path: Path) -> None:  # noqa: ANN001
    index, _, ingestor = service
    sheet = tmp_path / "sss.csv"
    sheet.write_text(
        "soru;cevap\nKartımı nasıl iptal ederim?;Mobil uygulamadan Kartlarım > İptal adımıyla.\n",
        encoding="utf-8",
    )
    ingestor.run("acme", "faq", [sheet_item("acme", sheet, "faq")])
    chats = tmp_path / "chats.jsonl"
    conv = {
        "conversation_id": "c1",
        "channel": "whatsapp",
        "status": "resolved",
        "messages": [
            {"role": "customer", "text": "Merhaba", "ts": "2024-05-01T10:00:00+03:00"},
            {
                "role": "customer",
                "text": "Kargom hâlâ gelmedi, ne yapmalıyım?",
                "ts": "2024-05-01T10:01:00+03:00",
            },
            {
                "role": "agent",
                "text": "Takip numaranızla kargo firmasını arayabilirsiniz; 2 gün içinde gelmezse iade başlatırız.",
                "ts": "2024-05-01T10:03:00+03:00",
                "agent_id": "a1",
            },
        ],
    }
    chats.write_text(json.dumps(conv, ensure_ascii=False) + "\n", encoding="utf-8")
    imported = chat_items("acme", chats)
    ingestor.run("acme", "chats", imported.items)
    faq_hit = index.search("acme", "kart iptali nasıl yapılır", QueryOptions(limit=1)).hits[0]
    chat_hit = index.search("acme", "kargom gelmedi", QueryOptions(limit=1)).hits[0]
    assert faq_hit.source == "faq" and "Kartlarım" in faq_hit.text
    assert chat_hit.source == "chat" and chat_hit.doc_id == "chat:c1"
    assert chat_hit.metadata["conversation_id"] == "c1"


CRASHING_JOB = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from retrieval.settings import Settings
    from retrieval.index import KnowledgeIndex
    from ingestion.registry import Registry
    from ingestion.pipeline import Ingestor
    from ingestion.sources import ChunkingParams, TextDocument, text_items
    data_dir, crash_after, database_url = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    docs = [TextDocument(f"d{i:02d}", f"Belge {i}: iade ve kargo kuralı numara {i}. " * 30, f"Belge {i}") for i in range(24)]
    settings = Settings(data_dir=data_dir, database_url=database_url or None, _env_file=None)
    ingestor = Ingestor(KnowledgeIndex(settings), Registry(settings.registry_url), batch_chunks=8)
    ingestor.ensure_tenant("acme")
    def progress(p):
        if crash_after and p.files_done >= crash_after:
            os._exit(137)  # dies like kill -9: no cleanup, no flush, no job finish
    job = ingestor.run("acme", "files", text_items("acme", docs, params=ChunkingParams(60, 10)), progress=progress)
    print(job.status)
    """
)


def _state(data_dir: Path, database_url: str, use_embedder) -> tuple[set, set]:  # noqa: ANN001
    settings = Settings(data_dir=data_dir, database_url=database_url or None, _env_file=None)  # type: ignore[call-arg]
    with KnowledgeIndex(settings, embedder=use_embedder) as index:
        points = {(h.point_id, h.text, h.metadata.get("doc_version")) for h in index.chunks("acme")}
        assert index.count("acme") == len(points) > 24
    registry = Registry(settings.registry_url)
    docs = {(d.doc_id, d.status, d.version, d.chunk_count) for d in registry.list_documents("acme")}
    registry.close()
    return points, docs


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=needs_postgres)])
def test_a_killed_job_rerun_ends_like_one_clean_run(tmp_path: Path, use_embedder, backend: str) -> None:  # noqa: ANN001
    script = tmp_path / "job.py"
    script.write_text(CRASHING_JOB, encoding="utf-8")
    env_run = [sys.executable, str(script)]
    with ExitStack() as stack:
        # "" is the SQLite file in each run's data dir; on PostgreSQL each run gets a database of its own.
        crashed_db, clean_db = (
            (stack.enter_context(fresh_postgres_database()) for _ in range(2))
            if backend == "postgresql"
            else ("", "")
        )
        crashed = subprocess.run(
            [*env_run, str(tmp_path / "crashed"), "10", crashed_db], cwd=ROOT, capture_output=True, text=True
        )
        assert crashed.returncode == 137, crashed.stderr
        rerun = subprocess.run(
            [*env_run, str(tmp_path / "crashed"), "0", crashed_db], cwd=ROOT, capture_output=True, text=True
        )
        assert rerun.returncode == 0 and rerun.stdout.strip() == "succeeded", rerun.stderr
        clean = subprocess.run(
            [*env_run, str(tmp_path / "clean"), "0", clean_db], cwd=ROOT, capture_output=True, text=True
        )
        assert clean.returncode == 0, clean.stderr
        crashed_state, clean_state = (
            _state(tmp_path / "crashed", crashed_db, use_embedder),
            _state(tmp_path / "clean", clean_db, use_embedder),
        )
    assert crashed_state == clean_state
    assert len(clean_state[1]) == 24 and all(status == "indexed" for _, status, _, _ in clean_state[1])


def test_a_batch_in_flight_when_the_index_process_dies_is_written_after_it_starts_again(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path / "data", index_process=True, _env_file=None)  # type: ignore[call-arg]
    index = open_index(settings)
    assert isinstance(index, HostedIndex)
    registry = Registry(settings.registry_url)
    ingestor = Ingestor(index, registry, batch_chunks=1)  # one write per document
    ingestor.ensure_tenant("acme")
    docs = [
        TextDocument("kargo", "Kargo ücreti 59,90 TL; 500 TL üzeri siparişlerde kargo ücretsizdir."),
        TextDocument("iade", "Ürünü teslim aldıktan sonra 30 gün içinde ücretsiz iade edebilirsiniz."),
        TextDocument("taksit", "Kredi kartına 3, 6 ve 9 taksit seçenekleri sunulmaktadır."),
    ]
    killed: list[int] = []

    def kill_during_the_next_write(progress: IngestProgress) -> None:
        if killed or index.pid is None:
            return
        # Stopped, the child cannot answer the next write; killed a second later, it dies during it.
        killed.append(index.pid)
        os.kill(index.pid, signal.SIGSTOP)
        threading.Timer(1.0, os.kill, (index.pid, signal.SIGKILL)).start()

    try:
        job = ingestor.run("acme", "files", text_items("acme", docs), progress=kill_during_the_next_write)
        assert killed and index.pid != killed[0]  # the child died and another one took over
        assert job.status == "succeeded" and job.files_done == 3, [(f.name, f.error) for f in job.files]
        assert index.count("acme") == 3
        assert index.search("acme", "taksit seçenekleri").hits[0].doc_id == "taksit"
    finally:
        index.close()
        registry.close()


def test_writes_beside_reading_lose_nothing_and_report_with_no_write_in_flight(tmp_path: Path) -> None:
    """With the index in its own process, a batch is written while the next documents are read: every
    good document is indexed, a bad one fails alone, a large one is written in parts, and progress (which
    can stop the job or hand the index to another tenant) is never reported while a write is under way."""
    settings = Settings(data_dir=tmp_path / "data", index_process=True, _env_file=None)  # type: ignore[call-arg]
    index = open_index(settings)
    assert isinstance(index, HostedIndex) and index.encodes_aside
    registry = Registry(settings.registry_url)
    ingestor = Ingestor(index, registry, batch_chunks=4)
    ingestor.ensure_tenant("acme")
    writing = threading.Event()
    overlapped: list[str] = []
    upsert = index.upsert

    def tracked_upsert(chunks, **kwargs):  # noqa: ANN001, ANN003, ANN202
        writing.set()
        try:
            return upsert(chunks, **kwargs)
        finally:
            writing.clear()

    index.upsert = tracked_upsert  # type: ignore[method-assign]
    seen: list[tuple[str, str]] = []

    def progress(p: IngestProgress) -> None:
        if writing.is_set() and not p.partial:
            overlapped.append(p.current)
        seen.append((p.current, p.status.split(":")[0].split(" ")[0]))

    docs = [
        TextDocument(f"sss-{n:02d}", f"Soru {n}: kargo {n} günde gelir, ücreti {n}0 TL.")
        for n in range(1, 24)
    ]
    docs.insert(11, TextDocument("bos", "   "))
    long_text = "\n\n".join(
        f"Bölüm {n}. Taksit seçenekleri kart türüne göre {n} aya kadar değişir. " * 40 for n in range(12)
    )
    docs.insert(17, TextDocument("uzun", long_text))
    try:
        job = ingestor.run("acme", "files", text_items("acme", docs), progress=progress)
        assert job.status == "partial" and job.files_total == len(docs) and job.files_done == len(docs) - 1
        statuses = {f.name: f.status for f in job.files}
        assert statuses["bos"] == "failed" and sum(s == "indexed" for s in statuses.values()) == len(docs) - 1
        assert not overlapped, overlapped
        finals = [name for name, status in seen if status != "indexing"]
        assert sorted(finals) == sorted(f.name for f in job.files)  # one final report per document
        assert ("uzun", "indexing") in seen  # the large one reports its parts
        assert index.count("acme") == 23 + len(index.chunks("acme", "uzun"))
        assert len(index.chunks("acme", "uzun")) > 4  # written in parts, alone
        assert index.search("acme", "taksit seçenekleri kart türü").hits[0].doc_id == "uzun"
        assert all(registry.get_document("acme", d.id).status == "indexed" for d in docs if d.id != "bos")  # type: ignore[union-attr]
    finally:
        index.close()
        registry.close()


def test_a_job_does_not_wait_for_the_index_build_it_starts(tmp_path: Path, use_embedder) -> None:  # noqa: ANN001
    """The HNSW build a job's new points call for runs aside: the job (and the next tenant's job behind
    it) is not held behind it, searches go on meanwhile, and the build then serves."""
    settings = Settings(data_dir=tmp_path / "data", optimize_threshold=20, _env_file=None)  # type: ignore[call-arg]
    index = KnowledgeIndex(settings, embedder=use_embedder)
    registry = Registry(settings.registry_url)
    ingestor = Ingestor(index, registry)
    try:
        for tenant in ("acme", "other"):
            ingestor.ensure_tenant(tenant)
        docs = [
            TextDocument(f"sss-{n:02d}", f"Soru {n}: kargo {n} günde gelir, ücreti {n}0 TL.")
            for n in range(30)
        ]
        job = ingestor.run("acme", "files", text_items("acme", docs))
        assert job.status == "succeeded"
        assert index.store.info()["building"] == 1  # type: ignore[attr-defined]
        small = ingestor.run(
            "other", "files", text_items("other", [TextDocument("saat", "Mağaza 10'da açılır.")])
        )
        assert small.status == "succeeded"
        assert index.search("other", "mağaza kaçta açılıyor").hits[0].doc_id == "saat"
        index.maintain()  # waits for the build the first job started, if it still runs
        info = index.store.info()  # type: ignore[attr-defined]
        assert info["building"] == 0 and info["unindexed_dense"] < settings.optimize_threshold
        assert index.search("acme", "kargo 7 günde").hits[0].doc_id == "sss-07"
    finally:
        index.close()
        registry.close()


def test_a_failed_index_build_is_logged_once_and_the_job_stands(
    tmp_path: Path,
    use_embedder,  # noqa: ANN001
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A build that fails aside (disk full, say) does not fail the job whose points are stored: the job
    says so once in the log, its chunks are found (exact search), and the next maintain() builds."""
    from concurrent.futures import Future

    settings = Settings(data_dir=tmp_path / "data", optimize_threshold=20, _env_file=None)  # type: ignore[call-arg]
    index = KnowledgeIndex(settings, embedder=use_embedder)
    registry = Registry(settings.registry_url)
    ingestor = Ingestor(index, registry)
    built = index.store.optimize_aside  # type: ignore[attr-defined]

    def failing() -> Future[bool]:
        future: Future[bool] = Future()
        future.set_exception(OSError(28, "No space left on device"))
        return future

    try:
        ingestor.ensure_tenant("acme")
        monkeypatch.setattr(index.store, "optimize_aside", failing)
        docs = [TextDocument(f"sss-{n:02d}", f"Soru {n}: kargo {n} günde gelir.") for n in range(30)]
        with caplog.at_level("INFO"):
            job = ingestor.run("acme", "files", text_items("acme", docs))
        assert job.status == "succeeded"
        failures = [r for r in caplog.records if "build failed" in r.getMessage()]
        assert len(failures) == 1 and "No space left" in failures[0].getMessage()
        assert not [r for r in caplog.records if r.levelname == "ERROR"]  # no traceback from a callback
        assert index.search("acme", "kargo 7 günde").hits[0].doc_id == "sss-07"
        monkeypatch.setattr(index.store, "optimize_aside", built)
        assert index.maintain() is True
        assert index.store.info()["unindexed_dense"] < settings.optimize_threshold  # type: ignore[attr-defined]
    finally:
        index.close()
        registry.close()


def test_with_encode_workers_each_chunk_is_encoded_once(tmp_path: Path) -> None:
    """A batch sent to the workers ahead of its write is the one stored, even when the documents that fill
    it go past the batch size: nothing is encoded twice."""
    settings = Settings(data_dir=tmp_path / "data", encode_workers=1, _env_file=None)  # type: ignore[call-arg]
    index = KnowledgeIndex(settings)
    registry = Registry(settings.registry_url)
    ingestor = Ingestor(index, registry, batch_chunks=4)
    assert index.encode_pool is not None
    sent: list[str] = []
    submit = index.encode_pool.submit

    def counted(texts):  # noqa: ANN001, ANN202
        sent.extend(texts)
        return submit(texts)

    index.encode_pool.submit = counted  # type: ignore[method-assign]
    try:
        ingestor.ensure_tenant("acme")
        # Three chunks a document: two of them fill a batch of four and go past it (six chunks).
        text = "\n\n".join(f"Bölüm {n}. Kargo {n} günde gelir, ücreti {n}0 TL. " * 20 for n in range(3))
        docs = [TextDocument(f"uzun-{n}", text.replace("Kargo", f"Kargo{n}")) for n in range(5)]
        job = ingestor.run("acme", "files", text_items("acme", docs))
        assert job.status == "succeeded" and job.chunks_written == 3 * len(docs)
        assert len(sent) == job.chunks_written == index.count("acme")
    finally:
        index.close()
        registry.close()
