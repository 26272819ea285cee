"""Comparing two runs' metrics.json, and quality gates on a run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.compare import GateError, check_gates, compare_runs, format_comparison, higher_is_better

RUN_A = {
    "recall@1": 0.90,
    "mrr@10": 0.95,
    "latency_ms_p95": 40.0,
    "answer_contains_reference": 0.70,
    "ragas_llm_errors": 0,
    "config": {"fusion": "score"},
    "dry_run": True,
}
RUN_B = {
    "recall@1": 0.92,
    "mrr@10": 0.95,
    "latency_ms_p95": 55.5,
    "answer_contains_reference": 0.65,
    "ragas_llm_errors": 0,
    "faithfulness": 0.81,
    "config": {"fusion": "rrf"},
}


def _run_dir(tmp_path: Path, name: str, metrics: dict) -> Path:
    run = tmp_path / name
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    return run


def test_compare_runs_knows_which_direction_is_better(tmp_path: Path) -> None:
    deltas = {d.name: d for d in compare_runs(_run_dir(tmp_path, "a", RUN_A), _run_dir(tmp_path, "b", RUN_B))}
    assert list(deltas) == [
        "recall@1",
        "mrr@10",
        "latency_ms_p95",
        "answer_contains_reference",
        "ragas_llm_errors",
        "faithfulness",
    ]  # config and the boolean are not metrics
    assert deltas["recall@1"].delta == pytest.approx(0.02)
    assert deltas["recall@1"].verdict == "better"
    assert deltas["mrr@10"].verdict == "same"
    assert deltas["latency_ms_p95"].verdict == "worse"  # slower is worse
    assert deltas["answer_contains_reference"].verdict == "worse"
    assert deltas["faithfulness"].verdict == "only in b"
    assert deltas["faithfulness"].delta is None


def test_lower_is_better_metrics() -> None:
    assert not higher_is_better("latency_ms_p95")
    assert not higher_is_better("search_ms")
    assert not higher_is_better("ragas_llm_errors")
    assert not higher_is_better("false_resolution_rate")
    assert higher_is_better("recall@1")
    assert higher_is_better("ndcg@10")
    assert higher_is_better("answer_contains_reference")


def test_format_comparison_is_an_aligned_table(tmp_path: Path) -> None:
    deltas = compare_runs(_run_dir(tmp_path, "a", RUN_A), _run_dir(tmp_path, "b", RUN_B))
    table = format_comparison(deltas, "baseline", "candidate")
    lines = table.splitlines()
    assert lines[0].split() == ["metric", "baseline", "candidate", "change"]
    rows = {line.split()[0]: line for line in lines[2:]}
    assert rows["recall@1"].split()[1:] == ["0.9000", "0.9200", "+0.0200", "▲", "better"]
    assert rows["latency_ms_p95"].split()[1:] == ["40.0000", "55.5000", "+15.5000", "▼", "worse"]
    assert rows["answer_contains_reference"].split()[3:] == ["-0.0500", "▼", "worse"]
    assert rows["mrr@10"].split()[3:] == ["+0.0000", "=", "same"]
    assert rows["faithfulness"].split()[1:] == ["-", "0.8100", "only", "in", "b"]
    # Right-aligned numbers: every change ends in the same column.
    ends = {
        line.index(line.split()[3]) + len(line.split()[3]) for line in lines[2:] if line.split()[1] != "-"
    }
    assert len(ends) == 1


def test_compare_accepts_metrics_file_paths_and_reports_a_missing_one(tmp_path: Path) -> None:
    a = _run_dir(tmp_path, "a", RUN_A) / "metrics.json"
    assert len(compare_runs(a, a)) == 5
    with pytest.raises(FileNotFoundError, match="no metrics.json"):
        compare_runs(a, tmp_path / "nowhere")


def test_gates_pass_and_fail_with_clear_text() -> None:
    assert check_gates(RUN_A, ["recall@1=0.9", "mrr@10>=0.95", "latency_ms_p95<=50"]) == []
    failures = check_gates(RUN_B, ["recall@1=0.93", "latency_ms_p95<=50", "mrr@10=0.9"])
    assert failures == [
        "recall@1 = 0.9200, gate requires >= 0.93 (short by 0.0100)",
        "latency_ms_p95 = 55.5000, gate requires <= 50 (over by 5.5000)",
    ]


def test_a_gate_on_an_unknown_metric_names_the_known_ones() -> None:
    with pytest.raises(GateError) as info:
        check_gates(RUN_A, ["recal@1=0.9", "recall@1=0.5"])
    message = str(info.value)
    assert "recal@1" in message
    assert (
        "known metrics: answer_contains_reference, latency_ms_p95, mrr@10, ragas_llm_errors, recall@1"
        in message
    )


@pytest.mark.parametrize("gate", ["recall@1", "recall@1=abc", "recall@1>0.9", "=0.9", "recall@1 == 0.9"])
def test_a_malformed_gate_is_an_error(gate: str) -> None:
    with pytest.raises(GateError):
        check_gates(RUN_A, [gate])


def test_a_nan_metric_fails_its_gate() -> None:
    assert check_gates({"recall@1": float("nan")}, ["recall@1=0.5"]) == [
        "recall@1 is nan, gate requires >= 0.5"
    ]
