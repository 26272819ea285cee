"""Feedback, the learning loop (accepted/edited replies become `chat` knowledge), past replies and audit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from assist.learning import QUERY_KEY, citations_of, query_of
from assist.records import AssistRecords
from ingestion.sources import TextDocument, chat_items
from retrieval.embedders import UseMultilingualEmbedder
from retrieval.models import SearchFilters
from tests.assist_env import SHOP, AssistEnv, add_documents, add_shop_faq, ask, conversation, make_env

GIFT_QUESTION = "Siparişime hediye paketi ve not ekleyebilir miyim?"
GIFT_REPLY = (
    "Evet, ödeme adımında Hediye paketi seçeneğini işaretlerseniz siparişiniz ücretsiz hediye paketiyle "
    "ve notunuzla gönderilir. Sorunuz olursa 0532 999 88 77 numaralı hattımızı arayabilirsiniz."
)


@pytest.fixture
def shop(tmp_path, use_embedder: UseMultilingualEmbedder) -> Iterator[AssistEnv]:  # noqa: ANN001
    env = make_env(tmp_path / "data", use_embedder)
    add_shop_faq(env)
    yield env
    env.close()


def test_an_edited_reply_is_learned_and_suggested_as_a_past_reply_next_time(shop: AssistEnv) -> None:
    # A thin policy page is all the shop knows about gifts: a weak suggestion the agent improves.
    add_documents(
        shop, SHOP, [TextDocument("hediye.md", "Hediye paketi seçeneğimiz vardır.", "Hediye paketi")]
    )
    service = shop.service()
    before = service.suggest(SHOP, ask(GIFT_QUESTION, conversation_id="c-100"))
    assert before.suggestions, "the agent needs a suggestion to edit"
    assert all(s.strategy != "past_reply" for s in before.suggestions)
    result = service.feedback(SHOP, before.suggestions[0].id, "edited", GIFT_REPLY)
    assert result.action == "edited" and result.learned_doc_id == f"feedback:{before.suggestions[0].id}"

    # The learned reply is redacted like every other piece of knowledge.
    hits = shop.index.search(
        SHOP, GIFT_QUESTION, filters=SearchFilters(doc_ids=(result.learned_doc_id,))
    ).hits
    (learned,) = hits
    assert learned.source == "chat" and "[TELEFON]" in learned.text and "0532 999 88 77" not in learned.text
    assert learned.text.startswith("Müşteri: ") and "\nTemsilci: Evet, ödeme adımında" in learned.text

    after = service.suggest(SHOP, ask("Hediye paketi yapıyor musunuz, pakete not eklenebiliyor mu?", "c-101"))
    top = after.suggestions[0]
    assert top.strategy == "past_reply" and top.text.startswith("Evet, ödeme adımında Hediye paketi")
    assert "[TELEFON]" in top.text and top.citations[0].doc_id == result.learned_doc_id
    assert top.citations[0].source == "chat"


def test_accepted_uses_the_suggestion_text_and_rejected_teaches_nothing(shop: AssistEnv) -> None:
    service = shop.service()
    response = service.suggest(SHOP, ask("Kargo ücreti ne kadar?"))
    first, *others = response.suggestions
    accepted = service.feedback(SHOP, first.id, "accepted")
    assert accepted.learned_doc_id is not None
    stored = shop.index.search(
        SHOP, "kargo ücreti", filters=SearchFilters(doc_ids=(accepted.learned_doc_id,))
    ).hits
    assert stored and stored[0].metadata["answer"] == first.text
    assert stored[0].metadata["question"] == response.query

    rejected_id = others[0].id if others else service.suggest(SHOP, ask("Taksit var mı?")).suggestions[0].id
    rejected = service.feedback(SHOP, rejected_id, "rejected")
    assert rejected.learned_doc_id is None
    assert shop.index.count(SHOP, SearchFilters(doc_ids=(f"feedback:{rejected_id}",))) == 0


def test_feedback_errors(shop: AssistEnv) -> None:
    service = shop.service()
    suggestion = service.suggest(SHOP, ask("Kargo ücreti ne kadar?")).suggestions[0]
    with pytest.raises(LookupError):
        service.feedback(SHOP, "no-such-suggestion", "accepted")
    add_shop_faq(shop, "baska-firma")
    with pytest.raises(LookupError):
        service.feedback("baska-firma", suggestion.id, "accepted")  # another tenant's suggestion
    with pytest.raises(ValueError):
        service.feedback(SHOP, suggestion.id, "edited")  # edited needs the text the agent sent


def test_imported_past_replies_are_first_class_suggestions(shop: AssistEnv) -> None:
    export = (
        '{"conversation_id": "c-9001", "channel": "whatsapp", "status": "resolved", "messages": ['
        '{"role": "customer", "text": "Kırmızı koltuk takımı için ahşap ayak rengini değiştirebiliyor musunuz?",'
        ' "ts": "2024-05-02T10:15:00+03:00"},'
        '{"role": "agent", "text": "Evet, koltuk takımlarında ceviz, meşe veya siyah ayak seçebilirsiniz; '
        'siparişinize not olarak yazmanız yeterli.", "ts": "2024-05-02T10:17:00+03:00", "agent_id": "a-7"}]}'
    )
    chats = chat_items(SHOP, export.encode(), filename="export.jsonl")
    assert shop.ingestor.run(SHOP, "chats", chats.items).status == "succeeded"
    response = shop.service().suggest(SHOP, ask("Koltuğun ayaklarının rengini değiştirmek mümkün mü?"))
    top = response.suggestions[0]
    assert top.strategy == "past_reply" and top.text.startswith("Evet, koltuk takımlarında ceviz")
    assert top.citations[0].doc_id == "chat:c-9001"


def test_suggestions_store_only_redacted_text_and_audit_holds_no_message_text(shop: AssistEnv) -> None:
    service = shop.service()
    chat = conversation(
        ("customer", "Merhaba, TC kimlik numaram 10000000146, telefonum 0532 123 45 67."),
        ("agent", "Merhaba, nasıl yardımcı olabilirim?"),
        ("customer", "Kargo ücreti ne kadar?"),
        conversation_id="c-pii",
    )
    response = service.suggest(SHOP, chat)
    assert "10000000146" not in response.query and "0532" not in response.query
    stored = AssistRecords(shop.registry).get_suggestion(SHOP, response.suggestions[0].id)
    assert stored is not None
    assert (
        query_of(stored.citations) == response.query
        and QUERY_KEY not in citations_of(stored.citations)[0].model_dump()
    )
    assert "10000000146" not in repr(stored)
    service.resolve(SHOP, chat)
    for entry in AssistRecords(shop.registry).list_audit(SHOP):
        assert entry.conversation_id == "c-pii"
        assert "Kargo" not in repr(entry) and "10000000146" not in repr(entry) and "0532" not in repr(entry)
    kinds = {e.kind for e in AssistRecords(shop.registry).list_audit(SHOP)}
    assert kinds == {"suggest", "resolve"}
