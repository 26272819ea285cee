"""One index process for several HTTP workers: what one worker writes the others find, searches from all of
them are answered, a worker leaving does not close the index, a wrong key is refused, and the index closes
(its lock released) when the process is stopped."""

from __future__ import annotations

import os
import secrets
import signal
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.process import BaseProcess
from pathlib import Path

import pytest

from retrieval.index import KnowledgeIndex
from retrieval.index_server import RemoteIndex, start_index_server
from retrieval.models import Chunk
from retrieval.settings import Settings
from retrieval.store import StoreError
from tests.conftest import wait_for_exit

FAQ = {
    "kargo": "Siparişler hafta içi 14:00'e kadar verilirse aynı gün kargoya teslim edilir.",
    "iade": "Ürünü teslimattan sonra 14 gün içinde ücretsiz iade edebilirsiniz.",
    "taksit": "Kredi kartına 750 TL üzeri alışverişlerde 3 taksit vade farksız yapılır.",
}
KEY = secrets.token_bytes(32)


def _settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, _env_file=None)  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BaseProcess, str, Path]]:
    data_dir = tmp_path_factory.mktemp("shared") / "data"
    folder = tempfile.mkdtemp(prefix="invekto-test-")
    address = os.path.join(folder, "index.sock")
    process = start_index_server(_settings(data_dir), address, KEY)
    yield process, address, data_dir
    if process.is_alive():
        process.terminate()
        process.join(30)


def test_workers_share_one_index(server: tuple[BaseProcess, str, Path]) -> None:
    _, address, data_dir = server
    first = RemoteIndex(_settings(data_dir), address, KEY)
    second = RemoteIndex(_settings(data_dir), address, KEY)
    assert first.meta == second.meta
    first.upsert([Chunk("acme", doc, "0", text, title=doc) for doc, text in FAQ.items()])
    assert second.count("acme") == len(FAQ)
    assert second.search("acme", "iade kaç gün içinde yapılır").hits[0].doc_id == "iade"
    # Many searches at once from both workers: each gets its own answer.
    questions = ["kargoya ne zaman verilir", "taksit var mı", "iade süresi"] * 8
    expected = {"kargoya ne zaman verilir": "kargo", "taksit var mı": "taksit", "iade süresi": "iade"}
    with ThreadPoolExecutor(8) as pool:
        found = list(
            pool.map(
                lambda i: (
                    questions[i],
                    (first if i % 2 else second).search("acme", questions[i]).hits[0].doc_id,
                ),
                range(len(questions)),
            )
        )
    assert all(doc == expected[q] for q, doc in found)
    # A worker that leaves does not take the index with it.
    first.close()
    assert second.count("acme") == len(FAQ)
    second.close()


def test_workers_that_leave_and_come_back_at_once_each_connect(server: tuple[BaseProcess, str, Path]) -> None:
    # A connection is closed only after its reply reader has left it; closing it under the reader freed
    # the descriptor the next connection then took, and the old reader swallowed its handshake.
    _, address, data_dir = server
    for _ in range(40):
        worker = RemoteIndex(_settings(data_dir), address, KEY)
        worker.count("acme")
        reader = worker._reader
        worker.close()
        assert reader is not None and not reader.is_alive()


def test_a_wrong_key_is_refused(server: tuple[BaseProcess, str, Path]) -> None:
    _, address, data_dir = server
    with pytest.raises(Exception, match="(?i)auth|digest|reached"):
        RemoteIndex(_settings(data_dir), address, b"not the key")
    # The server goes on serving the workers that have it.
    worker = RemoteIndex(_settings(data_dir), address, KEY)
    assert worker.count("acme") == len(FAQ)
    worker.close()


def test_stopping_the_process_closes_the_index(server: tuple[BaseProcess, str, Path]) -> None:
    process, address, data_dir = server
    worker = RemoteIndex(_settings(data_dir), address, KEY)
    assert process.pid is not None
    os.kill(process.pid, signal.SIGTERM)
    assert wait_for_exit(process.pid, 30)
    with pytest.raises(StoreError):
        worker.count("acme")
    # The lock is released and nothing written was lost.
    with KnowledgeIndex(_settings(data_dir)) as index:
        assert index.count("acme") == len(FAQ)
