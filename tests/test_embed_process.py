"""The encoder in a child process: same vectors as in-process, usable by the index, survives a killed child."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from retrieval.embed_process import EncodePool, ProcessEmbedder
from retrieval.embedders import EmbedderError, UseMultilingualEmbedder
from retrieval.index import KnowledgeIndex, QueryOptions
from retrieval.models import Chunk
from retrieval.settings import Settings
from retrieval.sparse import TurkishBm25
from tests.conftest import child_of_killed_parent, wait_for_exit


@pytest.fixture(scope="module")
def encoder() -> Iterator[ProcessEmbedder]:
    embedder = ProcessEmbedder("use-multilingual")
    yield embedder
    embedder.close()


def test_child_process_gives_the_same_vectors(
    encoder: ProcessEmbedder, use_embedder: UseMultilingualEmbedder
) -> None:
    assert (encoder.model_id, encoder.dim) == (use_embedder.model_id, use_embedder.dim)
    assert encoder.pid is not None and encoder.pid != os.getpid()
    texts = ["Taşıt kredisi için şartlar nelerdir?", "Kartımı kaybettim, ne yapmalıyım?"]
    assert np.allclose(encoder.embed_documents(texts), use_embedder.embed_documents(texts), atol=1e-5)
    assert np.allclose(encoder.embed_query(texts[0]), use_embedder.embed_query(texts[0]), atol=1e-5)
    assert encoder.embed_documents([]).shape == (0, 512)


def test_a_killed_child_is_restarted(encoder: ProcessEmbedder) -> None:
    before = encoder.embed_query("faiz oranı")
    pid = encoder.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert np.allclose(encoder.embed_query("faiz oranı"), before, atol=1e-6)
    assert encoder.pid not in (None, pid)


def test_a_bad_model_fails_with_the_loaders_message() -> None:
    with pytest.raises(EmbedderError, match="Unknown embedder 'no-such-model'"):
        ProcessEmbedder("no-such-model")


def test_index_with_encoder_process_searches_and_closes_the_child(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", encoder_process=True, _env_file=None)  # type: ignore[call-arg]
    with KnowledgeIndex(settings) as index:
        assert isinstance(index.embedder, ProcessEmbedder)
        child = index.embedder.pid
        index.upsert(
            [
                Chunk("acme", "kredi", "0", "Taşıt kredisi için gelir belgesi ve ruhsat gerekir."),
                Chunk("acme", "kart", "0", "Kayıp kartınızı mobil uygulamadan hemen kapatabilirsiniz."),
            ]
        )
        assert index.search("acme", "araç kredisi şartları").hits[0].doc_id == "kredi"
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)


def test_the_child_exits_when_its_parent_is_killed(tmp_path: Path) -> None:
    script = (
        "import time\n"
        "from retrieval.embed_process import ProcessEmbedder\n"
        "if __name__ == '__main__':\n"
        "    e = ProcessEmbedder('use-multilingual')\n"
        "    print(e.pid, flush=True)\n"
        "    time.sleep(120)\n"
    )
    child = child_of_killed_parent(script, tmp_path)
    assert wait_for_exit(child), f"encoder child {child} outlived its killed parent"


TEXTS = [
    "Taşıt kredisi için şartlar nelerdir?",
    "Kartımı kaybettim, ne yapmalıyım?",
    "Kargo ücreti ne kadar?",
    "İade süresi kaç gün?",
    "Şifremi unuttum.",
]


def test_an_encode_pool_splits_a_batch_between_workers_and_gives_the_same_vectors(
    use_embedder: UseMultilingualEmbedder,
) -> None:
    pool = EncodePool("use-multilingual", 2, expect_model=use_embedder.model_id)
    try:
        assert pool.pids == []  # nothing starts before the first batch
        vectors, sparse = pool.encode(TEXTS)
        assert np.allclose(vectors, use_embedder.embed_documents(TEXTS), atol=1e-5)
        assert sparse == [TurkishBm25().embed_document(text) for text in TEXTS]
        workers = pool.pids
        assert len(workers) == 2 and os.getpid() not in workers
        os.kill(workers[0], signal.SIGKILL)  # a worker that dies: its batch is encoded by a new pool
        assert wait_for_exit(workers[0])
        for _ in range(50):
            assert np.allclose(pool.encode(TEXTS[:2])[0], vectors[:2], atol=1e-5)
            if workers[0] not in pool.pids:
                break
            time.sleep(0.1)  # the pool had not noticed yet: the other worker answered
        else:
            pytest.fail("the pool still counts a killed worker")
    finally:
        pool.close()
    assert pool.pids == []


def test_idle_encode_workers_stop_and_start_again_on_the_next_batch(
    use_embedder: UseMultilingualEmbedder,
) -> None:
    pool = EncodePool("use-multilingual", 1, expect_model=use_embedder.model_id, idle_s=0.2)
    try:
        first, _ = pool.encode(TEXTS[:1])
        (worker,) = pool.pids
        assert wait_for_exit(worker)
        assert pool.pids == []
        assert np.allclose(pool.encode(TEXTS[:1])[0], first, atol=1e-6)
    finally:
        pool.close()


def test_encode_workers_of_another_model_than_the_index_are_refused() -> None:
    pool = EncodePool("use-multilingual", 1, expect_model="sentence-transformers/other-model")
    with pytest.raises(EmbedderError, match="index holds 'sentence-transformers/other-model' vectors"):
        pool.encode(TEXTS[:1])
    assert pool.pids == []


def test_an_index_with_encode_workers_writes_searchable_chunks_and_stops_them_on_close(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path / "data", encode_workers=1, _env_file=None)  # type: ignore[call-arg]
    with KnowledgeIndex(settings) as index:
        assert index.encode_pool is not None
        index.upsert(
            [
                Chunk("acme", "kredi", "0", "Taşıt kredisi için gelir belgesi ve ruhsat gerekir."),
                Chunk("acme", "kart", "0", "Kayıp kartınızı mobil uygulamadan hemen kapatabilirsiniz."),
            ]
        )
        workers = index.encode_pool.pids
        assert workers
        assert index.search("acme", "araç kredisi şartları").hits[0].doc_id == "kredi"
    for pid in workers:
        assert wait_for_exit(pid)


def _shop_chunks(tenant: str, n: int) -> list[Chunk]:
    topics = [
        "Taşıt kredisi için gelir belgesi ve ruhsat gerekir.",
        "Kayıp kartınızı mobil uygulamadan kapatın.",
    ]
    return [Chunk(tenant, f"d{i}", "0", f"{topics[i % 2]} Belge {i}.") for i in range(n)]


def test_chunks_encoded_ahead_are_stored_as_an_upsert_encodes_them(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", encode_workers=2, _env_file=None)  # type: ignore[call-arg]
    with KnowledgeIndex(settings) as index:
        chunks = _shop_chunks("acme", 150)
        ahead = index.encode_ahead(chunks, batch_size=64)
        assert ahead is not None and len(ahead.pending) == 3  # every batch is with the workers already
        assert index.upsert(chunks, batch_size=64, ahead=ahead) == 150
        assert not ahead.pending
        # An encoding started for other chunks is dropped, not stored under these ones.
        others = _shop_chunks("other", 10)
        stale = index.encode_ahead(others[:5])
        assert index.upsert(others, ahead=stale) == 10
        assert stale is not None and not stale.pending
        # Each chunk got its own vector: searching a chunk's exact text finds it at cosine 1.
        for i in (0, 7, 100, 149):
            found = index.search("acme", chunks[i].text, QueryOptions(limit=1)).hits[0]
            assert found.doc_id == f"d{i}" and found.dense_score == pytest.approx(1.0, abs=1e-4)
        assert index.count("acme") == 150 and index.count("other") == 10
    with KnowledgeIndex(settings.model_copy(update={"encode_workers": 0})) as index:
        assert index.encode_ahead(_shop_chunks("acme", 3)) is None  # encoded in upsert, in this process
