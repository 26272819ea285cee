"""KVKK redaction: real personal data goes, look-alikes and Turkish text stay."""

from __future__ import annotations

import random
import re

import pytest

from ingestion.redact import (
    ExtraPattern,
    Redactor,
    is_valid_iban,
    is_valid_luhn,
    is_valid_tckn,
    redact,
)

# Fixed seed: a failure names numbers that can be reproduced.
RNG = random.Random(20240502)


def make_tckn(rng: random.Random) -> str:
    d = [rng.randint(1, 9)] + [rng.randint(0, 9) for _ in range(8)]
    d.append(((d[0] + d[2] + d[4] + d[6] + d[8]) * 7 - (d[1] + d[3] + d[5] + d[7])) % 10)
    d.append(sum(d) % 10)
    return "".join(map(str, d))


def make_iban(rng: random.Random) -> str:
    bban = "".join(str(rng.randint(0, 9)) for _ in range(22))
    # ISO 7064: check digits make (BBAN + "TR00" as digits) mod 97 == 1; T=29, R=27.
    check = 98 - int(bban + "292700") % 97
    return f"TR{check:02d}{bban}"


def luhn_check_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        n = int(ch)
        if i % 2 == 0:  # doubled once the check digit is appended to the right
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return str((10 - total % 10) % 10)


def make_card(rng: random.Random, length: int = 16) -> str:
    body = str(rng.choice([4, 5])) + "".join(str(rng.randint(0, 9)) for _ in range(length - 2))
    return body + luhn_check_digit(body)


def break_last_digit(number: str) -> str:
    return number[:-1] + str((int(number[-1]) + 1) % 10)


def grouped(number: str, size: int = 4) -> str:
    return " ".join(number[i : i + size] for i in range(0, len(number), size))


# --- the check-digit algorithms, against published examples -----------------------------------


def test_checksums_accept_published_examples() -> None:
    assert is_valid_tckn("10000000146")
    assert is_valid_tckn("11111111110")
    assert is_valid_iban("TR33 0006 1005 1978 6457 8413 26")
    assert is_valid_luhn("4111 1111 1111 1111")
    assert is_valid_luhn("5555555555554444")
    assert is_valid_luhn("378282246310005")


def test_checksums_reject_near_misses() -> None:
    assert not is_valid_tckn("10000000147")
    assert not is_valid_tckn("01000000146")  # leading zero is never issued
    assert not is_valid_iban("TR34 0006 1005 1978 6457 8413 26")
    assert not is_valid_luhn("4111 1111 1111 1112")


@pytest.mark.parametrize("tckn", [make_tckn(RNG) for _ in range(25)])
def test_generated_tckn_is_redacted(tckn: str) -> None:
    result = redact(f"T.C. kimlik numaram {tckn}, adım Işıl Çağrı Öztürk.")
    assert result.text == "T.C. kimlik numaram [TCKN], adım Işıl Çağrı Öztürk."
    assert result.counts == {"TCKN": 1}


@pytest.mark.parametrize("iban", [make_iban(RNG) for _ in range(25)])
def test_generated_iban_is_redacted_with_or_without_spaces(iban: str) -> None:
    assert is_valid_iban(iban)
    spaced = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    for written in (iban, spaced):
        result = redact(f"Ödemeyi {written} hesabına yaptım")
        assert result.text == "Ödemeyi [IBAN] hesabına yaptım"
        assert result.counts == {"IBAN": 1}


@pytest.mark.parametrize("length", [13, 15, 16, 19])
def test_generated_card_numbers_are_redacted(length: int) -> None:
    for _ in range(10):
        card = make_card(RNG, length)
        assert is_valid_luhn(card)
        assert redact(f"Kartım {card} ile ödedim").text == "Kartım [KART] ile ödedim"
    card = make_card(RNG, 16)
    assert redact(f"kart: {grouped(card)}.").text == "kart: [KART]."
    assert redact(f"kart: {grouped(card).replace(' ', '-')}").text == "kart: [KART]"


@pytest.mark.parametrize(
    "phone",
    [
        "+90 532 123 45 67",
        "+905321234567",
        "0090 532 123 45 67",
        "905321234567",
        "0532-123-4567",
        "0532 123 4567",
        "0 532 123 45 67",
        "05321234567",
        "5321234567",
        "532.123.45.67",
        "(0212) 555 12 34",
        "0212 555 12 34",
        "+90 (212) 555 12 34",
        "0(216) 444-12-34",
    ],
)
def test_turkish_phone_spellings_are_redacted(phone: str) -> None:
    result = redact(f"Beni {phone} numarasından arayın lütfen")
    assert result.text == "Beni [TELEFON] numarasından arayın lütfen"
    assert result.counts == {"TELEFON": 1}


@pytest.mark.parametrize(
    "contact",
    [
        "0850 222 33 44",
        "+90 850 222 33 44",
        "(0800) 211 00 11",
        "destek@evimmarket.com.tr",
        "KVKK@firma.com.tr",
    ],
)
def test_a_business_contact_point_is_kept_so_a_faq_answer_giving_it_can_be_sent(contact: str) -> None:
    text = f"Bize {contact} üzerinden ulaşabilirsiniz."
    assert redact(text).text == text


def test_a_persons_number_and_mailbox_are_still_redacted_beside_a_business_one() -> None:
    text = "Hat: 0850 222 33 44, yetkili: 0532 123 45 67, ayse.kaya@firma.com.tr veya info@firma.com.tr"
    assert redact(text).text == "Hat: 0850 222 33 44, yetkili: [TELEFON], [EPOSTA] veya info@firma.com.tr"


def test_email_is_redacted_and_turkish_suffix_kept() -> None:
    result = redact("Faturayı ayşe.yılmaz+fatura@firma.com.tr'ye gönderin.")
    assert result.text == "Faturayı [EPOSTA]'ye gönderin."
    assert result.counts == {"EPOSTA": 1}


def test_look_alikes_that_fail_the_checksum_are_kept() -> None:
    order = "12345678901"
    assert not is_valid_tckn(order)
    bad_card = break_last_digit(make_card(RNG))
    bad_iban = break_last_digit(make_iban(RNG))
    too_short = make_card(RNG, 12)  # Luhn-valid, but no card is 12 digits long
    text = (
        f"Sipariş no: {order} kargoya verildi. Takip: {bad_card}. "
        f"Havale: {bad_iban} (yanlış yazılmış). Kayıt no: {grouped(bad_card)}, fiş {grouped(too_short)}"
    )
    result = redact(text)
    assert result.text == text
    assert result.counts == {}


def test_wrong_iban_is_not_redacted_piecewise_as_a_card() -> None:
    card = make_card(RNG)
    assert redact(grouped(card)).text == "[KART]"  # on its own, this group run is a card
    valid = make_iban(RNG)
    wrong = f"TR{(int(valid[2:4]) + 1) % 100:02d}{card}{valid[-6:]}"
    assert not is_valid_iban(wrong)
    text = f"IBAN: {grouped(wrong)} yanlış"
    assert redact(text).text == text


def test_numbers_inside_longer_digit_runs_are_left_whole() -> None:
    tckn = make_tckn(RNG)
    card = make_card(RNG)
    text = f"Barkod 00{tckn}00 ve seri 7{card}12345 ve takip 105321234567"
    assert redact(tckn).text == "[TCKN]" and redact(card).text == "[KART]"
    assert redact(text).text == text


def test_phone_is_not_taken_for_a_tckn_and_both_are_found() -> None:
    tckn = make_tckn(RNG)
    result = redact(f"TCKN {tckn} tel 05321234567 ve +90 532 765 43 21")
    assert result.text == "TCKN [TCKN] tel [TELEFON] ve [TELEFON]"
    assert result.counts == {"TCKN": 1, "TELEFON": 2}


def test_counts_add_up_over_a_whole_message() -> None:
    text = (
        f"Merhaba, ben Şule Ağaoğlu. TCKN {make_tckn(RNG)}, eşiminki {make_tckn(RNG)}. "
        f"İBAN {make_iban(RNG)}, kart {grouped(make_card(RNG))}, "
        "tel 0532 123 45 67, e-posta sule@örnek.com.tr. Sipariş no: 12345678901."
    )
    result = redact(text)
    assert result.counts == {"TCKN": 2, "IBAN": 1, "KART": 1, "TELEFON": 1, "EPOSTA": 1}
    assert result.text.startswith("Merhaba, ben Şule Ağaoğlu. TCKN [TCKN], eşiminki [TCKN]. İBAN [IBAN]")
    assert result.text.endswith("e-posta [EPOSTA]. Sipariş no: 12345678901.")


def test_turkish_text_without_personal_data_is_untouched() -> None:
    text = "İĞDIR'dan Çağla ışıklı şömineyi ÖĞLEDEN SONRA 3'te, 250 TL'ye, 2 adet sipariş etti."
    assert redact(text).text == text
    assert redact(text).counts == {}


def test_extra_pattern_redacts_tenant_customer_numbers() -> None:
    redactor = Redactor([ExtraPattern("MUSTERI_NO", r"MŞ-\d{6}")])
    text = "Müşteri numaram MŞ-123456, telefonum 0532 123 45 67"
    assert redactor(text) == "Müşteri numaram [MUSTERI_NO], telefonum [TELEFON]"
    assert redactor.redact(text).counts == {"MUSTERI_NO": 1, "TELEFON": 1}
    # The same patterns through the one-shot function.
    assert redact(text, [ExtraPattern("MUSTERI_NO", r"MŞ-\d{6}")]).text == redactor(text)


def test_extra_pattern_can_claim_an_order_number_look_alike() -> None:
    redactor = Redactor([ExtraPattern("SIPARIS_NO", r"(?<!\d)1\d{10}(?!\d)")])
    assert redactor("Sipariş no: 12345678901") == "Sipariş no: [SIPARIS_NO]"


def test_bad_extra_regex_is_reported_by_name_and_pattern() -> None:
    bad = r"MŞ-(\d{6}"
    with pytest.raises(ValueError, match="MUSTERI_NO .*" + re.escape("invalid regex " + repr(bad))):
        Redactor([ExtraPattern("MUSTERI_NO", bad)])
    with pytest.raises(ValueError, match="matches empty text"):
        Redactor([ExtraPattern("HER_SEY", r"\d*")])
    with pytest.raises(ValueError, match="must be letters"):
        Redactor([ExtraPattern("müşteri no", r"\d+")])


def test_allowed_company_values_are_kept() -> None:
    redactor = Redactor(allowed=["TR33 0006 1005 1978 6457 8413 26", "0850 222 33 44"])
    text = "Havale: TR330006100519786457841326, çağrı merkezi +90 850 222 33 44, müşteri 0532 123 45 67"
    assert redactor(text) == (
        "Havale: TR330006100519786457841326, çağrı merkezi +90 850 222 33 44, müşteri [TELEFON]"
    )


# --- coverage beyond Turkish numbers ----------------------------------------------------------


FOREIGN_IBANS = [
    "DE89 3704 0044 0532 0130 00",
    "DE89370400440532013000",
    "GB82 WEST 1234 5698 7654 32",
    "FR14 2004 1010 0505 0001 3M02 606",
    "NL91ABNA0417164300",
    "AZ21NABZ00000000137010001944",
]
FOREIGN_PHONES = [
    "+49 30 12345678",
    "+49 171 1234567",
    "0049 30 12345678",
    "+44 20 7946 0958",
    "+44 7911 123456",
]


@pytest.mark.parametrize(
    ("value", "kind"), [(v, "IBAN") for v in FOREIGN_IBANS] + [(v, "TELEFON") for v in FOREIGN_PHONES]
)
def test_foreign_ibans_and_phone_numbers_are_redacted(value: str, kind: str) -> None:
    result = redact(f"Almanya'dayım: {value}, oraya")
    assert result.text == f"Almanya'dayım: [{kind}], oraya"
    assert result.counts == {kind: 1}


def test_foreign_iban_look_alike_is_kept() -> None:
    text = "Kod DE88 3704 0044 0532 0130 00 ve EM12 3456 7890 1234 yanlış"
    assert redact(text).text == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Kart 4111 1111 1111 1111 12/27 123 ile ödedim", "Kart [KART] 12/27 [CVV] ile ödedim"),
        ("kart 4111111111111111 CVV: 456", "kart [KART] CVV: [CVV]"),
        ("Kart 4111-1111-1111-1111, skt 12/27, cvc 123", "Kart [KART], skt 12/27, cvc [CVV]"),
        ("kart 5555555555554444 güvenlik kodu 321", "kart [KART] güvenlik kodu [CVV]"),
        ("CVV2 0123 yazdım", "CVV2 [CVV] yazdım"),
    ],
)
def test_cvv_next_to_a_card_is_redacted(text: str, expected: str) -> None:
    assert redact(text).text == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Pasaport no: U12345678", "Pasaport no: [PASAPORT]"),
        ("pasaport numaram U 1234567 idi", "pasaport numaram [PASAPORT] idi"),
        ("Passport number: 123456789.", "Passport number: [PASAPORT]."),
        ("Doğum tarihi: 12.03.1985", "Doğum tarihi: [DOGUM_TARIHI]"),
        ("doğum tarihim 5 Mart 1990, bilginize", "doğum tarihim [DOGUM_TARIHI], bilginize"),
        ("D.T. 01/02/2001", "D.T. [DOGUM_TARIHI]"),
        ("date of birth: 1985-03-12", "date of birth: [DOGUM_TARIHI]"),
        ("Aracım 34 ABC 123 plakalı", "Aracım [PLAKA] plakalı"),
        ("plaka 06AB1234, diğeri 35 K 1234", "plaka [PLAKA], diğeri [PLAKA]"),
    ],
)
def test_labelled_passport_birth_date_and_plates_are_redacted(text: str, expected: str) -> None:
    assert redact(text).text == expected


NOT_PERSONAL_DATA = [
    "Fiyatı 1.250,00 TL, kargo 29,90 TL",
    "₺2.499 yerine 1.999 TL",
    "10 TL 250 kuruş",
    "Sipariş numaranız EM12345",
    "Sipariş no: EM123456789 kargoya verildi",
    "Takip no: 1Z999AA10123456784",
    "Siparişiniz 12.03.2024 tarihinde teslim edildi",
    "Teslimat 15 Ocak 2025 Çarşamba",
    "2024 yılında açıldık, 1998'den beri hizmetteyiz",
    "Kargo 3-5 iş günü içinde, 09:00-18:00 arası",
    "%20 indirim, 4 taksit, 12 ay vade",
    "34 numaralı mağazamız, 2 adet, 3 kg",
    "Model XR-500, sürüm 2.3.1, ISO 9001",
    "İade süresi 14 gün; 06 Ocak'a kadar",
    "Ürün kodu 06 KG 250 ile 34 TL 100 değil",
    "Müşteri hizmetleri 444 0 123",
    "Fatura no 2024/000123, tutar +18% KDV",
    "Garanti 2 yıl, 1.000.000 adet satıldı",
    "Son kullanma tarihi 12/2026 olan ürün",
    "Pasaport başvurusu için nüfus müdürlüğüne gidin",
    "iPhone 15 PRO 256 GB, 55 TV 4K, beden 42 XL 38",
]


@pytest.mark.parametrize("text", NOT_PERSONAL_DATA)
def test_ordinary_text_is_not_redacted(text: str) -> None:
    result = redact(text)
    assert result.text == text, result.counts


def test_repeated_texts_are_redacted_alike_and_the_memo_stays_bounded() -> None:
    """The assistant redacts the same knowledge texts on every request: a remembered answer must be the one
    a fresh redaction gives, for each tenant's own patterns, and remembering must not grow without end."""
    order = ExtraPattern("MUSTERI_NO", r"MN-\d{6}")
    plain, tenant = Redactor(), Redactor([order])
    text = "Müşteri MN-123456, telefon 0532 123 45 67, sipariş EM12345 yarın kargoda."
    for _ in range(3):
        assert plain(text) == redact(text).text
        assert "MN-123456" in plain(text) and "0532" not in plain(text)
        assert tenant(text) == Redactor([order]).redact(text).text
        assert "MN-123456" not in tenant(text) and "EM12345" in tenant(text)
    for n in range(2_000):
        assert (
            tenant(f"ödeme {n} 0532 123 45 {n % 100:02d}")
            == Redactor([order]).redact(f"ödeme {n} 0532 123 45 {n % 100:02d}").text
        )
    assert len(tenant._seen) <= 256
