"""The answer verifier and the auto-answer policy: a source must answer *this* question, and the threshold
must meet the tenant's precision target on evidence, or auto-resolution stays off."""

from __future__ import annotations

import subprocess
import sys

import pytest

from assist.confidence import blocked_reason, gather_evidence
from assist.language import match_form
from assist.policy import (
    EvidenceSample,
    choose_policy,
    precision_lower_bound,
    precision_reaches,
    samples_needed,
)
from assist.self_test import OUT_OF_DOMAIN, answers_probe, knowledge_probes
from assist.verify import (
    TenantVocabulary,
    candidate_features,
    default_model,
    has_placeholder,
    missing_words,
    question_kind,
    soft_in,
)
from retrieval.models import SearchHit


def _faq(entry: str, question: str, answer: str, score: float, cosine: float) -> SearchHit:
    return SearchHit(
        point_id=entry,
        tenant_id="t",
        doc_id="faq:sss.csv",
        chunk_id=entry,
        text=f"Soru: {question}\nCevap: {answer}",
        score=score,
        source="faq",
        title=question,
        metadata={"question": question, "answer": answer, "entry_id": entry},
        dense_score=cosine,
    )


STUDENT = _faq("s-1", "Öğrenci indirimi var mı?", "Öğrencilere %10 indirim uyguluyoruz.", 0.9, 0.62)
BIRTHDAY = _faq("s-2", "Doğum günü indirimi var mı?", "Doğum gününüzde 100 TL kupon gönderiyoruz.", 0.7, 0.5)
SHIPPING = _faq("s-3", "Kargo ücreti ne kadar?", "750 TL üzeri ücretsiz, altında 49,90 TL.", 0.6, 0.3)
KNOWLEDGE = [STUDENT, BIRTHDAY, SHIPPING]


def test_words_match_across_suffixes_and_typos_but_not_across_different_words() -> None:
    assert soft_in("kargom", frozenset({"kargoya"}))
    assert soft_in("kilitlndi", frozenset({"kilitlendi"}))
    assert not soft_in("ogretmen", frozenset({"ogrenci"}))
    assert not soft_in("ev", frozenset({"tasit"}))


def test_the_source_that_asks_the_same_question_is_more_probable_than_a_look_alike() -> None:
    vocabulary = TenantVocabulary(KNOWLEDGE)
    _, right = gather_evidence("ogrenci indirimi var mi", [STUDENT, BIRTHDAY, SHIPPING], vocabulary)
    _, look_alike = gather_evidence("ogretmenlere indirim var mi", [STUDENT, BIRTHDAY, SHIPPING], vocabulary)
    assert right[0].probability > look_alike[0].probability
    # The agent is told what the nearest source lacks.
    assert "ogretmenlere" in missing_words("ogretmenlere indirim var mi", STUDENT)


def test_evidence_is_ordered_by_probability_not_by_retrieval_score() -> None:
    hits, evidence = gather_evidence(
        "kargo ucreti ne kadar", [STUDENT, BIRTHDAY, SHIPPING], TenantVocabulary(KNOWLEDGE)
    )
    assert hits[0] is SHIPPING
    assert [e.probability for e in evidence] == sorted((e.probability for e in evidence), reverse=True)
    assert all(0.0 <= e.probability <= 1.0 for e in evidence)


def test_sources_that_may_never_be_sent_automatically() -> None:
    flagged = _faq("x", "Şifre", "Şifrenizi yazın.", 1, 1)
    flagged.metadata["flagged"] = "secret_request"
    chat = SearchHit(
        "c",
        "t",
        "chat:c-1",
        "pair-0",
        "Müşteri: ...",
        1.0,
        "chat",
        metadata={"answer": "Evet.", "auto_answer": False},
    )
    leaky = _faq("y", "Telefon", "Sizi [TELEFON] numarasından arayacağız.", 1, 1)
    assert blocked_reason(flagged) == "flagged"
    assert blocked_reason(chat) == "needs_context"
    assert blocked_reason(leaky) == "placeholder" and has_placeholder("[IBAN]")
    assert blocked_reason(STUDENT) is None


def test_the_shipped_model_uses_known_features_and_states_what_it_was_trained_on() -> None:
    model = default_model()
    assert model.trained_on.get("bundles") and len(model.coef) == len(model.features)


def test_precision_bound_and_how_much_evidence_a_target_needs() -> None:
    assert precision_lower_bound(0, 0) == 0.0
    assert precision_lower_bound(100, 100) == pytest.approx(0.9705, abs=1e-3)
    assert precision_lower_bound(95, 100) < precision_lower_bound(100, 100)
    assert samples_needed(0.98) == 149 and samples_needed(0.9) == 29


def test_the_precision_bound_is_the_clopper_pearson_bound_scipy_gives() -> None:
    beta = pytest.importorskip("scipy.stats").beta
    cases = [(r, n) for n in range(1, 40) for r in range(n + 1)]
    cases += [(r, n) for n in (100, 149, 300, 2_000) for r in (1, n // 2, n - 7, n - 1, n)]
    for right, total in cases:
        for level in (0.9, 0.95, 0.99):
            expected = float(beta.ppf(1 - level, right, total - right + 1)) if right else 0.0
            assert precision_lower_bound(right, total, level) == pytest.approx(expected, abs=1e-9)
            for target in (0.5, 0.9, 0.95, 0.98):
                assert precision_reaches(right, total, target, level) == (expected >= target)


def test_choosing_a_policy_does_not_load_scipy_stats() -> None:
    # scipy.stats is about 70 MB in every serving process; the policy needs one quantile of it.
    code = (
        "import sys\n"
        "from assist.service import AssistService\n"
        "from assist.policy import EvidenceSample, choose_policy\n"
        "samples = [EvidenceSample(0.5 + i / 400, i % 20 != 0, 'self_test') for i in range(200)]\n"
        "policy = choose_policy(samples, target=0.9)\n"
        "assert policy.mode == 'auto' and policy.precision_lower_bound >= 0.9, policy\n"
        "print(sorted(m for m in sys.modules if m.startswith('scipy.stats')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_threshold_is_the_lowest_one_whose_answers_meet_the_target() -> None:
    samples = [EvidenceSample(0.99 - i * 0.001, True, "self_test") for i in range(200)]
    samples += [EvidenceSample(0.5, False, "self_test"), EvidenceSample(0.4, True, "feedback")]
    policy = choose_policy(samples, target=0.98)
    assert policy.mode == "auto" and policy.threshold == pytest.approx(0.99 - 199 * 0.001, abs=1e-4)
    assert policy.answered == 200 and policy.precision_lower_bound >= 0.98
    assert policy.evidence == {"self_test": 201, "feedback": 1, "wrong": 1}


def test_too_little_evidence_means_suggest_only_and_says_so() -> None:
    policy = choose_policy([EvidenceSample(0.95, True, "self_test")] * 20, target=0.98)
    assert policy.mode == "suggest_only" and policy.threshold is None
    assert "149" in policy.note and "yalnızca öneri" in policy.note


def test_probes_come_from_the_tenants_own_questions() -> None:
    vocabulary = TenantVocabulary(KNOWLEDGE)
    probes = knowledge_probes(KNOWLEDGE, vocabulary)
    asked = {p.question: p.expected for p in probes}
    assert asked["ogrenci indirimi var mi"] == "faq:s-1"
    # A swapped question and the out-of-domain ones must not be answered at all.
    assert any(
        p.expected is None and "indirimi var mi" in p.question and "ogrenci" not in p.question for p in probes
    )
    assert sum(1 for p in probes if p.question in OUT_OF_DOMAIN) == len(OUT_OF_DOMAIN)
    probe = next(p for p in probes if p.expected == "faq:s-1")
    assert answers_probe(probe, STUDENT) and not answers_probe(probe, BIRTHDAY)


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("kupon kullandim puanim az yuklendi neden", "why"),
        ("iade nasil yapcam", "how"),
        ("Kargo ücreti ne kadar?", "number"),
        ("siparişim ne zaman gelir", "number"),
        ("kargom nerde kaldı", "where"),
        ("taksit yapiyomusunuz", "yes_no"),
        ("kupon ile puan aynı siparişte kullanılabilir mi", "yes_no"),
        ("Can I pay in installments?", "yes_no"),
        ("mimar indirimi", None),  # "mi" inside a word is no question particle
        ("kapıda ödeme", None),
    ],
)
def test_question_kind_reads_informal_turkish(question: str, kind: str | None) -> None:
    assert question_kind(match_form(question)) == kind


def test_a_source_that_asks_another_kind_of_question_is_marked() -> None:
    def chat(question: str) -> SearchHit:
        meta = {"question": question, "answer": "Puan indirimli tutar üzerinden hesaplanır."}
        return SearchHit("p", "t", "chats", "1", question, 1.0, source="chat", metadata=meta)

    asked = "kupon ile evim puanı aynı siparişte kullanabilir miyim"
    why, same = candidate_features(
        asked,
        [chat("kupon kullandım puanım az yüklendi neden"), chat("kupon ile puan birlikte kullanılır mı")],
    )
    assert why["kind_differs"] == 1.0 and same["kind_differs"] == 0.0
    # A verifier trained on that sign gives the source that answers another question the lower probability.
    model = default_model()
    assert "kind_differs" in model.features
    as_if_same, as_is = model.probabilities([{**why, "kind_differs": 0.0}, why])
    assert as_if_same > as_is
