"""Retrieval metrics on runs whose right answers are known by hand, Turkish answer matching, latency summaries."""

from __future__ import annotations

import math
import warnings

import pytest

from eval.metrics import (
    RETRIEVAL_METRICS,
    contains_reference,
    first_relevant_rank,
    latency_summary,
    normalise_answer,
    per_query_retrieval_metrics,
    recall_at_k,
    retrieval_metrics,
    turkish_lower,
)


def _run(*doc_ids: str) -> list[tuple[str, float]]:
    return [(d, 1.0 - i / 100) for i, d in enumerate(doc_ids)]


def test_a_perfect_run_scores_one_everywhere() -> None:
    qrels = {"q1": ["d1"], "q2": ["d2"]}
    run = {"q1": _run("d1", "d2", "d3"), "q2": _run("d2", "d1")}
    assert retrieval_metrics(qrels, run) == {name: pytest.approx(1.0) for name in RETRIEVAL_METRICS}


def test_relevant_document_in_second_place() -> None:
    scores = retrieval_metrics({"q1": ["d1"]}, {"q1": _run("d9", "d1", "d8")})
    assert scores["recall@1"] == 0.0
    assert scores["recall@5"] == 1.0
    assert scores["recall@10"] == 1.0
    assert scores["mrr@10"] == pytest.approx(0.5)
    assert scores["ndcg@10"] == pytest.approx(1 / math.log2(3))


def test_a_relevant_document_below_ten_does_not_count() -> None:
    ranked = _run(*[f"x{i}" for i in range(10)], "d1")
    scores = retrieval_metrics({"q1": ["d1"]}, {"q1": ranked})
    assert scores == {name: 0.0 for name in RETRIEVAL_METRICS}


def test_empty_and_missing_runs_count_as_zero_and_unanswerable_queries_are_left_out() -> None:
    qrels = {"hit": ["d1"], "empty": ["d2"], "missing": ["d3"], "unanswerable": []}
    run = {"hit": _run("d1"), "empty": [], "unanswerable": _run("d1")}
    per_query = per_query_retrieval_metrics(qrels, run)
    assert set(per_query) == {"hit", "empty", "missing"}
    assert per_query["empty"]["mrr@10"] == 0.0
    assert per_query["missing"]["recall@10"] == 0.0
    assert retrieval_metrics(qrels, run)["recall@1"] == pytest.approx(1 / 3)


def test_two_relevant_documents() -> None:
    scores = per_query_retrieval_metrics({"q1": ["d1", "d2"]}, {"q1": _run("d1", "x", "d2")})["q1"]
    assert scores["recall@1"] == pytest.approx(0.5)
    assert scores["recall@5"] == pytest.approx(1.0)
    assert scores["mrr@10"] == pytest.approx(1.0)


def test_the_list_order_is_the_ranking_even_when_scores_tie_or_disagree() -> None:
    tied = [("d2", 0.5), ("d1", 0.5)]
    assert retrieval_metrics({"q1": ["d1"]}, {"q1": tied})["mrr@10"] == pytest.approx(0.5)
    assert retrieval_metrics({"q1": ["d1"]}, {"q1": [("d1", 0.1), ("d2", 0.9)]})["mrr@10"] == pytest.approx(
        1.0
    )


def test_two_chunks_of_one_document_count_once_at_the_better_rank() -> None:
    run = {"q1": _run("d2", "d2", "d1")}
    assert retrieval_metrics({"q1": ["d1"]}, run)["mrr@10"] == pytest.approx(0.5)


def test_no_answerable_query_is_an_error() -> None:
    with pytest.raises(ValueError, match="no query has relevant ids"):
        retrieval_metrics({"q1": []}, {"q1": _run("d1")})


def test_ranx_stays_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        retrieval_metrics({"q1": ["d1"], "q2": ["d2"]}, {"q1": _run("d1"), "q2": _run("d3", "d2")})
    assert [str(w.message) for w in caught] == []
    assert capsys.readouterr() == ("", "")


def test_first_relevant_rank_and_recall_at_k() -> None:
    assert first_relevant_rank(["d1"], ["d3", "d2", "d1"]) == 3
    assert first_relevant_rank(["d1"], ["d3"]) is None
    assert first_relevant_rank(["d1"], []) is None
    assert recall_at_k(["d1", "d2"], ["d1", "x", "d2"], 1) == 0.5
    assert recall_at_k(["d1", "d2"], ["d1", "x", "d2"], 3) == 1.0
    with pytest.raises(ValueError):
        recall_at_k([], ["d1"], 1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("İSTANBUL'da", "istanbul"),
        ("IŞIK ILIK", "ışık ılık"),
        ("Denver Broncos'u yendi.", "denver broncos yendi"),
        ("Carolina’nın ikincisi", "carolina ikincisi"),
        ("1990'larda", "1990"),
        ("O'Brien", "obrien"),
        ("  «Süper»   Kupa!\n(50) ", "süper kupa 50"),
        ("1.000 kişi", "1000 kişi"),
        ("ÇĞÖŞÜ", "çğöşü"),
    ],
)
def test_normalise_answer(text: str, expected: str) -> None:
    assert normalise_answer(text) == expected


def test_turkish_lower_keeps_dotless_and_dotted_i_apart() -> None:
    assert turkish_lower("Iğdır İzmir") == "ığdır izmir"


@pytest.mark.parametrize(
    ("answer", "reference", "expected"),
    [
        ("İSTANBUL'da yaşıyor.", "istanbul", True),
        ("Maçı Denver Broncos'u yenerek kazandılar.", "Denver Broncos", True),
        ("Panthers savunması 308 sayı bıraktı.", "308", True),
        ("Toplam 3080 sayı.", "308", False),
        ("Panthers savunmasının başarısı", "Panthers savunması", True),
        ("xistanbul", "istanbul", False),
        ("ILIK su", "ılık", True),
        ("Ödeme yapıldı", "odeme yapildi", True),  # diacritics are folded on both sides
        ("Bir cevap", "", False),
        ("", "308", False),
    ],
)
def test_contains_reference(answer: str, reference: str, expected: bool) -> None:
    assert contains_reference(answer, reference) is expected


def test_latency_summary() -> None:
    summary = latency_summary([10.0] * 98 + [100.0, 1000.0])
    assert summary["p50"] == 10.0
    assert summary["p95"] == 10.0
    assert summary["p99"] == pytest.approx(109.0)  # linear between the 99th (100) and 100th (1000) values
    assert summary["mean"] == pytest.approx((980 + 100 + 1000) / 100)


@pytest.mark.parametrize("bad", [[], [1.0, -1.0], [float("nan")], [float("inf")]])
def test_latency_summary_rejects_nothing_and_broken_timers(bad: list[float]) -> None:
    with pytest.raises(ValueError):
        latency_summary(bad)
