"""Auto-resolve on a tenant KB (a 32-entry Turkish shop FAQ): the issue's figure and every handoff reason.

The figure: off-domain questions (other subjects entirely) are handed off >= 90% of the time, while
paraphrased in-domain FAQ questions are answered. The questions live in
tests/fixtures/assist/resolve_questions.json and were written before the thresholds were set.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from assist.handoff import ResolveThresholds
from assist.models import ResolveResponse
from assist.records import AssistRecords
from ingestion.sources import sheet_item
from retrieval.embedders import UseMultilingualEmbedder
from tests.assist_env import (
    SHOP,
    SHOP_FAQ,
    SHOP_THRESHOLDS,
    AssistEnv,
    ask,
    conversation,
    shop_env,
    shop_questions,
)


@pytest.fixture(scope="module")
def shop(
    tmp_path_factory: pytest.TempPathFactory, use_embedder: UseMultilingualEmbedder
) -> Iterator[AssistEnv]:
    yield from shop_env(tmp_path_factory, use_embedder)


def _resolve(env: AssistEnv, text: str, tenant: str = SHOP) -> ResolveResponse:
    return env.service().resolve(tenant, ask(text))


def test_off_domain_questions_are_handed_off_and_in_domain_faq_questions_answered(shop: AssistEnv) -> None:
    questions = shop_questions()
    in_domain = [
        (q["question"], q["faq_question"], _resolve(shop, q["question"])) for q in questions["in_domain"]
    ]
    off_domain = [(q, _resolve(shop, q)) for q in questions["off_domain"]]

    answered = [r for _, _, r in in_domain if r.decision == "answer"]
    right_entry = [1 for _, faq_q, r in in_domain if r.decision == "answer" and r.citations[0].title == faq_q]
    handed_off = [r for _, r in off_domain if r.decision == "handoff"]
    answered_rate = len(answered) / len(in_domain)
    handoff_rate = len(handed_off) / len(off_domain)
    print(
        f"\nshop FAQ resolve: in-domain answered {answered_rate:.3f} ({len(answered)}/{len(in_domain)}, "
        f"{len(right_entry)} with the intended entry), off-domain handed off {handoff_rate:.3f} "
        f"({len(handed_off)}/{len(off_domain)})"
    )
    assert handoff_rate >= 0.90
    # A 32-row FAQ certifies a 90% target at a strict threshold: fewer paraphrases are answered
    # automatically, and every one that is cites the intended entry.
    assert answered_rate >= 0.1
    assert len(right_entry) == len(answered)
    suggested = [shop.service().suggest(SHOP, ask(q["question"])) for q in questions["in_domain"]]
    top3 = [
        any(c.title == q["faq_question"] for s in r.suggestions[:3] for c in s.citations)
        for q, r in zip(questions["in_domain"], suggested, strict=True)
    ]
    print(f"intended entry among the first 3 suggestions: {sum(top3)}/{len(top3)}")
    assert sum(top3) >= 0.85 * len(in_domain)
    threshold = shop.service().policy(SHOP).threshold
    for response in answered:
        assert response.mode == "extractive" and response.reason is None
        assert threshold is not None and response.confidence >= threshold
        (citation,) = response.citations
        assert citation.source == "faq" and response.text and response.text[:60] in citation.snippet
    for response in handed_off:
        assert response.reason in ("no_knowledge", "low_confidence")
        assert response.summary and len(response.summary.splitlines()) == 3


def test_answer_is_the_faq_answer_with_its_citation(shop: AssistEnv) -> None:
    response = _resolve(shop, "Aldığım ürünü kaç gün içinde iade edebilirim?")
    assert response.decision == "answer"
    assert response.text == "Ürünü teslim aldığınız tarihten itibaren 14 gün içinde iade edebilirsiniz."
    assert response.citations[0].title == "İade süresi kaç gün?" and response.language == "tr"


def test_customer_asking_for_a_human_is_handed_off_with_a_three_line_summary(shop: AssistEnv) -> None:
    response = shop.service().resolve(
        SHOP,
        conversation(
            ("customer", "Kargom hâlâ gelmedi."),
            ("bot", "Siparişiniz 1-2 iş günü içinde kargoya verilir."),
            ("customer", "Lütfen beni bir müşteri temsilcisine bağlayın."),
        ),
    )
    assert response.decision == "handoff" and response.reason == "customer_requested_human"
    wants, tried, why = response.summary.splitlines()  # type: ignore[union-attr]
    assert wants.startswith("Müşterinin talebi:") and "temsilcisine" in wants
    assert tried.startswith("Denenen:") and why.startswith("Aktarma nedeni:") and "temsilci" in why
    assert (
        response.text == "Sorunuzu bir müşteri temsilcimize aktarıyorum; en kısa sürede size yardımcı olacak."
    )


@pytest.mark.parametrize(
    ("message", "topic"),
    [
        ("Kartımdan benim yapmadığım bir harcama çekilmiş, dolandırıldım galiba", "dolandırıcılık"),
        ("Avukatıma danıştım, size dava açacağım", "hukuki"),
        ("KVKK kapsamında kişisel verilerimin silinmesini istiyorum", "kişisel veri talebi"),
        ("Someone stole my card and made unauthorized purchases", "dolandırıcılık"),
    ],
)
def test_sensitive_topics_are_handed_off_before_anything_is_answered(
    shop: AssistEnv, message: str, topic: str
) -> None:
    response = _resolve(shop, message)
    assert response.decision == "handoff" and response.reason == "sensitive_topic"
    assert topic in response.summary  # type: ignore[operator]
    assert "otomatik yanıt denenmedi" in response.summary  # type: ignore[operator]


def test_an_angry_customer_is_handed_off_even_when_the_kb_knows_the_answer(shop: AssistEnv) -> None:
    calm = _resolve(shop, "Kargo ücreti ne kadar?")
    angry = _resolve(shop, "REZALET!!! Kargo ücreti ne kadar, bu ne saçmalık?")
    assert calm.decision == "answer"
    assert angry.decision == "handoff" and angry.reason == "negative_sentiment"


def test_tenant_thresholds_override_the_defaults(shop: AssistEnv) -> None:
    question = "Kargo ücreti ne kadar?"
    assert _resolve(shop, question).decision == "answer"
    shop.registry.create_tenant(
        "lale-strict", "Lale (katı)", {"resolve_thresholds": {**SHOP_THRESHOLDS, "min_confidence": 0.99}}
    )
    shop.ingestor.run("lale-strict", "faq", [sheet_item("lale-strict", SHOP_FAQ, "faq")])
    strict = _resolve(shop, question, tenant="lale-strict")
    assert strict.decision == "handoff" and strict.reason == "low_confidence"
    # The default 98% target cannot be certified on 32 rows: suggest-only, and the summary says why.
    shop.registry.create_tenant("lale-default", "Lale (varsayılan)")
    shop.ingestor.run("lale-default", "faq", [sheet_item("lale-default", SHOP_FAQ, "faq")])
    default = _resolve(shop, question, tenant="lale-default")
    assert default.decision == "handoff" and "yeterli kanıt yok" in (default.summary or "")
    assert shop.service().policy("lale-default").mode == "suggest_only"
    assert ResolveThresholds.from_tenant({"min_confidence": 0.7, "unknown": 0.1}) == ResolveThresholds(
        min_confidence=0.7
    )


def test_tenant_without_knowledge_hands_off_with_no_knowledge(shop: AssistEnv) -> None:
    shop.registry.create_tenant("bos", "Boş Firma")
    response = _resolve(shop, "Kargo ücreti ne kadar?", tenant="bos")
    assert response.decision == "handoff" and response.reason == "no_knowledge" and not response.citations
    assert "eşleşen içerik yok" in response.summary  # type: ignore[operator]


def test_sen_tone_and_english_customers_get_their_own_handoff_message(shop: AssistEnv) -> None:
    shop.registry.create_tenant("lale-sen", "Lale (samimi)", {"tone": "sen"})
    tr = _resolve(shop, "Bir insanla konuşmak istiyorum", tenant="lale-sen")
    assert tr.reason == "customer_requested_human" and tr.text and "sana yardımcı" in tr.text
    en = _resolve(shop, "I want to talk to a real person please", tenant=SHOP)
    assert en.language == "en" and en.text and en.text.startswith("I am passing your question")
    # The agent summary stays Turkish whatever the customer's language.
    assert en.summary and en.summary.startswith("Müşterinin talebi:")


def test_resolve_is_audited_with_reason_and_without_text(shop: AssistEnv) -> None:
    service = shop.service()
    service.resolve(SHOP, ask("Fenerbahçe dün akşamki maçı kaç kaç bitirdi?", conversation_id="audit-1"))
    entry = next(
        e for e in AssistRecords(shop.registry).list_audit(SHOP, limit=500) if e.conversation_id == "audit-1"
    )
    assert entry.kind == "resolve" and entry.decision == "handoff"
    assert entry.reason in ("no_knowledge", "low_confidence") and entry.provider == "extractive"
    assert entry.retrieved_ids and entry.latency_ms is not None and entry.confidence is not None
    assert "Fenerbahçe" not in repr(entry)


def test_unknown_tenant_is_a_lookup_error(shop: AssistEnv) -> None:
    with pytest.raises(LookupError):
        _resolve(shop, "Kargo ücreti ne kadar?", tenant="yok-boyle-bir-firma")


def test_an_english_question_on_a_turkish_kb_is_suggested_but_not_auto_answered_in_turkish(
    shop: AssistEnv,
) -> None:
    question = "How many days do I have to return a product?"
    suggested = shop.service().suggest(SHOP, ask(question))
    assert suggested.language == "en"
    resolved = _resolve(shop, question)
    assert resolved.decision == "handoff" and resolved.language == "en"


@pytest.mark.parametrize(
    ("question", "code"),
    [
        ("Wo ist meine Bestellung? Ich warte seit einer Woche.", "de"),
        ("Сколько стоит доставка?", "ru"),
        ("كم تكلفة الشحن؟", "ar"),
    ],
)
def test_a_question_in_a_third_language_is_handed_off_not_answered_in_turkish(
    shop: AssistEnv, question: str, code: str
) -> None:
    resolved = _resolve(shop, question)
    assert resolved.decision == "handoff" and resolved.reason == "unsupported_language"
    assert resolved.language == "en" and f"müşterinin dili: {code}" in (resolved.summary or "")
    suggested = shop.service().suggest(SHOP, ask(question))
    assert suggested.note and f"({code})" in suggested.note


def test_turkish_written_without_diacritics_or_informally_is_not_a_foreign_language() -> None:
    from assist.language import foreign_language

    for text in ("kargom nerde kaldi", "iade nasil yapcam", "taksit yapiyomusunuz", "ok", "Kargo ücreti?"):
        assert foreign_language(text) is None, text


def test_suggestions_come_best_first_and_weak_ones_say_why(shop: AssistEnv) -> None:
    service = shop.service()
    threshold = service.policy(SHOP).threshold
    assert threshold is not None
    for question in (
        "Kargo ücreti ne kadar?",
        "Öğretmenlere indirim var mı?",
        "Hediye paketi yapıyor musunuz?",
    ):
        suggestions = service.suggest(SHOP, ask(question)).suggestions
        confidences = [s.confidence for s in suggestions]
        assert confidences == sorted(confidences, reverse=True)
        for s in suggestions:
            assert (s.caution is None) == (s.confidence >= threshold), (question, s)
            if s.caution:
                assert s.caution.startswith("Zayıf eşleşme")
    strong = service.suggest(SHOP, ask("Kargo ücreti ne kadar?")).suggestions[0]
    assert strong.caution is None and strong.citations[0].title == "Kargo ücreti ne kadar?"
