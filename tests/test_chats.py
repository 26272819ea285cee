"""Past conversations become question/answer chunks; noise, open chats and bad lines do not."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from ingestion.chats import (
    Conversation,
    QAPair,
    collapse_duplicates,
    extract_pairs,
    load_conversations,
    needs_context,
    pairs_to_chunks,
    parse_conversations,
)
from ingestion.redact import Redactor
from retrieval.text import fold_turkish

FIXTURES = Path(__file__).parent / "fixtures" / "chats"


@pytest.fixture(scope="module")
def export() -> dict[str, Conversation]:
    result = load_conversations(FIXTURES / "conversations.jsonl")
    return {c.conversation_id: c for c in result.conversations}


def conversation(*messages: tuple[str | None, ...], status: str = "resolved", **extra: Any) -> Conversation:
    """A conversation of (role, text) or (role, text, agent_id) messages, one minute apart."""
    return Conversation.model_validate(
        {
            "conversation_id": extra.pop("conversation_id", "c-test"),
            "channel": "whatsapp",
            "status": status,
            "messages": [
                {
                    "role": role,
                    "text": text,
                    "ts": f"2024-05-02T10:{i:02d}:00+03:00",
                    "agent_id": agent[0] if agent else "a-1",
                }
                for i, (role, text, *agent) in enumerate(messages)
            ],
            **extra,
        }
    )


def test_jsonl_export_reports_bad_lines_by_number_and_reads_the_rest() -> None:
    result = load_conversations(FIXTURES / "conversations.jsonl")

    assert [c.conversation_id for c in result.conversations] == [
        "c-1001", "c-1002", "c-1004", "c-1005", "c-1007", "c-1008", "c-1009",
    ]  # fmt: skip
    assert len(result.problems) == 3
    assert result.problems[0].startswith("line 3: not valid JSON")
    assert result.problems[1].startswith("line 6: conversation c-1006: channel: Input should be 'whatsapp'")
    assert (
        "messages[0].role: Input should be 'customer', 'agent', 'bot' or 'system' (got 'musteri')"
        in (result.problems[1])
    )
    assert result.problems[2] == "line 11: conversation c-1002 already read at line 2; kept that one"


def test_single_conversation_json_and_json_list() -> None:
    single = load_conversations(FIXTURES / "single.json")
    assert [c.conversation_id for c in single.conversations] == ["c-2001"]
    assert single.conversations[0].channel == "voip"

    document = json.loads((FIXTURES / "single.json").read_text(encoding="utf-8"))
    listed = parse_conversations(json.dumps([document, {**document, "csat": 9}, "x"]))
    assert [c.conversation_id for c in listed.conversations] == ["c-2001"]
    assert listed.problems[0].startswith(
        "item 2: conversation c-2001: csat: Input should be less than or equal to 5"
    )
    assert listed.problems[1] == "item 3: expected a conversation object, got str"


def test_jsonl_lines_are_split_on_newlines_only() -> None:
    # json.dumps(ensure_ascii=False) writes U+2028 raw; str.splitlines() would cut the line there.
    chat = conversation(("customer", "Kargo\u2028ücreti?"), ("agent", "Ücretsiz."), conversation_id="c-9")
    text = json.dumps(chat.model_dump(mode="json"), ensure_ascii=False) + "\n"
    assert "\u2028" in text

    result = parse_conversations(text + text.replace("c-9", "c-10"), jsonl=True)

    assert result.problems == []
    assert [c.conversation_id for c in result.conversations] == ["c-9", "c-10"]


def test_agent_ids_are_text_numbers_become_text_booleans_are_refused() -> None:
    base = {"conversation_id": "c-3", "channel": "sms", "status": "resolved"}
    message = {"role": "agent", "text": "Merhaba", "ts": "2024-05-02T10:00:00+03:00"}
    lines = [
        json.dumps({**base, "messages": [{**message, "agent_id": 42}]}),
        json.dumps({**base, "conversation_id": "c-4", "messages": [{**message, "agent_id": False}]}),
    ]
    result = parse_conversations("\n".join(lines), jsonl=True)
    assert [c.messages[0].agent_id for c in result.conversations] == ["42"]
    assert len(result.problems) == 1
    assert result.problems[0].startswith("line 2: conversation c-4: messages[0].agent_id: Input should be")


def test_broken_json_document_is_an_error_not_silence(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    path.write_text('{"conversation_id": "c-1", "channel": ', encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_conversations(path)


def test_pairs_merge_turns_drop_pleasantries_and_add_context(export: dict[str, Conversation]) -> None:
    pairs = extract_pairs(export["c-1001"])

    assert [(p.question, p.answer) for p in pairs] == [
        (
            "Siparişim ne zaman kargoya verilir? Sipariş no: 12345678901, telefonum 0532 123 45 67",
            "Siparişiniz bugün saat 17:00'ye kadar kargoya verilecek. "
            "Kargo takip numaranız SMS ile iletilecektir.",
        ),
        (
            # "Peki taksit var mı?" alone does not say what is being bought.
            "Siparişim ne zaman kargoya verilir? Sipariş no: 12345678901, telefonum 0532 123 45 67 "
            "Peki taksit var mı?",
            "Evet, tüm kredi kartlarına 9 aya kadar taksit seçeneğimiz var.",
        ),
    ]
    assert pairs[0].ts == datetime.fromisoformat("2024-05-02T10:03:00+03:00")
    assert pairs[0].agent_id == "a-7"
    assert pairs[1].tags == ("kargo", "taksit") and pairs[1].csat == 5


def test_open_greeting_only_and_bot_answered_conversations_give_nothing(
    export: dict[str, Conversation],
) -> None:
    assert extract_pairs(export["c-1004"]) == []  # open
    assert extract_pairs(export["c-1005"]) == []  # "Merhaba", "İYİ GÜNLER", "İyi günler dileriz 😊"
    # Only a bot answered the question, and the agent's campaign message came before it.
    assert extract_pairs(export["c-1009"]) == []


def test_status_written_in_capitals_is_still_resolved(export: dict[str, Conversation]) -> None:
    assert [p.question for p in extract_pairs(export["c-1008"])] == ["iade nasıl yapılıyor?"]


@pytest.mark.parametrize(
    "pleasantry",
    ["Merhaba", "İYİ GÜNLER", "IYI GUNLER", "Selamlar 👋", "teşekkür ederim", "Teşekkürler 🙏", "tesekkurler",
     "sağolun", "Thanks!", "hi", "Tamam, teşekkürler.", "Rica ederiz, iyi günler dileriz."],
)  # fmt: skip
def test_pleasantry_only_turns_never_become_questions_or_answers(pleasantry: str) -> None:
    chat = conversation(
        ("customer", "Kargo ücreti ne kadar?"),
        ("customer", pleasantry),
        ("agent", pleasantry),
        ("agent", "250 TL üzeri ücretsiz."),
    )
    assert [(p.question, p.answer) for p in extract_pairs(chat)] == [
        ("Kargo ücreti ne kadar?", "250 TL üzeri ücretsiz.")
    ]


def test_words_that_only_look_like_pleasantries_are_kept() -> None:
    chat = conversation(
        ("customer", "Merhaba, hiç stok gelecek mi?"),
        (
            "agent",
            "Gelecek hafta gelecek. Stok gelince haber vermemiz için numaranızı yazmanızı rica ederiz.",
        ),
        ("customer", "Tamam mı yani, kesin mi?"),
        ("agent", "Kesin, iyi günler."),
    )
    assert [(p.asked, p.answer) for p in extract_pairs(chat)] == [
        (
            "Hiç stok gelecek mi?",
            "Gelecek hafta gelecek. Stok gelince haber vermemiz için numaranızı yazmanızı rica ederiz.",
        ),
        ("Tamam mı yani, kesin mi?", "Kesin"),
    ]


def test_system_and_bot_turns_are_skipped_and_never_answers() -> None:
    chat = conversation(
        ("customer", "İade kargo kodu nedir?"),
        ("bot", "Menüden 2'yi seçin."),
        ("system", "Temsilciye aktarıldı"),
        ("customer", "Sipariş 4567 için"),
        ("agent", "Kodunuz SMS ile gönderildi."),
    )
    assert [(p.question, p.answer) for p in extract_pairs(chat)] == [
        ("İade kargo kodu nedir? Sipariş 4567 için", "Kodunuz SMS ile gönderildi.")
    ]


def test_near_duplicate_replies_across_conversations_collapse_keeping_the_best(
    export: dict[str, Conversation],
) -> None:
    pairs = [p for c in export.values() for p in extract_pairs(c)]
    assert len(pairs) == 5

    collapsed = collapse_duplicates(pairs)

    by_conversation = {(p.conversation_id, p.position): p.count for p in collapsed}
    # c-1002 repeats c-1001's first reply word for word; c-1008 rephrases c-1007's slightly
    # and has the happier customer (csat 5 against 2), so its copy is the one kept.
    assert by_conversation == {("c-1001", 0): 2, ("c-1001", 1): 1, ("c-1008", 0): 2}


def reply(answer: str) -> QAPair:
    return QAPair("c", "whatsapp", 0, "Ne zaman gelir?", answer, datetime(2024, 5, 2))


def test_different_replies_are_not_collapsed() -> None:
    pairs = [
        reply("Kargonuz yarın teslim edilecek."),
        reply("Kargonuz bugün teslim edilecek."),
        reply("İade talebiniz onaylandı."),
    ]
    assert [p.count for p in collapse_duplicates(pairs)] == [1, 1, 1]
    assert [p.count for p in collapse_duplicates(pairs, similarity=85)] == [2, 1]


def test_chunks_carry_the_conversation_and_redacted_text(export: dict[str, Conversation]) -> None:
    pairs = collapse_duplicates(extract_pairs(export["c-1001"]) + extract_pairs(export["c-1002"]))

    chunks = pairs_to_chunks("magaza-1", pairs, redact=Redactor())

    first = chunks[0]
    assert first.source == "chat"
    assert first.doc_id == "chat:c-1001" and first.chunk_id == "pair-0"
    assert first.text == (
        "Müşteri: Siparişim ne zaman kargoya verilir? Sipariş no: 12345678901, telefonum [TELEFON]\n"
        "Temsilci: Siparişiniz bugün saat 17:00'ye kadar kargoya verilecek. "
        "Kargo takip numaranız SMS ile iletilecektir."
    )
    assert first.metadata == {
        "conversation_id": "c-1001",
        "channel": "whatsapp",
        "ts": "2024-05-02T10:03:00+03:00",
        "question": "Siparişim ne zaman kargoya verilir? Sipariş no: 12345678901, telefonum [TELEFON]",
        "asked": "Siparişim ne zaman kargoya verilir? Sipariş no: 12345678901, telefonum [TELEFON]",
        "answer": "Siparişiniz bugün saat 17:00'ye kadar kargoya verilecek. Kargo takip numaranız SMS ile iletilecektir.",
        "tags": ["kargo", "taksit"],
        "csat": 5,
        "agent_id": "a-7",
        "count": 2,
        "auto_answer": True,
    }
    # Re-importing the same export overwrites the same points.
    again = pairs_to_chunks("magaza-1", collapse_duplicates(extract_pairs(export["c-1001"])))
    assert [c.point_id for c in again] == [c.point_id for c in chunks[:2]]


def test_the_documented_example_imports_as_described() -> None:
    doc = (Path(__file__).parents[1] / "docs" / "conversation-format.md").read_text(encoding="utf-8")
    example = doc.split("```json\n", 1)[1].split("```", 1)[0]

    result = parse_conversations(example)

    assert result.problems == []
    assert [(p.question, p.answer) for p in extract_pairs(result.conversations[0])] == [
        ("Siparişim ne zaman kargoya verilir?", "Bugün 17:00'ye kadar kargoya verilecek."),
        ("Siparişim ne zaman kargoya verilir? Peki taksit var mı?", "Evet, 9 aya kadar taksit var."),
    ]


# --- stand-alone knowledge ------------------------------------------------------------------

MENU = "Hoş geldiniz 👋 Sipariş durumu için 1, iade ve değişim için 2, diğer konular için 3 yazın."


def test_a_digit_typed_back_to_a_bot_menu_is_not_part_of_the_question() -> None:
    menu = conversation(
        ("customer", "iyi günler blender iade etmek istiyorum nasıl yapıcam"),
        ("bot", MENU),
        ("customer", "2"),
        ("system", "Görüşme İade ve Değişim kuyruğuna aktarıldı"),
        ("agent", "Hesabım > Siparişlerim'den İade Talebi Oluştur'a tıklayın."),
    )
    agent_asks = conversation(
        ("customer", "Taksit yapıyor musunuz, kredi kartıyla ödeyeceğim?"),
        ("agent", "Kaç taksit istersiniz?"),
        ("customer", "3"),  # answers the agent, not a menu: it says what the customer wants
        ("agent", "750 TL üzeri alışverişlerde 3 taksit vade farksız."),
    )

    assert [p.question for p in extract_pairs(menu)] == [
        "iyi günler blender iade etmek istiyorum nasıl yapıcam"
    ]
    assert [p.question for p in extract_pairs(agent_asks)] == [
        "Taksit yapıyor musunuz, kredi kartıyla ödeyeceğim?",
        "Taksit yapıyor musunuz, kredi kartıyla ödeyeceğim? 3",
    ]


def test_a_follow_up_is_stored_with_its_subject_and_keeps_the_customers_words() -> None:
    chat = conversation(
        ("customer", "Öğrenci indiriminiz var mı?"),
        ("agent", "Evet, öğrencilere %15 indirim uyguluyoruz."),
        ("customer", "business class da olur mu"),
        ("agent", "İndirim yalnızca Economy Class kabininde geçerli."),
        ("customer", "Bagaj hakkı ekonomi sınıfında kaç kilogram oluyor, kabin bagajı da dahil mi?"),
        ("agent", "Ekonomi sınıfında 20 kg bagaj ve 8 kg kabin bagajı hakkınız var."),
        ("customer", "peki business class'ta"),
        ("agent", "Business Class'ta 30 kg bagaj ve 2 adet 8 kg kabin bagajı hakkınız var."),
    )

    pairs = extract_pairs(chat)
    chunks = pairs_to_chunks("havayolu", pairs)

    follow_up = chunks[1].metadata
    assert follow_up["question"] == "Öğrenci indiriminiz var mı? business class da olur mu"
    assert follow_up["asked"] == "business class da olur mu"
    assert follow_up["answer"] == "İndirim yalnızca Economy Class kabininde geçerli."
    assert chunks[1].text == (
        "Müşteri: Öğrenci indiriminiz var mı? business class da olur mu\n"
        "Temsilci: İndirim yalnızca Economy Class kabininde geçerli."
    )
    # A question that stands on its own becomes the subject of the follow-ups after it.
    assert [p.question for p in pairs[2:]] == [
        "Bagaj hakkı ekonomi sınıfında kaç kilogram oluyor, kabin bagajı da dahil mi?",
        "Bagaj hakkı ekonomi sınıfında kaç kilogram oluyor, kabin bagajı da dahil mi? peki business class'ta",
    ]
    assert all(c.metadata["auto_answer"] for c in chunks)


def test_what_the_customer_tells_an_agent_who_asked_is_stored_after_the_question() -> None:
    chat = conversation(
        ("customer", "kapıda ödeme yapmıştım iade ettim para nasıl gelecek"),
        ("agent", "Ücreti adınıza kayıtlı bir banka hesabına gönderiyoruz. IBAN bilginizi paylaşır mısınız?"),
        ("customer", "TR31 0009 9000 0012 3456 7890 12 Mehmet Yılmaz, hesap sahibi benim, teşekkürler"),
        ("agent", "Ücret en geç 3 iş günü içinde hesabınıza gönderilecek."),
    )

    chunks = pairs_to_chunks("magaza-1", extract_pairs(chat), redact=Redactor())

    assert chunks[1].metadata["question"].startswith("kapıda ödeme yapmıştım iade ettim para nasıl gelecek ")
    assert "0009 9000" not in chunks[1].text
    assert chunks[0].metadata["auto_answer"] is False  # it asks for the IBAN


def test_a_follow_up_with_nothing_before_it_is_for_suggestions_only() -> None:
    chat = conversation(
        ("customer", None),  # a photo of the product
        ("customer", "bunun fiyatı ne kadar"),
        ("agent", "Bu ürünün fiyatı 1.299 TL, kargo ücretsiz."),
    )

    (pair,) = extract_pairs(chat)

    assert needs_context(pair) == "no subject"
    assert pairs_to_chunks("magaza-1", [pair])[0].metadata["auto_answer"] is False


def test_a_reply_corrected_later_in_the_chat_gives_way_to_the_correction() -> None:
    chat = conversation(
        ("customer", "kargo ücretsiz mi"),
        ("agent", "Merhaba 😊 500 TL üzeri siparişlerde kargo ücretsiz."),
        ("customer", "sepetim 620 tl ama kargo ücreti çıktı"),
        (
            "agent",
            "Kusura bakmayın, yanlış bilgi verdim. Ücretsiz kargo limiti 750 TL; altında kargo 49,90 TL.",
        ),
        ("customer", "peki Evim Plus üyelerine de ücretli mi?"),
        ("agent", "Evim Plus üyelerine tutar fark etmeksizin kargo ücretsiz."),
    )

    pairs = extract_pairs(chat)

    settled = "Ücretsiz kargo limiti 750 TL; altında kargo 49,90 TL."
    assert [(p.asked, p.answer) for p in pairs] == [
        ("kargo ücretsiz mi", settled),
        ("sepetim 620 tl ama kargo ücreti çıktı", settled),
        (
            "peki Evim Plus üyelerine de ücretli mi?",
            "Evim Plus üyelerine tutar fark etmeksizin kargo ücretsiz.",
        ),
    ]
    assert pairs[0].ts == pairs[1].ts  # the settled reply's time, not the wrong one's
    assert not any("500" in c.metadata["answer"] for c in pairs_to_chunks("magaza-1", pairs))


def test_a_second_agent_correcting_the_first_settles_it_and_an_apology_again_changes_nothing() -> None:
    chat = conversation(
        ("customer", "iade süresi kaç gün"),
        ("agent", "Merhaba, 30 gün içinde iade edebilirsiniz.", "a-5"),
        ("customer", "süper 20 gün oldu o zaman iade ediyorum"),
        ("system", "Görüşme a-1 temsilcisine aktarıldı"),
        (
            "agent",
            "Merhaba, arkadaşımın verdiği bilgi için özür dileriz, düzeltmem gerekiyor: iade süresi "
            "ürünü teslim aldığınız tarihten itibaren 14 gün.",
            "a-1",
        ),
        ("customer", "ya ama arkadaşınız 30 dedi"),
        (
            "agent",
            "Haklısınız, yanlış bilgilendirme için tekrar özür dileriz. İade süresi 14 gün olduğu için "
            "iadeyi alamıyoruz.",
            "a-1",
        ),
    )

    pairs = extract_pairs(chat)

    settled = "İade süresi ürünü teslim aldığınız tarihten itibaren 14 gün."
    assert [(p.asked, p.answer, p.agent_id) for p in pairs] == [
        ("iade süresi kaç gün", settled, "a-1"),
        ("süper 20 gün oldu o zaman iade ediyorum", settled, "a-1"),
        ("ya ama arkadaşınız 30 dedi", "İade süresi 14 gün olduğu için iadeyi alamıyoruz.", "a-1"),
    ]


def test_a_correction_after_a_hold_and_one_in_the_same_turn_leave_only_the_settled_reply() -> None:
    chat = conversation(
        ("customer", "açıköğretim öğrencisiyim edu.tr mailim yok öğrenci indirimi alamıyor muyum"),
        ("agent", "Maalesef öğrenci indirimi yalnızca .edu.tr uzantılı e-posta ile doğrulanabiliyor."),
        ("customer", "ama aöf öğrencilerine de indirim yapan yerler var"),
        ("agent", "Kontrol edip dönüyorum."),
        ("agent", "Düzeltme yapmam gerekiyor, kusura bakmayın: e-Devlet öğrenci belgesiyle de doğruluyoruz."),
        ("customer", "belge kaç ay geçerli oluyor peki sizin için"),
        ("agent", "Belgenin son 6 ay içinde alınmış olması gerekiyor."),
        ("agent", "Pardon, yanlış yazmışım: belgenin son 3 ay içinde alınmış olması gerekiyor."),
    )

    pairs = extract_pairs(chat)

    assert [p.answer for p in pairs] == [
        "E-Devlet öğrenci belgesiyle de doğruluyoruz.",
        "E-Devlet öğrenci belgesiyle de doğruluyoruz.",
        "Belgenin son 3 ay içinde alınmış olması gerekiyor.",
    ]


@pytest.mark.parametrize(
    "apology",
    [
        "Gecikme için özür dileriz, kargo firmasıyla görüşüyoruz.",
        "Pardon, geç dönüş için kusura bakmayın. Kargonuz yarın teslim edilecek.",
        "Düzeltme talebiniz alındı, kargo adresiniz güncellenecek.",
        "Kusura bakmayın, aslında kargonuz hangi ilçeye gidiyor?",
    ],
)
def test_an_apology_that_corrects_nothing_leaves_earlier_replies_alone(apology: str) -> None:
    chat = conversation(
        ("customer", "kargom 4 gündür aynı yerde hareket yok"),
        ("agent", "Kargo 7 iş günü içinde bulunamazsa ürün yeniden gönderilir."),
        ("customer", "hala gelmedi ama"),
        ("agent", apology),
    )

    assert extract_pairs(chat)[0].answer == "Kargo 7 iş günü içinde bulunamazsa ürün yeniden gönderilir."


def test_holds_and_news_after_an_acknowledgement_are_not_part_of_an_answer() -> None:
    chat = conversation(
        ("customer", "kargom 4 gündür aynı yerde hareket yok EM24795530"),
        ("agent", "Merhaba, kontrol ediyorum, birkaç dakika bekleyebilir misiniz?"),
        ("agent", "Kargo 7 iş günü içinde bulunamazsa ürün yeniden gönderilir."),
        ("customer", "ok bekliyorum"),
        ("agent", "Merhaba, paketiniz bulundu ve bugün dağıtıma çıktı."),
    )

    assert [(p.question, p.answer) for p in extract_pairs(chat)] == [
        (
            "kargom 4 gündür aynı yerde hareket yok EM24795530",
            "Kargo 7 iş günü içinde bulunamazsa ürün yeniden gönderilir.",
        )
    ]


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("İade süresi teslim tarihinden itibaren 14 gün.", None),
        ("Evet, 14 gün içinde iade kodu alıp ücretsiz gönderebilirsiniz.", None),
        ("Evet.", "bare reply"),
        ("Tabii, iyi alışverişler dileriz.", "bare reply"),
        ("Olur.", "bare reply"),
        ("Yukarıda belirttiğim gibi 14 gün içinde iade edebilirsiniz.", "refers back"),
        ("O zaman yarınki gönderim yine gelecek.", "refers back"),
        ("Sipariş numaranızı paylaşır mısınız?", "asks back"),
        ("Siparişinizi iptal ettim, ücret 2–7 iş günü içinde kartınıza yansır.", "customer's own case"),
        ("İadeniz dün onaylandı; ücret 3 iş günü içinde hesabınıza geçer.", "customer's own case"),
        ("Doğum tarihinizi 10 gün önce kaydetmişsiniz, kupon için 30 gün gerekiyor.", "customer's own case"),
    ],
)
def test_replies_that_need_their_conversation_are_for_suggestions_only(
    reply: str, reason: str | None
) -> None:
    chat = conversation(("customer", "İade süresi kaç gün, nasıl iade edebilirim?"), ("agent", reply))

    (pair,) = extract_pairs(chat)

    assert needs_context(pair) == reason
    assert pairs_to_chunks("magaza-1", [pair])[0].metadata["auto_answer"] is (reason is None)


# --- the shop-tr-dev bundle -----------------------------------------------------------------

BUNDLES = [
    Path(__file__).resolve().parents[1] / "tests" / "data" / "shop-tr-dev",
    Path("/work/shared/data/shop-tr-dev"),
]
SHOP = next((path for path in BUNDLES if (path / "knowledge" / "chats.jsonl").is_file()), None)
# Replies the agents took back in the bundle's chats (SOURCE.md, "Poor or wrong replies").
TAKEN_BACK = {
    "c-004": "500 tl uzeri",
    "c-006": "suresi dolmus",
    "c-014": "30 gun",
    "c-027": "yalnizca .edu.tr",
}


@pytest.mark.skipif(SHOP is None, reason=f"shop-tr-dev bundle not found in {' or '.join(map(str, BUNDLES))}")
def test_shop_chats_store_only_settled_answers_and_no_menu_digits() -> None:
    assert SHOP is not None
    imported = load_conversations(SHOP / "knowledge" / "chats.jsonl")
    pairs = {c.conversation_id: extract_pairs(c) for c in imported.conversations}
    chunks = [chunk for found in pairs.values() for chunk in pairs_to_chunks("evim-market", found)]
    queries = [json.loads(line) for line in (SHOP / "queries.jsonl").read_text(encoding="utf-8").splitlines()]

    for conversation_id, stale in TAKEN_BACK.items():
        answers = [fold_turkish(p.answer) for p in pairs[conversation_id]]
        assert not any(stale in answer for answer in answers), conversation_id
        # The reply first given, the one that was wrong, now holds every fact the labels expect.
        for query in queries:
            if f"chat:{conversation_id}" in query["relevant_ids"]:
                assert fold_turkish(query["reference_answer"]) in answers[0], (conversation_id, query["id"])
    # c-001, c-005, c-011, c-022 and c-028 answer a bot menu with "1", "2" or "3".
    assert [
        c.metadata["question"] for c in chunks if re.search(r"(?<!\S)\d{1,2}$", c.metadata["question"])
    ] == []
    assert [p.asked for p in pairs["c-007"]] == ["Merhaba taksit yapiyomusunuz", "peki banka kartina"]
    assert pairs["c-007"][1].question == "Merhaba taksit yapiyomusunuz peki banka kartina"
