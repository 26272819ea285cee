"""Past conversations become question/answer chunks; noise, open chats and bad lines do not."""

from __future__ import annotations

import json
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
    pairs_to_chunks,
    parse_conversations,
)
from ingestion.redact import Redactor

FIXTURES = Path(__file__).parent / "fixtures" / "chats"


@pytest.fixture(scope="module")
def export() -> dict[str, Conversation]:
    result = load_conversations(FIXTURES / "conversations.jsonl")
    return {c.conversation_id: c for c in result.conversations}


def conversation(*messages: tuple[str, str], status: str = "resolved", **extra: Any) -> Conversation:
    return Conversation.model_validate(
        {
            "conversation_id": extra.pop("conversation_id", "c-test"),
            "channel": "whatsapp",
            "status": status,
            "messages": [
                {"role": role, "text": text, "ts": f"2024-05-02T10:{i:02d}:00+03:00", "agent_id": "a-1"}
                for i, (role, text) in enumerate(messages)
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
    assert [(p.question, p.answer) for p in extract_pairs(chat)] == [
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
        "answer": "Siparişiniz bugün saat 17:00'ye kadar kargoya verilecek. Kargo takip numaranız SMS ile iletilecektir.",
        "tags": ["kargo", "taksit"],
        "csat": 5,
        "agent_id": "a-7",
        "count": 2,
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
