"""The encoder in a child process: same vectors as in-process, usable by the index, survives a killed child."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from retrieval.embed_process import ProcessEmbedder
from retrieval.embedders import EmbedderError, UseMultilingualEmbedder
from retrieval.index import KnowledgeIndex
from retrieval.models import Chunk
from retrieval.settings import Settings
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
