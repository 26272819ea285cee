"""FAQ sheets and quick replies become chunks; bad rows are reported, not lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingestion.faq import SheetFormatError, load_faq, load_quick_replies
from ingestion.redact import Redactor

FIXTURES = Path(__file__).parent / "fixtures" / "faq"


def test_turkish_excel_csv_semicolons_bom_and_multiline_answers() -> None:
    result = load_faq("magaza-1", "sss-2024", FIXTURES / "sss.csv")

    assert [c.title for c in result.chunks] == [
        "Kargo ücreti ne kadar?",
        "Siparişim ne zaman kargoya verilir?",
        "Taksit seçenekleri nelerdir?",
    ]
    first = result.chunks[0]
    assert first.source == "faq"
    assert first.tenant_id == "magaza-1" and first.doc_id == "sss-2024"
    assert first.section == "Kargo"
    assert first.text == (
        "Soru: Kargo ücreti ne kadar?\n"
        "Cevap: 250 TL ve üzeri siparişlerde kargo ücretsizdir. "
        "Altındaki siparişlerde 39,90 TL kargo ücreti alınır."
    )
    assert first.metadata["question"] == "Kargo ücreti ne kadar?"
    assert first.metadata["answer"].startswith("250 TL ve üzeri")
    assert first.metadata["category"] == "Kargo"
    assert "Hafta sonu verilen siparişler pazartesi gönderilir." in result.chunks[1].metadata["answer"]


def test_rows_with_empty_question_or_answer_are_reported_with_row_numbers() -> None:
    result = load_faq("magaza-1", "sss-2024", FIXTURES / "sss.csv")

    assert result.problems == [
        "row 4: answer is empty (question: 'İade nasıl yapılır?')",
        "row 5: question is empty (answer: 'Ürün değişimi için 14 gün içinde müşteri hizmetlerine yazma…')",
        "row 8: same question as row 2; kept that one",
    ]


def test_reimport_gives_the_same_ids_even_when_rows_are_reordered(tmp_path: Path) -> None:
    original = load_faq("magaza-1", "sss-2024", FIXTURES / "sss.csv")
    header, *rows = (FIXTURES / "sss.csv").read_bytes().decode("utf-8-sig").split("\r\n")
    # The multi-line answer spans two physical lines; keep them together while shuffling.
    records = [rows[0], rows[1] + "\r\n" + rows[2], *rows[3:]]
    reordered = tmp_path / "sss.csv"
    reordered.write_text("\r\n".join([header, *reversed([r for r in records if r])]), encoding="utf-8")

    again = load_faq("magaza-1", "sss-2024", reordered)

    assert {c.point_id for c in again.chunks} == {c.point_id for c in original.chunks}
    # The upper-case duplicate now comes first and wins, and overwrites under the same id.
    assert again.chunks[0].title == "KARGO ÜCRETİ NE KADAR?"
    assert again.chunks[0].point_id == original.chunks[0].point_id


def test_json_items_with_english_headers_and_non_object_items() -> None:
    result = load_faq("magaza-1", "faq-json", FIXTURES / "faq.json")

    assert [c.metadata["question"] for c in result.chunks] == [
        "Mağazadan teslim alabilir miyim?",
        "Hangi ödeme yöntemlerini kabul ediyorsunuz?",
    ]
    assert result.chunks[1].section == "Ödeme"
    assert result.problems == [
        "item 3: answer is empty (question: 'Fatura bilgilerimi nasıl değiştiririm?')",
        "item 4: expected an object with named fields, got str",
    ]


def test_json_bare_list_from_bytes_with_short_headers() -> None:
    data = json.dumps(
        [{"Q": "Kapıda ödeme var mı?", "A": "Evet, nakit ve kartla."}, {"q": "Fatura?", "a": 12}],
        ensure_ascii=False,
    ).encode("utf-8")

    result = load_faq("magaza-1", "upload-7", data, filename="SSS.JSON")

    assert [c.text for c in result.chunks] == [
        "Soru: Kapıda ödeme var mı?\nCevap: Evet, nakit ve kartla.",
        "Soru: Fatura?\nCevap: 12",
    ]
    assert result.problems == []


def test_xlsx_first_sheet_with_baslik_as_question_and_turkish_uppercase_headers() -> None:
    # Written by openpyxl (inline strings, absolute part paths); the headers are
    # "Başlık", "CEVAP", "KATEGORİ", and a second sheet must not be read.
    result = load_faq("magaza-1", "sss-xlsx", FIXTURES / "sss.xlsx")

    assert [(c.title, c.section) for c in result.chunks] == [
        ("Şifremi unuttum, ne yapmalıyım?", "Hesap"),
        ("Üyeliğimi nasıl silerim?", "Hesap"),
        ("Yurt dışına gönderim var mı?", ""),
    ]
    assert result.chunks[1].metadata["answer"] == "Hesabım > Ayarlar > Üyeliği sil adımlarını izleyin."
    assert result.problems == ["row 5: answer is empty (question: 'Kaç günde teslim edilir?')"]
    assert all("Bu sayfa okunmamalı" not in c.text for c in result.chunks)


def test_windows_1254_csv_with_yanit_header(tmp_path: Path) -> None:
    path = tmp_path / "sss.csv"
    path.write_bytes("Soru,yanit\nİade süresi kaç gün?,Teslimattan itibaren 14 gündür.\n".encode("cp1254"))

    result = load_faq("magaza-1", "sss", path)

    assert result.chunks[0].text == "Soru: İade süresi kaç gün?\nCevap: Teslimattan itibaren 14 gündür."


def test_unrecognised_columns_name_what_was_found_and_expected(tmp_path: Path) -> None:
    path = tmp_path / "musteriler.csv"
    path.write_text("Ad Soyad;Telefon\nAli Veli;0532 000 00 00\n", encoding="utf-8")

    with pytest.raises(SheetFormatError) as caught:
        load_faq("magaza-1", "x", path)

    message = str(caught.value)
    assert "musteriler.csv" in message
    assert "'Ad Soyad', 'Telefon'" in message
    assert "question: one of soru" in message and "answer: one of cevap" in message


def test_unsupported_or_unnamed_files_are_refused_clearly(tmp_path: Path) -> None:
    old_excel = tmp_path / "sss.xls"
    old_excel.write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.raises(SheetFormatError, match=r"\.xls.*save .xls files as .xlsx or CSV"):
        load_faq("magaza-1", "x", old_excel)
    with pytest.raises(ValueError, match="filename is required"):
        load_faq("magaza-1", "x", b"Soru,Cevap\n")
    with pytest.raises(SheetFormatError, match="not a valid .xlsx"):
        load_faq("magaza-1", "x", b"not a zip", filename="sss.xlsx")


def test_redaction_reaches_text_and_metadata(tmp_path: Path) -> None:
    path = tmp_path / "sss.csv"
    path.write_text(
        "Soru,Cevap\nBana ulaşabilir misiniz?,Sizi 0532 123 45 67 numarasından arayacağız.\n",
        encoding="utf-8",
    )

    chunk = load_faq("magaza-1", "sss", path, redact=Redactor()).chunks[0]

    assert "0532" not in chunk.text and "[TELEFON]" in chunk.text
    assert chunk.metadata["answer"] == "Sizi [TELEFON] numarasından arayacağız."


def test_quick_replies_from_csv() -> None:
    result = load_quick_replies("magaza-1", "hazir-yanitlar", FIXTURES / "hazir_yanitlar.csv")

    assert [(c.title, c.section, c.source) for c in result.chunks] == [
        ("/kargo", "Kargo", "quick_reply"),
        ("/iade", "İade", "quick_reply"),
    ]
    assert result.chunks[1].text == (
        "/iade\nİade talebinizi oluşturduk. Kargo kodu ile ürünü 14 gün içinde gönderebilirsiniz."
    )
    assert result.chunks[1].metadata["text"].startswith("İade talebinizi")
    assert result.problems == ["row 4: text is empty (title: '/mesai')"]


def test_quick_replies_from_xlsx_with_shared_and_rich_text() -> None:
    # Written by XlsxWriter (shared strings, a rich-text cell, relative part paths, a gap row).
    result = load_quick_replies("magaza-1", "hazir-yanitlar", FIXTURES / "hazir_yanitlar.xlsx")

    assert [c.title for c in result.chunks] == ["/hosgeldin", "/kargo-gecikme", "/ıade-durumu"]
    assert result.chunks[1].metadata["text"] == (
        "Yaşanan gecikme için özür dileriz. Kargonuz en geç yarın teslim edilecektir."
    )
    assert result.chunks[2].metadata["row"] == "row 5"


def test_quick_replies_refuse_a_faq_sheet() -> None:
    with pytest.raises(SheetFormatError, match="Columns found: 'SORU', 'Yanıt', 'Kategori'.*title: one of"):
        load_quick_replies("magaza-1", "x", FIXTURES / "sss.csv")


def test_a_csv_row_with_an_unquoted_separator_is_reported_not_misread(tmp_path: Path) -> None:
    sheet = tmp_path / "sss.csv"
    sheet.write_text(
        "soru;cevap;kategori\n"
        "Aidat var mı?;İlk yıl yok; sonra 450 TL.;Kartlar\n"
        'Şube saatleri?;"Hafta içi 09:00-17:00; öğle arası yok.";Genel\n',
        encoding="utf-8",
    )
    result = load_faq("acme", "sss", sheet)
    assert [c.metadata["question"] for c in result.chunks] == ["Şube saatleri?"]
    assert "öğle arası yok" in result.chunks[0].text
    assert (
        len(result.problems) == 1 and "row 2" in result.problems[0] and "double quotes" in result.problems[0]
    )
