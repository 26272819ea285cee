"""Loading real and generated files: right text, right heading path, clear errors for bad files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from ingestion import loaders
from ingestion.loaders import DocumentError, LoadedDocument, Section, load_document

DBANK = Path(__file__).resolve().parent / "data" / "dbank"
KREDI_SECTION = ("DBank 35 yıldır sizlerle", "Krediler")


def section_with(doc: LoadedDocument, needle: str) -> Section:
    """Return the first section whose text contains `needle`."""
    matches = [section for section in doc.sections if needle in section.text]
    assert matches, f"{needle!r} not found in {doc.name}"
    return matches[0]


# ---------------------------------------------------------------------------------------------
# Fixture builders (also used by the offline test)
# ---------------------------------------------------------------------------------------------


def make_docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.add_heading("Kargo Politikası", 0)
    document.add_heading("Teslimat", 1)
    document.add_paragraph(
        "Siparişler 2 iş günü içinde kargoya verilir. Şırnak ve Iğdır için süre uzayabilir."
    )
    document.add_heading("Ücretler", 2)
    document.add_paragraph("150 TL üzeri siparişlerde kargo ücretsizdir.")
    document.add_heading("İade", 1)
    document.add_paragraph("İade talebi 14 gün içinde DCep üzerinden yapılır.")
    table = document.add_table(rows=2, cols=2)
    for (row, col), text in {
        (0, 0): "Ürün",
        (0, 1): "İade süresi",
        (1, 0): "Çanta",
        (1, 1): "30 gün",
    }.items():
        table.cell(row, col).text = text
    document.save(str(path))
    return path


def make_pptx(path: Path) -> Path:
    import pptx

    deck = pptx.Presentation()
    for title, body in [
        ("Kampanyalar", "Öğrencilere yüzde 20 indirim.\nKampanya 31 Aralık'ta biter."),
        ("Şubeler", "İstanbul, İzmir ve Ankara şubelerimiz hafta içi açıktır."),
        (None, "Başlıksız slayttaki not: çağrı merkezi 7/24 hizmet verir."),
    ]:
        slide = deck.slides.add_slide(deck.slide_layouts[1] if title else deck.slide_layouts[6])
        if title:
            slide.shapes.title.text = title
            slide.placeholders[1].text_frame.text = body
        else:
            box = slide.shapes.add_textbox(0, 0, 4_000_000, 1_000_000)
            box.text_frame.text = body
    deck.save(str(path))
    return path


def make_xlsx(path: Path) -> Path:
    import openpyxl

    workbook = openpyxl.Workbook()
    prices = workbook.active
    prices.title = "Fiyatlar"
    for row in [("Ürün", "Fiyat (TL)"), ("Çay", 20), ("Türk kahvesi", 45)]:
        prices.append(row)
    terms = workbook.create_sheet("Şartlar")
    for row in [("Koşul", "Açıklama"), ("İade", "Ürün 14 gün içinde iade edilebilir")]:
        terms.append(row)
    workbook.save(str(path))
    return path


MARKDOWN = """# Yardım Merkezi

Bu sayfa sık sorulan soruları içerir.

## Ödeme

Kredi kartı ve havale ile ödeme yapabilirsiniz.

### Taksit

Taksit seçenekleri 3, 6 ve 9 aydır.

## Teslimat

Siparişler 2 iş günü içinde kargoya verilir.
"""


# ---------------------------------------------------------------------------------------------
# Real documents
# ---------------------------------------------------------------------------------------------


def test_kredi_html_keeps_turkish_text_and_heading_path() -> None:
    doc = load_document(DBANK / "kredi.html")

    assert (doc.kind, doc.mime) == ("html", "text/html")
    assert doc.title == "DBank 35 yıldır sizlerle"  # the <h2> that also holds the logo <img>
    section = section_with(doc, "Taşıt kredisi için şartlar nelerdir?")
    assert section.path == KREDI_SECTION
    assert "18 yaşından büyük olmak." in section.text
    assert "Taşıt kredisi faiz oranı kredi vadesine göre 0.1'dir." in section.text
    assert doc.char_count == sum(len(s.text) for s in doc.sections) > 3000


def test_dbank_pdf_text_headings_pages_and_no_page_furniture() -> None:
    doc = load_document(DBANK / "DBank.pdf")

    assert (doc.kind, doc.mime) == ("pdf", "application/pdf")
    assert doc.title == "DBank 35 yıldır sizlerle"  # the largest font on page 1
    section = section_with(doc, "Taşıt kredisi için şartlar nelerdir?")
    assert section.path == KREDI_SECTION
    assert section.page == 1
    assert "Taşıt üzerinde herhangi bir haciz bulunmaması" in section.text
    # Wrapped lines are joined back into one sentence.
    assert "Taksi, kamyon, tır ve otobüs gibi pekçok ticari araç" in section.text
    # The 'ﬁ' ligature comes out as plain "fi", so a search for "kefil" finds it.
    assert section_with(doc, "kefil zorunluluğu").page == 2
    full_text = "\n".join(s.text for s in doc.sections)
    assert "ﬁ" not in full_text
    assert "CKEditor" not in full_text  # footer repeated on every page
    assert {s.page for s in doc.sections} == {1, 2, 3}


def test_content_decides_the_type_when_the_name_has_no_extension(tmp_path: Path) -> None:
    download = tmp_path / "indirilen_dosya"
    download.write_bytes((DBANK / "DBank.pdf").read_bytes())

    assert load_document(download).kind == "pdf"


# ---------------------------------------------------------------------------------------------
# Generated documents of every supported kind
# ---------------------------------------------------------------------------------------------


def test_docx_headings_become_the_section_path(tmp_path: Path) -> None:
    doc = load_document(make_docx(tmp_path / "kargo.docx"))

    assert doc.kind == "docx"
    assert doc.title == "Kargo Politikası"
    assert section_with(doc, "Şırnak ve Iğdır").path == ("Teslimat",)
    assert section_with(doc, "150 TL üzeri").path == ("Teslimat", "Ücretler")
    returns = section_with(doc, "14 gün içinde")
    assert returns.path == ("İade",)
    assert "Çanta | 30 gün" in returns.text  # table rows stay readable


def test_pptx_slide_titles_are_sections_with_slide_numbers(tmp_path: Path) -> None:
    doc = load_document(make_pptx(tmp_path / "sunum.pptx"))

    assert doc.kind == "pptx"
    assert doc.title == "Kampanyalar"
    discount = section_with(doc, "Öğrencilere yüzde 20 indirim.")
    assert (discount.path, discount.page) == (("Kampanyalar",), 1)
    assert "31 Aralık'ta biter" in discount.text  # a short body line is text, not a new heading
    assert section_with(doc, "Ankara şubelerimiz").path == ("Şubeler",)
    untitled = section_with(doc, "çağrı merkezi 7/24")
    assert (untitled.path, untitled.page) == ((), 3)


def test_xlsx_sheets_are_sections_with_readable_rows(tmp_path: Path) -> None:
    doc = load_document(make_xlsx(tmp_path / "fiyat.xlsx"))

    assert (doc.kind, doc.title) == ("xlsx", "fiyat")
    prices = section_with(doc, "Türk kahvesi | 45")
    assert prices.path == ("Fiyatlar",)
    assert prices.text.splitlines()[0] == "Ürün | Fiyat (TL)"
    assert section_with(doc, "İade | Ürün 14 gün içinde iade edilebilir").path == ("Şartlar",)


def test_markdown_headings_nest(tmp_path: Path) -> None:
    path = tmp_path / "yardim.md"
    path.write_text(MARKDOWN, encoding="utf-8")
    doc = load_document(path)

    assert (doc.kind, doc.title) == ("markdown", "Yardım Merkezi")
    assert section_with(doc, "sık sorulan").path == ("Yardım Merkezi",)
    assert section_with(doc, "3, 6 ve 9 aydır").path == ("Yardım Merkezi", "Ödeme", "Taksit")
    assert section_with(doc, "2 iş günü").path == ("Yardım Merkezi", "Teslimat")


def test_plain_text_in_utf8_and_windows_1254(tmp_path: Path) -> None:
    text = "Müşteri Hizmetleri\n\nŞırnak ve Iğdır şubelerimiz cumartesi açıktır.\n\nBize 0850 ile ulaşın.\n"
    utf8 = tmp_path / "notlar.txt"
    utf8.write_text(text, encoding="utf-8")
    legacy = tmp_path / "eski.txt"
    legacy.write_bytes(text.encode("cp1254"))

    for path in (utf8, legacy):
        doc = load_document(path)
        assert (doc.kind, doc.title) == ("text", path.stem)
        # Plain text has no markup, so no invented headings: one section at the root.
        assert [s.path for s in doc.sections] == [()]
        assert "Şırnak ve Iğdır şubelerimiz cumartesi açıktır." in doc.sections[0].text


def test_one_broken_byte_in_utf8_text_is_replaced_not_read_as_windows_1254(tmp_path: Path) -> None:
    text = "Müşteri Hizmetleri\n\nŞırnak ve Iğdır şubelerimiz cumartesi açıktır.\n"
    path = write(tmp_path / "notlar.txt", text.encode() + b"Fiyat: 59,90 \xff TL\n")

    doc = load_document(path)

    assert "Şırnak ve Iğdır şubelerimiz cumartesi açıktır." in doc.sections[0].text
    assert "Fiyat: 59,90 \ufffd TL" in doc.sections[0].text
    assert "Å" not in doc.sections[0].text and "Ä" not in doc.sections[0].text  # no mojibake


def test_high_byte_binary_without_nul_is_refused_not_indexed(tmp_path: Path) -> None:
    path = write(tmp_path / "veri.txt", bytes(range(128, 256)) * 64)

    with pytest.raises(DocumentError, match=r"^veri\.txt: unsupported type: binary content"):
        load_document(path)


def test_json_nested_too_deeply_is_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path / "derin.json", b"[" * 10_000 + b"]" * 10_000)

    with pytest.raises(DocumentError, match=r"^derin\.json: "):
        load_document(path)


def test_csv_with_turkish_excel_semicolons(tmp_path: Path) -> None:
    path = tmp_path / "sss.csv"
    path.write_bytes(
        "soru;cevap\nKargo ne zaman gelir?;2 iş günü içinde\nİade nasıl yapılır?;DCep üzerinden\n".encode()
    )
    doc = load_document(path)

    assert doc.kind == "csv"
    assert "Kargo ne zaman gelir? | 2 iş günü içinde" in doc.sections[0].text.splitlines()


def test_json_records_keep_question_with_answer(tmp_path: Path) -> None:
    path = tmp_path / "sss.json"
    data = {
        "banka": "DBank",
        "sorular": [
            {"soru": "Kargo ne zaman gelir?", "cevap": "2 iş günü içinde."},
            {"soru": "İade var mı?", "cevap": "14 gün içinde.", "aktif": True},
        ],
    }
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    doc = load_document(path)

    assert (doc.kind, doc.title) == ("json", "sss")
    questions = section_with(doc, "Kargo ne zaman gelir?")
    assert questions.path == ("sorular",)
    assert "soru: Kargo ne zaman gelir?; cevap: 2 iş günü içinde." in questions.text.splitlines()
    assert section_with(doc, "banka: DBank").path == ()


# ---------------------------------------------------------------------------------------------
# Bad files: each error names the file and the problem
# ---------------------------------------------------------------------------------------------


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def office_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as package:
        for name, data in members.items():
            package.writestr(name, data)
    return path


CONTENT_TYPES = (
    b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>'
)
BLANK_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bos.pdf", b"", "the file is empty"),
        ("yarim.pdf", None, "corrupt or truncated PDF"),
        (
            "fatura.pdf",
            "Bu bir PDF değil, düz metin.".encode(),
            "the extension says PDF but the content is plain text",
        ),
        ("sozlesme.docx", b"duz metin", "the extension says DOCX (Word) but the content is plain text"),
        ("veri.bin", bytes(range(256)) * 16, "unsupported type: binary content"),
        ("eski.doc", bytes.fromhex("D0CF11E0A1B11AE1") + bytes(512), "legacy Office file"),
        ("sss.json", b"{bozuk json", "the extension says JSON but the content is not valid JSON"),
        (
            "sayfa.html",
            "Etiketsiz düz metin".encode(),
            "the extension says HTML but the content has no HTML tags",
        ),
        ("taranmis.pdf", BLANK_PDF, "no text could be extracted from this PDF file (a scanned PDF?"),
        ("bozuk.docx", b"PK\x03\x04 not really a zip", "corrupt ZIP/Office file"),
        ("logo.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64), "unsupported type: a PNG image"),
        ("yedek.txt", b"\x1f\x8b\x08\x00" + bytes(64), "unsupported type: a .gz file (application/gzip)"),
    ],
)
def test_bad_files_are_reported_by_name(
    tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    data = (DBANK / "DBank.pdf").read_bytes()[:30_000] if content is None else content
    path = write(tmp_path / name, data)

    with pytest.raises(DocumentError) as error:
        load_document(path)

    assert str(error.value).startswith(f"{name}: ")
    assert message in str(error.value)


def test_over_the_size_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    with pytest.raises(
        DocumentError, match=r"^DBank\.pdf: the file is 105036 bytes, over the 1000 bytes size limit"
    ):
        load_document(DBANK / "DBank.pdf", max_bytes=1000)


def test_zip_that_is_not_an_office_file(tmp_path: Path) -> None:
    path = office_zip(tmp_path / "arsiv.docx", {"notlar.txt": b"merhaba"})

    with pytest.raises(DocumentError, match="arsiv.docx: unsupported type: a ZIP archive that is not a DOCX"):
        load_document(path)


def test_damaged_docx_package(tmp_path: Path) -> None:
    path = office_zip(
        tmp_path / "hasarli.docx", {"[Content_Types].xml": CONTENT_TYPES, "word/document.xml": b"<w:"}
    )

    with pytest.raises(DocumentError, match=r"hasarli\.docx: could not be read as DOCX \(Word\)"):
        load_document(path)


def test_zip_bomb_docx_is_refused_before_extraction(tmp_path: Path) -> None:
    path = tmp_path / "bomba.docx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr("[Content_Types].xml", CONTENT_TYPES)
        with package.open("word/document.xml", "w") as member:
            for _ in range(20):
                member.write(b"\0" * (1024 * 1024))  # 20 MiB of zeros packs to ~20 KiB
    assert path.stat().st_size < 100_000

    with pytest.raises(
        DocumentError, match=r"bomba\.docx: possible zip bomb: word/document\.xml is compressed \d+:1"
    ):
        load_document(path)


def test_zip_unpacking_past_the_total_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loaders, "MAX_UNPACKED_BYTES", 2 * 1024 * 1024)
    noise = os.urandom(3 * 1024 * 1024)  # incompressible, so only the total size gives it away
    path = office_zip(
        tmp_path / "buyuk.xlsx", {"[Content_Types].xml": CONTENT_TYPES, "xl/media/a.bin": noise}
    )

    with pytest.raises(DocumentError, match=r"buyuk\.xlsx: possible zip bomb: unpacks to 3\.0 MiB"):
        load_document(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match="yok.pdf: file not found"):
        load_document(tmp_path / "yok.pdf")


# ---------------------------------------------------------------------------------------------
# Offline: no network, fresh HOME / NLTK_DATA / TIKTOKEN_CACHE_DIR, nothing downloaded
# ---------------------------------------------------------------------------------------------

OFFLINE_SCRIPT = textwrap.dedent(
    """
    import socket, sys
    from pathlib import Path

    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args[:2]))
        raise OSError("network disabled by test")

    socket.getaddrinfo = refuse
    socket.create_connection = refuse
    socket.socket.connect = lambda self, *a, **k: refuse(*a)

    from ingestion.chunking import chunk_document
    from ingestion.loaders import load_document

    for name in sys.argv[1:]:
        doc = load_document(Path(name))
        chunks = chunk_document(doc, tenant_id="t1", doc_id=Path(name).name)
        print(doc.kind, len(chunks), chunks[0].section, sep="|")

    import spacy.util
    print("spacy model installed:", spacy.util.is_package("en_core_web_sm"))
    print("network attempts:", attempts)
    """
)


@pytest.mark.slow
def test_loading_and_chunking_work_offline_without_downloads(tmp_path: Path) -> None:
    markdown = tmp_path / "yardim.md"
    markdown.write_text(MARKDOWN, encoding="utf-8")
    text = tmp_path / "notlar.txt"
    text.write_text("Çalışma saatlerimiz 09:00-18:00 arasıdır.", encoding="utf-8")
    csv = tmp_path / "sss.csv"
    csv.write_text("soru,cevap\nKargo?,2 gün\n", encoding="utf-8")
    files = [
        DBANK / "kredi.html",
        DBANK / "DBank.pdf",
        make_docx(tmp_path / "kargo.docx"),
        make_pptx(tmp_path / "sunum.pptx"),
        make_xlsx(tmp_path / "fiyat.xlsx"),
        markdown,
        text,
        csv,
    ]
    empty = {name: tmp_path / name for name in ("home", "nltk_data", "tiktoken")}
    for directory in empty.values():
        directory.mkdir()
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("NLTK", "TIKTOKEN", "SCARF"))
    }
    env.pop("DO_NOT_TRACK", None)
    env.pop("UNSTRUCTURED_DISABLE_NOTICE", None)
    env |= {
        "HOME": str(empty["home"]),
        "XDG_CACHE_HOME": str(empty["home"] / ".cache"),
        "NLTK_DATA": str(empty["nltk_data"]),
        "TIKTOKEN_CACHE_DIR": str(empty["tiktoken"]),
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }

    result = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT, *map(str, files)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    kinds = [line.split("|") for line in lines[:8]]
    assert [kind for kind, _, _ in kinds] == [
        "html",
        "pdf",
        "docx",
        "pptx",
        "xlsx",
        "markdown",
        "text",
        "csv",
    ]
    assert kinds[0][2] == kinds[1][2] == "DBank 35 yıldır sizlerle > Krediler"
    assert all(int(count) >= 1 for _, count, _ in kinds)
    assert "spacy model installed: False" in lines
    assert "network attempts: []" in lines
    assert list(empty["nltk_data"].iterdir()) == []
    assert list(empty["tiktoken"].iterdir()) == []


def test_text_that_starts_like_a_binary_format_is_still_text(tmp_path: Path) -> None:
    doc = load_document(
        write(tmp_path / "urun.txt", "MZ-200 kodlu ürün stokta, GIF8 kampanyası bitti.".encode())
    )
    assert doc.kind == "text" and "MZ-200 kodlu ürün" in " ".join(s.text for s in doc.sections)
