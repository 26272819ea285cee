"""Tenant bundles in the eval: loading and label checks, the decision metrics, and whole runs through the
same ingestion, search, suggest and resolve code the service runs."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app
from eval.bundle import is_bundle, load_bundle
from eval.compare import check_gates, parse_gates
from eval.datasets import DatasetError
from eval.decisions import (
    DecisionRecord,
    SuggestionRecord,
    answer_run_metrics,
    calibration,
    decision_metrics,
    risk_coverage,
)
from tests.conftest import SHOP_TR_DEV

# --- loading -------------------------------------------------------------------------------------


def test_the_shop_bundle_loads_with_every_kind_of_source() -> None:
    bundle = load_bundle(SHOP_TR_DEV)
    assert len(bundle.queries) == 254 and len(bundle.answerable_queries) == 187
    assert bundle.parts() == {"faq": 84, "qr": 16, "doc": 6, "chat": 40}
    assert {"faq:sss-001", "qr:hy-16", "doc:iade-politikasi.md", "chat:c-001"} <= bundle.sources
    # Open conversations teach nothing and cannot be cited.
    assert "chat:c-041" not in bundle.sources and "chat:c-042" not in bundle.sources
    tagged = {t for q in bundle.queries for t in q.tags}
    assert {"near_miss", "uncovered", "off_domain", "multi_turn", "chat_only", "english"} <= tagged
    assert is_bundle(SHOP_TR_DEV)


def _write_bundle(root: Path, queries: list[dict], *, chats: bool = True) -> Path:
    knowledge = root / "knowledge"
    (knowledge / "docs").mkdir(parents=True)
    with (knowledge / "faq.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "soru", "cevap"])
        writer.writerow(
            [
                "k-1",
                "Kargo ücreti ne kadar?",
                "750 TL üzeri siparişlerde kargo ücretsizdir, altında 49,90 TL.",
            ]
        )
        writer.writerow(
            ["k-2", "İade süresi kaç gün?", "Ürünü teslim aldıktan sonra 14 gün içinde iade edebilirsiniz."]
        )
        writer.writerow(
            ["k-3", "Kapıda ödeme var mı?", "Kapıda nakit veya kartla ödeme yapılabilir, bedeli 19,90 TL."]
        )
    (knowledge / "quick_replies.csv").write_text(
        "id,baslik,metin\nq-1,Çalışma saatleri,Müşteri hizmetlerimiz hafta içi 09:00-18:00 arası açıktır.\n",
        encoding="utf-8",
    )
    (knowledge / "docs" / "garanti.md").write_text(
        "# Garanti\n\nTüm elektronik ürünlerimiz 2 yıl garantilidir. Garanti belgesi kutudan çıkar.\n",
        encoding="utf-8",
    )
    if chats:
        conversation = {
            "conversation_id": "sohbet-1",
            "channel": "whatsapp",
            "status": "resolved",
            "messages": [
                {
                    "role": "customer",
                    "text": "Faturamı nereden indirebilirim?",
                    "ts": "2025-01-02T10:00:00+03:00",
                },
                {
                    "role": "agent",
                    "text": "Faturanızı Hesabım > Siparişlerim sayfasından PDF olarak indirebilirsiniz.",
                    "ts": "2025-01-02T10:01:00+03:00",
                },
            ],
        }
        (knowledge / "chats.jsonl").write_text(
            json.dumps(conversation, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    (root / "queries.jsonl").write_text(
        "".join(json.dumps(q, ensure_ascii=False) + "\n" for q in queries), encoding="utf-8"
    )
    return root


QUERIES = [
    {
        "id": "f1",
        "question": "kargo ücreti ne kadar",
        "relevant_ids": ["faq:k-1"],
        "reference_answer": "49,90 TL",
        "tags": ["faq"],
    },
    {
        "id": "f2",
        "question": "iade süresi kaç gün",
        "relevant_ids": ["faq:k-2"],
        "reference_answer": "14 gün",
        "tags": ["faq"],
    },
    {
        "id": "d1",
        "question": "elektronik ürünlerin garantisi kaç yıl",
        "relevant_ids": ["doc:garanti.md"],
        "tags": ["doc_only"],
    },
    {
        "id": "c1",
        "question": "faturamı nereden indirebilirim",
        "relevant_ids": ["chat:sohbet-1"],
        "tags": ["chat_only"],
    },
    {
        "id": "r1",
        "question": "müşteri hizmetleri çalışma saatleri",
        "relevant_ids": ["qr:q-1"],
        "tags": ["quick_reply"],
    },
    {"id": "o1", "question": "Galatasaray maçı kaçta başlıyor?", "relevant_ids": [], "tags": ["off_domain"]},
    {
        "id": "m1",
        "question": "peki kapıda ödeme yapabilir miyim",
        "relevant_ids": ["faq:k-3"],
        "history": [
            {"role": "customer", "text": "kargo ücreti ne kadar"},
            {"role": "agent", "text": "49,90 TL."},
        ],
        "tags": ["multi_turn"],
    },
]


def test_a_label_naming_missing_knowledge_is_reported_before_anything_is_indexed(tmp_path: Path) -> None:
    bad = [
        {"id": "a", "question": "kargo", "relevant_ids": ["faq:k-9"]},
        {"id": "b", "question": "iade", "relevant_ids": ["doc:yok.pdf", "chat:sohbet-2"]},
        {"id": "c", "question": "fatura", "relevant_ids": [], "tags": "kargo"},
    ]
    root = _write_bundle(tmp_path / "b", bad)
    with pytest.raises(DatasetError) as caught:
        load_bundle(root)
    text = str(caught.value)
    assert "queries.jsonl:1: relevant id 'faq:k-9' names nothing in knowledge/" in text
    assert "queries.jsonl:2: relevant id 'doc:yok.pdf'" in text and "'chat:sohbet-2'" in text
    assert "queries.jsonl:3: 'tags' must be a list" in text


def test_every_part_is_optional_but_some_knowledge_is_required(tmp_path: Path) -> None:
    root = _write_bundle(tmp_path / "b", [q for q in QUERIES if not q["id"].startswith("c")], chats=False)
    assert load_bundle(root).parts()["chat"] == 0
    empty = tmp_path / "empty"
    (empty / "knowledge").mkdir(parents=True)
    (empty / "queries.jsonl").write_text('{"id": "x", "question": "kargo", "relevant_ids": []}\n')
    with pytest.raises(DatasetError, match="no knowledge"):
        load_bundle(empty)


# --- metrics -------------------------------------------------------------------------------------


def _record(
    qid: str,
    relevant: set[str],
    decision: str,
    confidence: float,
    cited=(),
    tags=("t",),
    **kw,
) -> DecisionRecord:
    return DecisionRecord(
        query_id=qid,
        relevant=frozenset(relevant),
        tags=tuple(tags),
        decision=decision,
        reason=kw.get("reason"),
        confidence=confidence,
        cited=tuple(cited),
        suggestions=[SuggestionRecord(tuple(s), 0.5, "extractive") for s in kw.get("suggestions", [])],
    )


def test_wrong_answers_are_the_ones_citing_nothing_relevant_or_answering_what_must_go_to_a_human() -> None:
    records = [
        _record("right", {"faq:1"}, "answer", 0.9, ["faq:1"], suggestions=[["faq:1"]]),
        _record("wrong-source", {"faq:1"}, "answer", 0.8, ["faq:2"], suggestions=[["faq:2"], ["faq:1"]]),
        _record(
            "unanswerable", set(), "answer", 0.7, ["faq:3"], tags=("near_miss",), suggestions=[["faq:3"]]
        ),
        _record("handed-off", set(), "handoff", 0.1, reason="no_knowledge", tags=("near_miss",)),
        _record("missed", {"doc:a"}, "handoff", 0.4, reason="low_confidence", suggestions=[["doc:a"]]),
    ]
    m = decision_metrics(records)
    assert m["n_auto_answers"] == 3 and m["n_wrong_answers"] == 2
    assert m["wrong_answer_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["auto_answer_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["handoff_rate_unanswerable"] == 0.5
    assert m["suggest_hit@1"] == pytest.approx(2 / 3, abs=1e-4) and m["suggest_hit@3"] == 1.0
    assert m["suggest_noise_rate"] == 0.5
    per_tag = answer_run_metrics(records)["per_tag"]
    assert per_tag["near_miss"]["wrong_answer_rate"] == 1.0 and per_tag["t"]["wrong_answer_rate"] == 0.5


def test_risk_coverage_sweeps_the_thresholds_and_finds_the_coverage_each_precision_allows() -> None:
    records = [
        _record("a", {"x"}, "answer", 0.95, ["x"]),
        _record("b", {"x"}, "answer", 0.9, ["x"]),
        _record("c", {"x"}, "answer", 0.8, ["y"]),  # wrong
        _record("d", {"x"}, "handoff", 0.6, reason="low_confidence", suggestions=[["x"]]),
        _record("e", set(), "handoff", 0.0, reason="sensitive_topic"),  # no threshold sends this one
    ]
    curve = risk_coverage(records)
    assert curve.thresholds == [0.95, 0.9, 0.8, 0.6]
    assert curve.coverage == [0.25, 0.5, 0.75, 1.0]
    assert curve.precision == [1.0, 1.0, pytest.approx(0.6667, abs=1e-4), 0.75]
    assert curve.coverage_at(0.99) == 0.5 and curve.coverage_at(0.7) == 1.0
    cal = calibration(records)
    assert cal["n_candidates"] == 4 and 0 < cal["brier"] < 1 and 0 <= cal["ece"] <= 1


def test_no_automatic_answer_means_no_wrong_answer_not_a_missing_metric() -> None:
    m = decision_metrics([_record("a", set(), "handoff", 0.1, reason="no_knowledge")])
    assert m["wrong_answer_rate"] == 0.0 and m["n_auto_answers"] == 0


def test_per_tag_and_upper_gates() -> None:
    metrics = {"wrong_answer_rate": 0.02, "per_tag": {"near_miss": {"wrong_answer_rate": 0.1}}}
    gates = parse_gates(["wrong_answer_rate<=0.03"], ["near_miss.wrong_answer_rate=0.05"])
    assert gates == ["wrong_answer_rate<=0.03", "near_miss.wrong_answer_rate<=0.05"]
    failures = check_gates(metrics, gates)
    assert failures == ["near_miss.wrong_answer_rate = 0.1000, gate requires <= 0.05 (over by 0.0500)"]


# --- whole runs ----------------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    monkeypatch.setenv("INVEKTO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("INVEKTO_LLM_PROVIDER", "extractive")
    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args))
        return result.exit_code, result.output

    return invoke


def test_answer_eval_on_a_bundle_reports_decisions_per_query_and_per_tag(cli, tmp_path: Path) -> None:  # noqa: ANN001
    root = _write_bundle(tmp_path / "bundle", QUERIES)
    out = tmp_path / "run"
    code, output = cli(
        "eval", "answers", "--quiet", "--dataset", str(root), "--out", str(out),
        "--fail-over", "off_domain.wrong_answer_rate=0.0", "--fail-under", "handoff_rate_unanswerable=1",
    )  # fmt: skip
    assert code == 0, output
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["config"]["bundle_sources"] == {"faq": 3, "qr": 1, "doc": 1, "chat": 1}
    for key in ("auto_answer_rate", "wrong_answer_rate", "suggest_hit@3", "coverage_at_precision_0.95"):
        assert key in metrics
    assert set(metrics["per_tag"]) == {
        "faq",
        "doc_only",
        "chat_only",
        "quick_reply",
        "off_domain",
        "multi_turn",
    }
    # The FAQ questions come back citing the FAQ row by the sheet's own id.
    rows = {r["id"]: r for r in map(json.loads, (out / "per_query.jsonl").read_text().splitlines())}
    assert rows["f1"]["suggestions"][0]["refs"] == ["faq:k-1"]
    assert rows["c1"]["suggestions"][0]["refs"] == ["chat:sohbet-1"]
    assert rows["o1"]["decision"].startswith("handoff")
    # The follow-up is searched with the subject from the earlier turn.
    assert "kargo" in rows["m1"]["query"] and "kapıda" in rows["m1"]["query"]
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Risk–coverage" in html and "Per tag" in html
    # An upper gate that cannot hold fails the run with the metric named.
    code, output = cli(
        "eval", "compare", str(out), str(out), "--fail-over", "suggest_hit@3=0.1",
    )  # fmt: skip
    assert code == 1 and "suggest_hit@3" in output


def test_retrieval_eval_on_a_bundle_counts_any_relevant_source(cli, tmp_path: Path) -> None:  # noqa: ANN001
    root = _write_bundle(tmp_path / "bundle", QUERIES)
    out = tmp_path / "run"
    code, output = cli("eval", "retrieval", "--quiet", "--dataset", str(root), "--out", str(out))
    assert code == 0, output
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["n_queries"] == 6 and metrics["hit@5"] == 1.0
    assert metrics["per_tag"]["faq"]["hit@1"] == 1.0
    code, output = cli(
        "eval", "retrieval", "--quiet", "--dataset", str(root), "--out", str(tmp_path / "r2"),
        "--fail-under", "chat_only.hit@1=1.01",
    )  # fmt: skip
    assert code == 1 and "chat_only.hit@1" in output


def test_a_bundle_given_to_the_flat_loader_says_what_it_is(tmp_path: Path) -> None:
    from eval.datasets import load_dataset

    root = tmp_path / "b"
    shutil.copytree(SHOP_TR_DEV, root)
    with pytest.raises(DatasetError, match="tenant bundle"):
        load_dataset(root)


def test_the_eval_tenants_precision_target_can_be_set_and_is_reported(cli, tmp_path: Path) -> None:  # noqa: ANN001
    root = _write_bundle(tmp_path / "bundle", QUERIES)
    out = tmp_path / "run"
    code, output = cli(
        "eval", "answers", "--quiet", "--dataset", str(root), "--out", str(out), "--precision-target", "0.9",
    )  # fmt: skip
    assert code == 0, output
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["policy_precision_target"] == 0.9 and metrics["policy_mode"] in ("auto", "suggest_only")
    assert metrics["policy_evidence"]["self_test"] > 0
    code, output = cli(
        "eval", "answers", "--quiet", "--dataset", str(root), "--out", str(out), "--precision-target", "2"
    )
    assert code == 2 and "precision-target" in output
