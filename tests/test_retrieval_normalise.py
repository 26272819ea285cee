"""Turkish as customers type it: spoken forms, missing diacritics, typos and placeholders, word by word."""

from __future__ import annotations

import pytest

from retrieval.deasciify import restore_diacritics
from retrieval.informal import written_forms
from retrieval.sparse import TurkishBm25, is_stopword, prefix, sparse_words, verb_root
from retrieval.text import fold_turkish, strip_placeholders

# (as typed, written form): the forms customers use on WhatsApp.
REWRITTEN = [
    ("nerde", "nerede"),
    ("nası", "nasıl"),
    ("bi", "bir"),
    ("bişey", "bir şey"),
    ("napıyım", "ne yapayım"),
    ("napcam", "ne yapacağım"),
    ("çoook", "çok"),
    ("nerdeee", "nerede"),
    ("yapıyo", "yapıyor"),
    ("yapiyo", "yapiyor"),
    ("geliyo", "geliyor"),
    ("diyo", "diyor"),
    ("istiyom", "istiyorum"),
    ("gönderiyosunuz", "gönderiyorsunuz"),
    ("yapiyonuz", "yapiyorsunuz"),
    ("çalışmıyo", "çalışmıyor"),
    ("yapcam", "yapacağım"),
    ("yapıcam", "yapacağım"),
    ("yapicam", "yapacağım"),
    ("gelcem", "geleceğim"),
    ("gelicem", "geleceğim"),
    ("edicem", "edeceğim"),
    ("alıcam", "alacağım"),
    # Vowel stems narrow their last vowel before the clipped future: "ekle" → "eklicem", "ara" → "arıcam".
    ("eklicem", "ekleyeceğim"),
    ("beklicem", "bekleyeceğim"),
    ("aricam", "arayacağım"),
    ("gidicem", "gideceğim"),
    ("yapcaz", "yapacağız"),
    ("olcak", "olacak"),
    ("olurmu", "olur mu"),
    ("varmı", "var mı"),
    ("yokmu", "yok mu"),
    ("gelirmi", "gelir mi"),
    ("alabilirmiyim", "alabilir miyim"),
    ("yapabilirmisiniz", "yapabilir misiniz"),
    ("yapiyomusunuz", "yapiyor musunuz"),
    ("yapıyormusunuz", "yapıyor musunuz"),
    ("olacakmı", "olacak mı"),
    ("olmuşmu", "olmuş mu"),
]

# Words that look like a rule's input but are ordinary written Turkish: they must come back as they are.
UNCHANGED = [
    "hocam",  # my teacher (address form), not a future verb
    "kocam",
    "amcam",
    "gecem",
    "cam",
    "bahçem",
    "yirmi",  # twenty, not "yir mi"
    "formu",
    "platformu",
    "kartımı",  # my card (accusative), not "kartı mı"
    "yardımı",
    "durumu",
    "indirimi",
    "radyo",
    "stüdyo",
    "senaryo",
    "şampiyon",
    "biyoloji",
    "televizyon",
    "gerçek",  # -çek is a noun ending, not a clipped future
    "çiçek",
    "bıçak",
    "sıcak",
    "yorum",
    "kargom",
    "nerede",
    "yapıyor",
    "saat",
    "1000",
    "iade",
]


@pytest.mark.parametrize(("typed", "written"), REWRITTEN)
def test_spoken_and_clipped_forms_get_their_written_form(typed: str, written: str) -> None:
    assert " ".join(written_forms(typed)) == written


@pytest.mark.parametrize("word", UNCHANGED)
def test_written_words_that_only_look_spoken_are_left_alone(word: str) -> None:
    assert written_forms(word) == (word,)


def test_question_particles_and_stopwords_are_dropped_with_or_without_diacritics() -> None:
    for word in ("mi", "mı", "misiniz", "musunuz", "mıyım", "nasıl", "için", "çok"):
        assert is_stopword(word), word
    assert sparse_words("nasil icin cok mi musunuz") == []
    assert sparse_words("su ısıtıcısı") == ["su", "ısıtıcısı"]  # "su" is water, not a "şu" typed bare
    assert sparse_words("taksit yapiyomusunuz") == ["taksit", "yapıyor"]


def test_placeholders_are_stripped_and_bracketed_text_that_is_not_one_is_kept() -> None:
    text = "Numaram [TELEFON], kartım [KART], müşteri no [MUSTERI_NO] [not] [1]"
    assert strip_placeholders(text).split() == [
        "Numaram",
        ",",
        "kartım",
        ",",
        "müşteri",
        "no",
        "[not]",
        "[1]",
    ]


def test_folded_query_meets_the_written_document_and_the_exact_spelling_meets_it_more() -> None:
    bm25 = TurkishBm25()
    # A tenant's own word that no Turkish word list knows: only the folded streams join the two spellings.
    doc = set(bm25.embed_document("Çamlıpürüz kurye ücreti").indices)
    folded = set(bm25.embed_query("camlipuruz").indices) & doc
    exact = set(bm25.embed_query("çamlıpürüz").indices) & doc
    assert folded and folded < exact
    # A Turkish word typed without diacritics gets them back, and with them every stream.
    assert bm25.embed_query("kargo ucreti") == bm25.embed_query("kargo ücreti")


def test_a_typo_still_shares_tokens_with_the_word_but_fewer_than_the_word() -> None:
    bm25 = TurkishBm25()
    doc = set(bm25.embed_document("Stokta olmayan ürün ne zaman gelir?").indices)
    typo = set(bm25.embed_query("zman").indices) & doc
    right = set(bm25.embed_query("zaman").indices) & doc
    assert typo and len(typo) < len(right)


def test_a_placeholder_gives_no_sparse_token() -> None:
    bm25 = TurkishBm25()
    assert not bm25.embed_query("[TELEFON] [TCKN] [EPOSTA] [IBAN] [KART]")
    assert bm25.embed_document("Aradım [TELEFON]") == bm25.embed_document("Aradım")


@pytest.mark.parametrize(
    ("word", "head"),
    [
        ("takibini", "takip"),  # takip → takibi: the b at the cut is p again
        ("hesabım", "hesap"),
        ("yemeği", "yemek"),
        ("kanadı", "kanat"),
        ("kargom", "kargo"),  # no softened consonant at the cut
        ("takip", "takip"),
        ("sebep", "sebep"),
        ("kitabd", "kitab"),  # no vowel after the cut: not a softened consonant
        ("ada", "ada"),  # shorter than the prefix
    ],
)
def test_the_prefix_hardens_a_softened_consonant_at_the_cut(word: str, head: str) -> None:
    assert prefix(word) == head


def test_a_softened_form_meets_the_hard_one_in_both_prefix_streams() -> None:
    bm25 = TurkishBm25()
    doc = set(bm25.embed_document("Kargo takip numarası").indices)
    assert len(set(bm25.embed_query("takibini").indices) & doc) > len(
        set(bm25.embed_query("takvimi").indices) & doc
    )


@pytest.mark.parametrize(
    ("word", "root"),
    [("yazıyorum", "yaz"), ("yapıyorsunuz", "yap"), ("geliyor", "gel"), ("ödüyoruz", "öd"), ("okuyor", "ok")],
)
def test_a_present_tense_verb_gives_its_root_to_the_stem_stream(word: str, root: str) -> None:
    assert verb_root(word) == root


@pytest.mark.parametrize("word", ["yorum", "koyu", "ayyor", "kuyruk", "yazı"])
def test_words_that_are_no_present_tense_keep_their_form(word: str) -> None:
    assert verb_root(word) == word


def test_the_encoding_names_itself_apart_from_the_first_release() -> None:
    assert TurkishBm25().model_id != "bm25-turkish-stem+p5-k1.2-b0.75-avg150"


@pytest.mark.parametrize(
    ("typed", "restored"),
    [
        ("kac", "kaç"),
        ("ucreti", "ücreti"),
        ("ogrenci", "öğrenci"),
        ("degistirebilir", "değiştirebilir"),
        ("sifre", "şifre"),
    ],
)
def test_words_typed_without_diacritics_get_their_usual_spelling(typed: str, restored: str) -> None:
    assert restore_diacritics(typed) == restored


# Already right, a common word of its own beside its diacritic twin (su/şu, sinir/sınır, koy/köy), or
# unknown to Turkish (brands, order numbers): kept as typed.
@pytest.mark.parametrize(
    "word",
    [
        "oldu",
        "kargo",
        "iade",
        "taksit",
        "su",
        "sinir",
        "koy",
        "mac",
        "instagram",
        "evim",
        "em24830114",
        "öldü",
        "sık",
    ],
)
def test_words_spelt_right_already_or_unknown_to_turkish_are_kept(word: str) -> None:
    assert restore_diacritics(word) == word


def test_fold_turkish_is_unchanged() -> None:
    assert fold_turkish("Şİmdİ ÖDEME IĞDIR") == "simdi odeme igdir"
