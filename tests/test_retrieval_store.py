"""The store behaves the same on Qdrant Edge and on qdrant-client (server path): writes, deletes, isolation."""

from __future__ import annotations

import pytest

from retrieval.index import KnowledgeIndex, QueryOptions
from retrieval.models import Chunk, SearchFilters, SearchHit

FAQ = [
    ("taşıt", "Taşıt kredisi için gelir belgesi, kimlik ve araç ruhsatı gerekir. Vade en fazla 48 aydır."),
    ("konut", "Konut kredisinde ekspertiz raporu ve tapu fotokopisi istenir; vade 120 aya kadar çıkar."),
    (
        "kart",
        "Kredi kartı aidatı ilk yıl alınmaz. Kartınızı mobil uygulamadan limit artırımıyla kullanabilirsiniz.",
    ),
    ("iade", "İade talebinizi ürün elinize ulaştıktan sonra 14 gün içinde iletebilirsiniz."),
]


def _chunks(tenant: str, source: str = "faq") -> list[Chunk]:
    return [Chunk(tenant, f"doc-{key}", "0000", text, source=source, title=key.title()) for key, text in FAQ]  # type: ignore[arg-type]


def test_hybrid_search_finds_the_right_chunk_first(index: KnowledgeIndex) -> None:
    index.upsert(_chunks("acme"))
    result = index.search("acme", "taşıt kredisi için hangi belgeler gerekiyor?")
    assert result.hits[0].doc_id == "doc-taşıt"
    hit = result.hits[0]
    assert hit.title == "Taşıt" and hit.source == "faq" and hit.chunk_id == "0000" and "ruhsat" in hit.text
    assert result.timings_ms["total"] > 0


def test_no_result_from_another_tenant_ever_comes_back(index: KnowledgeIndex) -> None:
    index.upsert(_chunks("tenant-a"))
    index.upsert(
        [Chunk("tenant-b", "secret", "0000", "Taşıt kredisi gizli kampanya: faiz yüzde sıfır, kod B-SECRET.")]
    )
    for query in ["taşıt kredisi faiz kampanya", "B-SECRET", "gizli kampanya kodu nedir", "kredi"]:
        for method in ("score", "rrf", "dense", "bm25"):
            hits = index.search("tenant-a", query, QueryOptions(limit=20, fusion=method)).hits
            if method != "bm25":  # BM25 alone rightly finds nothing for words tenant-a never wrote
                assert hits, query
            assert {h.tenant_id for h in hits} <= {"tenant-a"}
            assert all("SECRET" not in h.text for h in hits)
    b_hits = index.search("tenant-b", "kredi kartı aidatı", QueryOptions(limit=20)).hits
    assert [h.doc_id for h in b_hits] == ["secret"]


def test_reingesting_is_idempotent_and_delete_by_document_removes_every_chunk(index: KnowledgeIndex) -> None:
    index.upsert(_chunks("acme"))
    index.upsert(_chunks("acme"))
    assert index.count("acme") == len(FAQ)
    index.delete_document("acme", "doc-kart")
    assert index.count("acme") == len(FAQ) - 1
    hits = index.search("acme", "kredi kartı aidatı", QueryOptions(limit=10)).hits
    assert "doc-kart" not in {h.doc_id for h in hits}


def test_chunks_lists_a_tenants_or_a_documents_chunks_only(index: KnowledgeIndex) -> None:
    index.upsert(_chunks("a") + _chunks("b"))
    assert {h.doc_id for h in index.chunks("a")} == {f"doc-{k}" for k, _ in FAQ}
    assert {h.tenant_id for h in index.chunks("a")} == {"a"}
    assert [h.text for h in index.chunks("b", "doc-kart")] == [FAQ[2][1]]


def test_delete_tenant_leaves_other_tenants_alone(index: KnowledgeIndex) -> None:
    index.upsert(_chunks("a"))
    index.upsert(_chunks("b"))
    index.delete_tenant("a")
    assert index.count("a") == 0
    assert index.count("b") == len(FAQ)
    assert index.count() == len(FAQ)


def test_source_filter_narrows_results(index: KnowledgeIndex) -> None:
    index.upsert(_chunks("acme", source="faq"))
    index.upsert(
        [
            Chunk(
                "acme",
                "chat:1",
                "0000",
                "Müşteri: taşıt kredisi belgeleri?\nTemsilci: Ruhsat ve kimlik yeterli.",
                source="chat",
            )
        ]
    )
    hits = index.search(
        "acme", "taşıt kredisi belgeler", QueryOptions(limit=10), SearchFilters(sources=("chat",))
    ).hits
    assert [h.doc_id for h in hits] == ["chat:1"]


def test_unknown_tenant_gets_an_empty_result_that_says_so(index: KnowledgeIndex) -> None:
    index.upsert(_chunks("acme"))
    result = index.search("nobody", "taşıt kredisi")
    assert result.hits == [] and result.tenant_known is False
    assert "nobody" in (result.note or "") and "no indexed knowledge" in (result.note or "")


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_empty_query_is_a_clear_error(index: KnowledgeIndex, query: str) -> None:
    with pytest.raises(ValueError, match="query is empty"):
        index.search("acme", query)


def test_missing_tenant_is_refused(index: KnowledgeIndex) -> None:
    with pytest.raises(ValueError, match="tenant id is required"):
        index.search("  ", "taşıt kredisi")


def test_turkish_casing_matches_in_both_directions(index: KnowledgeIndex) -> None:
    index.upsert(
        [
            Chunk("acme", "ist", "0000", "İSTANBUL ŞUBESİ IĞDIR ŞUBESİNDEN farklı saatlerde açıktır."),
            Chunk("acme", "ank", "0000", "Ankara şubesi hafta sonu kapalıdır."),
        ]
    )
    assert index.search("acme", "istanbul şubesi", QueryOptions(fusion="bm25")).hits[0].doc_id == "ist"
    assert index.search("acme", "ığdır", QueryOptions(fusion="bm25")).hits[0].doc_id == "ist"


PAYLOAD = {
    "tenant_id": "t",
    "doc_id": "d",
    "chunk_id": "c",
    "text": "metin",
    "source": "faq",
    "metadata": {"a": 1},
}


def test_a_rescored_hit_keeps_everything_but_its_scores() -> None:
    hit = SearchHit.from_payload(
        "p1",
        0.5,
        PAYLOAD,
        dense_score=0.7,
    )
    fused = hit.rescored(0.9, sparse_score=12.0)
    assert (fused.score, fused.dense_score, fused.sparse_score) == (0.9, 0.7, 12.0)
    assert (fused.ref, fused.text, fused.metadata, fused.tenant_id) == (hit.ref, "metin", {"a": 1}, "t")
    assert (hit.score, hit.sparse_score) == (0.5, None)  # the original is untouched
    assert fused == SearchHit.from_payload(
        "p1",
        0.9,
        PAYLOAD,
        dense_score=0.7,
        sparse_score=12.0,
    )
    with pytest.raises(TypeError, match="text"):
        hit.rescored(1.0, text="başka")  # type: ignore[arg-type]
