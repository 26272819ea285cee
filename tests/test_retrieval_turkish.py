"""Customer Turkish against a tenant's knowledge, on both backends: spoken forms, placeholders, old indexes."""

from __future__ import annotations

from pathlib import Path

import pytest
from qdrant_edge import Bm25

from ingestion.redact import redact
from retrieval.embedders import UseMultilingualEmbedder
from retrieval.index import KnowledgeIndex, QueryOptions, reencode_sparse
from retrieval.models import Chunk
from retrieval.settings import Settings
from retrieval.sparse import TurkishBm25
from retrieval.store import IndexMeta, StoreError

FAQ = {
    "iade": (
        "Ürünü nasıl iade ederim?",
        "Hesabım > Siparişlerim sayfasında İade Talebi Oluştur'a tıklayın; ürünü 14 gün içinde kargoya verin.",
    ),
    "iade-para": (
        "İade ettiğim ürünün parası ne zaman yatar?",
        "İade onaylandıktan sonra ücret 3 iş günü içinde kartınıza iade edilir.",
    ),
    "taksit": (
        "Kredi kartına taksit yapıyor musunuz?",
        "Kredi kartına 3 taksit vade farksız yapıyoruz; 750 TL altındaki siparişlerde taksit yapılmaz.",
    ),
    "takip": (
        "Kargom nerede, nasıl takip ederim?",
        "Takip numarası SMS ile gelir; Hesabım > Kargo Takip sayfasından kargonuzun nerede olduğunu görürsünüz.",
    ),
    "hasar": (
        "Kargom hasarlı geldi, ne yapmalıyım?",
        "Paketin fotoğrafını çekip WhatsApp hattımıza gönderin; ürünü ücretsiz yenisiyle değiştiririz.",
    ),
    "ucret": (
        "Kargo ücreti kaç TL?",
        "750 TL ve üzeri siparişlerde kargo ücretsizdir; altındaki siparişlerde 49,90 TL'dir.",
    ),
    "kapat": (
        "Hesabımı nasıl kapatırım?",
        "Hesabım > Hesap Ayarları > Hesabı Kapat adımından hesabınızı kalıcı olarak kapatabilirsiniz.",
    ),
}
# Past chats typed the way customers type: they share the ASCII spellings and clipped verbs of the
# queries below but answer something else, so matching those spellings as typed ranks them first.
CHATS = {
    "c-sube": "Müşteri: paket subede kaldi ne yapcam simdi\nTemsilci: Şubeden kimliğinizle teslim alabilirsiniz.",
    "c-kupon": "Müşteri: kupon kodu nasil yapcam nerde yaziyo\nTemsilci: Sepet sayfasındaki kupon alanına yazın.",
    "c-taksitli": "Müşteri: taksitli alisveriste kargo bedava yapiyomusunuz\nTemsilci: Kargo ücreti taksitten bağımsızdır.",
    "c-kesinti": "Müşteri: iadede kac tl kesinti yapiyosunuz\nTemsilci: İadede kesinti yapılmaz.",
    "c-numara": "Müşteri: numaram degisti [TELEFON] kaydeder misiniz\nTemsilci: Numaranızı güncelledik, teşekkürler.",
}


def _knowledge(tenant: str) -> list[Chunk]:
    faq = [
        Chunk(tenant, f"faq-{key}", "0000", f"Soru: {q}\nCevap: {a}", source="faq", title=q)
        for key, (q, a) in FAQ.items()
    ]
    chats = [
        Chunk(tenant, f"chat:{key}", "0000", text, source="chat", title=text.split("\n")[0][9:])
        for key, text in CHATS.items()
    ]
    return faq + chats


@pytest.mark.parametrize(
    ("query", "doc_id"),
    [
        ("iade nasil yapcam", "faq-iade"),
        ("taksit yapiyomusunuz", "faq-taksit"),
        ("kargom nerde", "faq-takip"),
        ("kargo ucreti kac tl", "faq-ucret"),
        ("kargo ücreti ne kadr", "faq-ucret"),
        ("kargo ücreti ne kadar", "faq-ucret"),
    ],
)
def test_customer_turkish_finds_the_faq_entry_that_answers_it(
    index: KnowledgeIndex, query: str, doc_id: str
) -> None:
    index.upsert(_knowledge("shop"))
    assert index.search("shop", query).hits[0].doc_id == doc_id


def test_a_redaction_placeholder_never_counts_as_a_matching_term(index: KnowledgeIndex) -> None:
    index.upsert(_knowledge("shop"))
    query = redact("Hesabımı kapatmak istiyorum 0532 123 45 67").text
    assert "[TELEFON]" in query
    hits = index.search("shop", query, QueryOptions(limit=10)).hits
    assert hits[0].doc_id == "faq-kapat"
    # The chat that also holds [TELEFON] gets nothing from it: the same BM25 and cosine as for the query
    # without the placeholder.
    plain = {
        h.doc_id: h for h in index.search("shop", "Hesabımı kapatmak istiyorum", QueryOptions(limit=10)).hits
    }
    chat = next(h for h in hits if h.doc_id == "chat:c-numara")
    assert chat.sparse_score == pytest.approx(plain[chat.doc_id].sparse_score)
    assert chat.dense_score == pytest.approx(plain[chat.doc_id].dense_score, abs=1e-5)
    assert not index.search("shop", "[TELEFON] [EPOSTA]", QueryOptions(fusion="bm25")).hits
    # What is stored and shown is the redacted text as it was written.
    assert any("[TELEFON]" in h.text for h in index.chunks("shop"))


def test_another_tenants_chunks_never_come_back_for_customer_turkish(index: KnowledgeIndex) -> None:
    index.upsert(_knowledge("shop"))
    index.upsert([Chunk("other", "faq-x", "0000", "Kargo ücreti kaç gün sürer", source="faq")])
    for query in ("iade nasil yapcam", "taksit yapiyomusunuz", "kargom nerde", "kargo ucreti kac tl"):
        hits = index.search("other", query, QueryOptions(limit=20)).hits
        assert {h.doc_id for h in hits} <= {"faq-x"}


OLD_SPARSE = "bm25-turkish-stem+p5-k1.2-b0.75-avg150"


def _settings(tmp_path: Path, backend: str) -> Settings:
    if backend == "edge":
        return Settings(data_dir=tmp_path / "data", _env_file=None)  # type: ignore[call-arg]
    return Settings(  # type: ignore[call-arg]
        data_dir=tmp_path / "data", store="server", qdrant_url=f"local:{tmp_path / 'qdrant'}", _env_file=None
    )


class _FirstReleaseBm25(TurkishBm25):
    """The first release's BM25: the Snowball stem of each word as written, nothing more."""

    @property
    def model_id(self) -> str:
        return OLD_SPARSE

    def _streams(self, words: list[str]) -> list[tuple[Bm25, str, float]]:
        return [(self._stems, " ".join(words), 1.0)]


@pytest.mark.parametrize("backend", ["edge", "server-local"])
def test_an_index_of_an_older_bm25_encoding_is_refused_until_reencoded_then_finds_what_a_fresh_one_finds(
    tmp_path: Path, use_embedder: UseMultilingualEmbedder, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path, backend)
    with monkeypatch.context() as patch:
        patch.setattr("retrieval.index.TurkishBm25", _FirstReleaseBm25)
        with KnowledgeIndex(settings, embedder=use_embedder) as idx:
            idx.upsert(_knowledge("shop"))
            idx.upsert(_knowledge("other"))
            # The old encoding has no trigram stream: a typo ("kargm") meets no word at all.
            assert not idx.search("shop", "kargm", QueryOptions(fusion="bm25")).hits
            dense_before = {
                h.doc_id: h.dense_score
                for h in idx.search("shop", "kargom nerde", QueryOptions(limit=12)).hits
            }
    with pytest.raises(StoreError) as err:
        KnowledgeIndex(settings, embedder=use_embedder)
    message = str(err.value)
    assert OLD_SPARSE in message and "invekto-knowledge index reencode" in message

    seen: list[int] = []
    done, before = reencode_sparse(settings, progress=seen.append, embedder=use_embedder)
    assert done == 2 * (len(FAQ) + len(CHATS)) == sum(seen)
    assert before == OLD_SPARSE
    assert reencode_sparse(settings, embedder=use_embedder) == (0, TurkishBm25().model_id)

    fresh_settings = _settings(tmp_path / "fresh", backend)
    with (
        KnowledgeIndex(settings, embedder=use_embedder) as idx,
        KnowledgeIndex(fresh_settings, embedder=use_embedder) as fresh,
    ):
        fresh.upsert(_knowledge("shop"))
        fresh.upsert(_knowledge("other"))
        assert idx.count("shop") == idx.count("other") == len(FAQ) + len(CHATS)
        if backend == "edge":  # rewritten into a new shard, and its HNSW built before the service opens it
            assert idx.store.info()["unindexed_dense"] == 0  # type: ignore[attr-defined]
        assert all(
            "argo" in h.text for h in idx.search("shop", "kargm", QueryOptions(fusion="bm25")).hits[:3]
        )
        for query in ("iade nasil yapcam", "taksit yapiyomusunuz", "kargom nerde", "kargm nerde"):
            got = idx.search("shop", query, QueryOptions(fusion="bm25", limit=12)).hits
            want = fresh.search("shop", query, QueryOptions(fusion="bm25", limit=12)).hits
            assert [(h.doc_id, h.text) for h in got] == [(h.doc_id, h.text) for h in want]
            assert [h.score for h in got] == pytest.approx([h.score for h in want])
        # The dense vectors were kept as they were.
        after = idx.search("shop", "kargom nerde", QueryOptions(limit=12)).hits
        assert {h.doc_id: h.dense_score for h in after} == pytest.approx(dense_before)


def test_an_index_of_this_encoding_opens_again(tmp_path: Path, use_embedder: UseMultilingualEmbedder) -> None:
    settings = _settings(tmp_path, "edge")
    with KnowledgeIndex(settings, embedder=use_embedder) as idx:
        idx.upsert(_knowledge("shop"))
        meta = idx.meta
    assert isinstance(meta, IndexMeta)
    with KnowledgeIndex(settings, embedder=use_embedder) as idx:
        assert idx.count("shop") == len(FAQ) + len(CHATS)
        assert idx.search("shop", "kargom nerde").hits[0].doc_id == "faq-takip"
