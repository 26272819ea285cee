"""Chunking: chunks stay inside their section, carry title/section/page, and are sized in words."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingestion.chunking import DEFAULT_CHUNK_WORDS, chunk_document, split_sentences
from ingestion.loaders import LoadedDocument, Section, load_document

DBANK = Path(__file__).resolve().parent / "data" / "dbank"
KREDI_SECTION = "DBank 35 yıldır sizlerle > Krediler"


def sentences(count: int, topic: str) -> str:
    """Return `count` distinct Turkish sentences about `topic` (9 words each)."""
    return " ".join(
        f"{topic} hakkında {n}. madde müşteriye açıkça anlatılır ve uygulanır." for n in range(count)
    )


def document(*sections: Section, title: str = "Yardım") -> LoadedDocument:
    return LoadedDocument(name="yardim.md", kind="markdown", title=title, sections=list(sections))


def chunk_containing(chunks: list, needle: str):
    matches = [chunk for chunk in chunks if needle in chunk.text]
    assert matches, f"{needle!r} is in no chunk"
    return matches[0]


def test_kredi_html_chunks_carry_title_section_and_keep_answers_readable() -> None:
    doc = load_document(DBANK / "kredi.html")
    chunks = chunk_document(doc, tenant_id="dbank", doc_id="kredi")

    assert [c.chunk_id for c in chunks] == [f"{n:04d}" for n in range(len(chunks))]
    assert all(c.tenant_id == "dbank" and c.doc_id == "kredi" and c.source == "doc" for c in chunks)
    assert {(c.title, c.section) for c in chunks} == {("DBank 35 yıldır sizlerle", KREDI_SECTION)}
    conditions = chunk_containing(chunks, "Taşıt kredisi için şartlar nelerdir?")
    assert "18 yaşından büyük olmak." in conditions.text
    assert conditions.metadata["section_path"] == ["DBank 35 yıldır sizlerle", "Krediler"]
    assert all(len(c.text.split()) <= DEFAULT_CHUNK_WORDS for c in chunks)


def test_pdf_chunks_know_the_pages_they_span() -> None:
    doc = load_document(DBANK / "DBank.pdf")
    page_of_line = {line: section.page for section in doc.sections for line in section.text.splitlines()}
    chunks = chunk_document(doc, tenant_id="dbank", doc_id="pdf", chunk_size=60, overlap=9)

    assert all(c.section == KREDI_SECTION for c in chunks)
    assert {(c.metadata["page"], c.metadata["page_end"]) for c in chunks} >= {(1, 1), (1, 2), (2, 2), (3, 3)}
    for chunk in chunks:
        for line in chunk.text.splitlines()[1:-1]:  # whole lines; the ends may be cut mid-line
            assert chunk.metadata["page"] <= page_of_line[line] <= chunk.metadata["page_end"], line
    kefil = chunk_containing(chunks, "İhtiyaç kredisinde kefil zorunluluğu")
    assert kefil.metadata["page"] <= 2 <= kefil.metadata["page_end"]


def test_chunking_is_deterministic() -> None:
    doc = load_document(DBANK / "DBank.pdf")

    first = chunk_document(doc, tenant_id="t", doc_id="d", chunk_size=50, overlap=8)
    second = chunk_document(doc, tenant_id="t", doc_id="d", chunk_size=50, overlap=8)

    assert [(c.chunk_id, c.text, c.point_id) for c in first] == [
        (c.chunk_id, c.text, c.point_id) for c in second
    ]


def test_long_section_is_split_by_size_with_overlap_and_loses_nothing() -> None:
    text = sentences(60, "İade")  # 540 words
    chunks = chunk_document(
        document(Section(("İade",), text)), tenant_id="t", doc_id="d", chunk_size=100, overlap=15
    )

    assert len(chunks) >= 6
    assert all(len(c.text.split()) <= 100 for c in chunks)
    for sentence in text.split(". ")[:-1]:
        assert any(sentence in c.text for c in chunks), sentence
    for before, after in zip(chunks, chunks[1:], strict=False):
        first_sentence_of_next = after.text.split(". ")[0]
        assert first_sentence_of_next in before.text  # the overlap repeats the previous chunk's tail


def test_top_level_sections_are_never_merged_even_when_tiny() -> None:
    doc = document(
        Section(("İade",), "İade 14 gün içinde yapılır."),
        Section(("Kargo",), "Kargo 2 iş gününde gelir."),
    )
    chunks = chunk_document(doc, tenant_id="t", doc_id="d")

    assert [(c.section, c.text) for c in chunks] == [
        ("İade", "İade 14 gün içinde yapılır."),
        ("Kargo", "Kargo 2 iş gününde gelir."),
    ]


def test_small_siblings_under_one_parent_merge_with_their_headings() -> None:
    doc = document(
        Section(("Kargo", "Süre"), "Siparişler 2 iş gününde kargoda."),
        Section(("Kargo", "Ücret"), "150 TL üzeri kargo ücretsiz."),
        Section(("Kargo", "Takip"), "Takip numarası SMS ile gelir."),
        Section(("İade", "Süre"), "İade 14 gün içinde yapılır."),
    )
    chunks = chunk_document(doc, tenant_id="t", doc_id="d")

    assert len(chunks) == 2
    shipping, returns = chunks
    assert shipping.section == "Kargo"
    assert shipping.text.splitlines() == [
        "Süre",
        "Siparişler 2 iş gününde kargoda.",
        "Ücret",
        "150 TL üzeri kargo ücretsiz.",
        "Takip",
        "Takip numarası SMS ile gelir.",
    ]
    assert shipping.metadata["merged_sections"] == ["Kargo > Süre", "Kargo > Ücret", "Kargo > Takip"]
    # A sibling of a different parent stays apart, with its full path.
    assert (returns.section, returns.text) == ("İade > Süre", "İade 14 gün içinde yapılır.")


def test_siblings_that_together_exceed_a_chunk_stay_apart() -> None:
    doc = document(
        Section(("Kargo", "Süre"), sentences(8, "Süre")),  # 72 words
        Section(("Kargo", "Ücret"), sentences(8, "Ücret")),
    )
    chunks = chunk_document(doc, tenant_id="t", doc_id="d", chunk_size=100, overlap=10)

    assert [c.section for c in chunks] == ["Kargo > Süre", "Kargo > Ücret"]


def test_no_chunk_mixes_a_parent_intro_with_its_subsection() -> None:
    doc = document(
        Section(("Ödeme",), "Kredi kartı ve havale kabul edilir."),
        Section(("Ödeme", "Taksit"), "Taksit seçenekleri 3, 6 ve 9 aydır."),
    )
    chunks = chunk_document(doc, tenant_id="t", doc_id="d")

    assert [c.section for c in chunks] == ["Ödeme", "Ödeme > Taksit"]


def test_a_section_running_over_pages_is_chunked_as_one() -> None:
    doc = document(
        Section(("Krediler",), sentences(3, "Taşıt"), page=1),
        Section(("Krediler",), sentences(3, "Konut"), page=2),
    )
    chunks = chunk_document(doc, tenant_id="t", doc_id="d")

    assert len(chunks) == 1
    assert chunks[0].metadata["page"] == 1
    assert "Taşıt hakkında 0." in chunks[0].text and "Konut hakkında 2." in chunks[0].text


@pytest.mark.parametrize(("chunk_size", "overlap"), [(0, 0), (100, 100), (100, -1)])
def test_bad_sizes_are_rejected(chunk_size: int, overlap: int) -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        chunk_document(
            document(Section((), "metin")), tenant_id="t", doc_id="d", chunk_size=chunk_size, overlap=overlap
        )


def test_turkish_sentence_split_keeps_every_character() -> None:
    text = (
        "Faiz oranı 0.1'dir. Dr. Ayşe 3. katta bekler! Başvuru vb. işlemler DCep'te. Neden? çünkü hızlı. Son"
    )

    pieces = split_sentences(text)

    assert "".join(pieces) == text
    assert pieces == [
        "Faiz oranı 0.1'dir. ",
        "Dr. Ayşe 3. katta bekler! ",
        "Başvuru vb. işlemler DCep'te. ",
        "Neden? çünkü hızlı. ",
        "Son",
    ]
