"""The index in a child process: same answers as in-process, batched searches, errors, a killed child, close."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from retrieval.index import KnowledgeIndex, SearchCall
from retrieval.index_process import HostedIndex, open_index
from retrieval.models import Chunk
from retrieval.settings import Settings
from retrieval.store import StoreError
from tests.conftest import child_of_killed_parent, wait_for_exit

FAQ = {
    "kredi": "Taşıt kredisi için gelir belgesi, kimlik ve araç ruhsatı gerekir; vade en fazla 48 aydır.",
    "kart": "Kayıp ya da çalıntı kartınızı mobil uygulamadan veya çağrı merkezinden hemen kapatabilirsiniz.",
    "eft": "EFT işlemleri hafta içi 09:00-17:00 arasında aynı gün, diğer saatlerde ertesi iş günü gerçekleşir.",
    "faiz": "Vadeli mevduat faiz oranları vade süresine ve tutara göre şubede ve internet şubesinde ilan edilir.",
    "sifre": "İnternet şubesi şifrenizi unuttuysanız kartınız ve cep telefonunuzla yeni şifre alabilirsiniz.",
    "aidat": "Kredi kartı yıllık üyelik aidatı ilk yıl alınmaz; sonraki yıllarda tarifeye göre yansıtılır.",
}
QUESTIONS = [
    "araç kredisi için hangi belgeler lazım?",
    "kartımı kaybettim ne yapmalıyım",
    "eft ne zaman hesaba geçer",
    "mevduat faizi ne kadar",
    "şifremi unuttum",
    "kart aidatı alınıyor mu",
]


def _settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, index_process=True, _env_file=None)  # type: ignore[call-arg]


def _chunks(tenant: str) -> list[Chunk]:
    return [Chunk(tenant, doc, "0", text, title=doc) for doc, text in FAQ.items()]


def _ranking(index: KnowledgeIndex | HostedIndex, tenant: str, question: str) -> list[tuple[str, float]]:
    return [(h.doc_id, h.score) for h in index.search(tenant, question).hits]


def _same(a: list[tuple[str, float]], b: list[tuple[str, float]]) -> bool:
    # Same documents in the same order; scores equal up to float noise (a batch encodes with padding).
    return [d for d, _ in a] == [d for d, _ in b] and [s for _, s in a] == pytest.approx(
        [s for _, s in b], abs=1e-5
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hosted") / "data"


@pytest.fixture(scope="module")
def hosted(data_dir: Path) -> Iterator[HostedIndex]:
    index = open_index(_settings(data_dir))
    assert isinstance(index, HostedIndex)
    batches: list[int] = []
    assert index.upsert(_chunks("acme"), batch_size=4, progress=batches.append) == len(FAQ)
    assert batches == [4, 2]  # progress per batch, as in-process
    index.upsert([Chunk("other", "gizli", "0", "Başka bir şirketin kart ve kredi bilgisi.")])
    yield index
    index.close()


def test_long_writes_go_in_steps_so_searches_can_interleave(hosted: HostedIndex) -> None:
    extra = [Chunk("steps", f"d{n}", "0", f"Şube {n} hafta içi 09:00-17:00 açıktır.") for n in range(40)]
    steps: list[int] = []
    assert hosted.upsert(extra, batch_size=64, progress=steps.append) == 40
    assert steps == [16, 16, 8]
    assert hosted.count("steps") == 40


def test_a_search_is_answered_while_a_long_write_is_still_encoding(hosted: HostedIndex) -> None:
    passage = " ".join(FAQ.values())
    long_write = [Chunk("long", f"d{n}", "0", f"{n}. {passage}") for n in range(96)]
    # One call with every chunk (HostedIndex.upsert would send them in steps): encoding takes seconds.
    writing = hosted._submit("upsert", long_write)
    searching = hosted.submit_search("acme", "kartımı kaybettim")
    assert searching.result(timeout=60).hits[0].doc_id == "kart"
    assert not writing.done()
    assert writing.result(timeout=120) == len(long_write)
    assert hosted.count("long") == len(long_write)


def test_maintain_builds_aside_while_searches_and_writes_go_on(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "data").model_copy(update={"optimize_threshold": 1})
    with HostedIndex(settings) as index:
        index.upsert(_chunks("acme"))
        best = [_ranking(index, "acme", q)[0][0] for q in QUESTIONS]
        building = index._submit("maintain")
        # The writer is not held by the build (a process of its own): a write and a search are answered
        # while the build runs, and the write is in the index that is swapped in.
        assert index.upsert([Chunk("acme", "yeni", "0", "Yeni şubemiz Kadıköy'de açıldı.")]) == 1
        assert _ranking(index, "acme", QUESTIONS[1])[0][0] == best[1] == "kart"
        assert not building.done()
        assert building.result(timeout=120) is True
        assert index.count("acme") == len(FAQ) + 1 and index.store_info()["building"] == 0
        assert index.search("acme", "Kadıköy şubesi").hits[0].doc_id == "yeni"
        assert [_ranking(index, "acme", q)[0][0] for q in QUESTIONS] == best


def test_searches_sent_during_a_compact_are_answered_from_the_rewritten_index(hosted: HostedIndex) -> None:
    before = [_ranking(hosted, "acme", q) for q in QUESTIONS]
    compacting = hosted._submit("compact")
    searching = [hosted.submit_search("acme", q) for q in QUESTIONS]
    assert compacting.result(timeout=120) == hosted.count()
    after = [[(h.doc_id, h.score) for h in f.result(timeout=60).hits] for f in searching]
    assert all(_same(a, b) for a, b in zip(after, before, strict=True))


def test_the_child_owns_the_index_and_its_lock(hosted: HostedIndex, data_dir: Path) -> None:
    assert hosted.pid is not None and hosted.pid != os.getpid()
    with pytest.raises(StoreError, match=f"in use \\(lock held by pid {hosted.pid}\\)"):
        KnowledgeIndex(_settings(data_dir).model_copy(update={"index_process": False}))
    info = hosted.store_info()
    assert info["backend"] == "edge" and info["points"] >= len(FAQ) + 1


def test_searches_are_tenant_scoped_and_reads_see_writes(hosted: HostedIndex) -> None:
    assert hosted.search("acme", "kartımı kaybettim").hits[0].doc_id == "kart"
    assert all(h.tenant_id == "acme" for h in hosted.search("acme", "kart kredi bilgisi").hits)
    assert [h.doc_id for h in hosted.search("other", "kart kredi").hits] == ["gizli"]
    assert hosted.count("acme") == len(FAQ)
    assert {h.doc_id for h in hosted.chunks("acme")} == set(FAQ)
    empty = hosted.search("nobody", "kart")
    assert empty.hits == [] and not empty.tenant_known and "no indexed knowledge" in (empty.note or "")


def test_concurrent_searches_are_answered_as_when_sent_one_by_one(hosted: HostedIndex) -> None:
    one_by_one = {q: _ranking(hosted, "acme", q) for q in QUESTIONS}
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda q: (q, _ranking(hosted, "acme", q)), QUESTIONS * 4))
    for question, ranking in together:
        assert _same(ranking, one_by_one[question])


def test_a_bad_query_fails_its_own_call_only(hosted: HostedIndex) -> None:
    with ThreadPoolExecutor(4) as pool:
        good = [pool.submit(hosted.search, "acme", q) for q in QUESTIONS[:3]]
        bad = pool.submit(hosted.search, "acme", "   ")
        with pytest.raises(ValueError, match="The query is empty"):
            bad.result()
        assert [f.result().hits[0].doc_id for f in good] == ["kredi", "kart", "eft"]
    with pytest.raises(ValueError, match="tenant id is required"):
        hosted.delete_document(" ", "kart")
    with pytest.raises(ValueError, match="limit must be between 1 and 100"):
        from retrieval.index import QueryOptions

        hosted.search("acme", "kart", QueryOptions(limit=0))


def test_search_many_matches_single_searches(tmp_path: Path) -> None:
    with KnowledgeIndex(_settings(tmp_path / "data").model_copy(update={"index_process": False})) as index:
        index.upsert(_chunks("acme"))
        calls = [SearchCall("acme", q) for q in QUESTIONS] + [SearchCall("acme", ""), SearchCall("", "kart")]
        results = index.search_many(calls)
        for question, result in zip(QUESTIONS, results, strict=False):
            assert not isinstance(result, Exception)
            assert _same([(h.doc_id, h.score) for h in result.hits], _ranking(index, "acme", question))
        assert isinstance(results[-2], ValueError) and isinstance(results[-1], ValueError)


def test_a_killed_child_is_replaced_and_the_index_is_intact(hosted: HostedIndex) -> None:
    before = _ranking(hosted, "acme", QUESTIONS[0])
    old = hosted.pid
    assert old is not None
    os.kill(old, signal.SIGKILL)
    deadline, answer = time.monotonic() + 30, None
    while answer is None and time.monotonic() < deadline:
        try:
            answer = _ranking(hosted, "acme", QUESTIONS[0])
        except StoreError as exc:  # a call that raced the death is told to retry
            assert "retry" in str(exc)
            time.sleep(0.1)
    assert answer is not None and _same(answer, before)
    assert hosted.pid not in (None, old)
    assert hosted.count("acme") == len(FAQ)


def test_opening_fails_with_the_indexs_own_message(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "data")
    with (
        KnowledgeIndex(settings.model_copy(update={"index_process": False})),
        pytest.raises(StoreError, match="is in use"),
    ):
        HostedIndex(settings)


def test_same_answers_as_in_process_and_close_releases_everything(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "data")
    index = HostedIndex(settings)
    index.upsert(_chunks("acme"))
    hosted_rankings = [_ranking(index, "acme", q) for q in QUESTIONS]
    child = index.pid
    reader = index._reader
    assert reader is not None and reader.is_alive()
    index.close()
    index.close()  # idempotent
    assert child is not None
    # The reply reader has left the connection before it was closed: a reader still inside it would
    # read whatever socket next takes the freed descriptor (a new connection's handshake).
    assert not reader.is_alive()
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)
    with pytest.raises(StoreError, match="closed"):
        index.search("acme", "kart")
    # The lock is free again, and the data the child wrote is what an in-process index reads.
    with KnowledgeIndex(settings.model_copy(update={"index_process": False})) as local:
        for question, ranking in zip(QUESTIONS, hosted_rankings, strict=True):
            assert _same(_ranking(local, "acme", question), ranking)


def test_the_child_exits_when_its_parent_is_killed(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from retrieval.index_process import HostedIndex\n"
        "from retrieval.settings import Settings\n"
        "if __name__ == '__main__':\n"
        f"    index = HostedIndex(Settings(data_dir=Path({str(tmp_path / 'data')!r}), index_process=True, _env_file=None))\n"
        "    print(index.pid, flush=True)\n"
        "    time.sleep(120)\n"
    )
    child = child_of_killed_parent(script, tmp_path)
    assert wait_for_exit(child), f"index child {child} outlived its killed parent"
    # Its lock went with it: the index opens again.
    with KnowledgeIndex(_settings(tmp_path / "data").model_copy(update={"index_process": False})):
        pass


def _process_children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        found.extend(int(c) for c in children)
    return found


def test_the_child_encodes_ingestion_in_its_own_workers_and_stops_them_on_close(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "data").model_copy(update={"encode_workers": 2})
    index = HostedIndex(settings)
    try:
        assert index.upsert(_chunks("acme")) == len(FAQ)
        child = index.pid
        assert child is not None
        workers = _process_children(child)
        assert len(workers) == 2
        hosted_rankings = [_ranking(index, "acme", q) for q in QUESTIONS]
    finally:
        index.close()
    for worker in workers:
        assert wait_for_exit(worker), f"encode worker {worker} outlived the index"
    # The workers wrote the vectors the index's own encoder writes: the same answers, scores and all.
    own = _settings(tmp_path / "own").model_copy(update={"index_process": False, "encode_workers": 0})
    with KnowledgeIndex(own) as local:
        local.upsert(_chunks("acme"))
        for question, ranking in zip(QUESTIONS, hosted_rankings, strict=True):
            assert _same(_ranking(local, "acme", question), ranking)
