"""`invekto-knowledge bench api` end to end on a small index: a real server, real wrk, a table that adds up."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from api.bench import BenchError, comparison_table, markdown_table, run_api_benchmark, run_api_comparison
from tests.conftest import XQUAD_DEV


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)")
def test_load_benchmark_reports_throughput_latency_and_memory(tmp_path: Path) -> None:
    data = tmp_path / "bench-data"
    report = run_api_benchmark(XQUAD_DEV, chunks=120, connections=4, duration_s=2, data_dir=data)

    assert report["chunks_indexed"] >= 120 and report["requests"] > 0
    assert report["errors"] == 0, report["wrk_output"]
    assert report["requests_per_s"] == pytest.approx(report["requests"] / report["duration_s"], rel=0.05)
    lat = report["latency_ms"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert report["server_rss_mib"] > 50 and report["server_children_rss_mib"] > 50  # the index process
    table = markdown_table(report)
    assert f"| {report['requests_per_s']:.1f} |" in table and "POST /v1/assist/suggest" in table
    # The index is kept: a second run reuses it instead of indexing again.
    assert json.loads((data / "bench-indexed.json").read_text())["chunks"] == report["chunks_indexed"]


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)")
def test_paused_clients_offer_at_most_clients_over_pause(tmp_path: Path) -> None:
    # 4 clients that each pause 200 ms between an answer and the next request send at most 20 req/s.
    report = run_api_benchmark(
        XQUAD_DEV, chunks=60, connections=4, duration_s=2, data_dir=tmp_path / "data", pause_ms=200
    )
    assert report["pause_ms"] == 200 and report["errors"] == 0
    assert 0 < report["requests_per_s"] <= 20
    assert "| 4 | 200 |" in markdown_table(report)


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)")
def test_two_builds_run_in_turns_on_one_index(tmp_path: Path) -> None:
    # The baseline here is this same checkout: the point is the alternation, the labels and the medians.
    root = Path(__file__).resolve().parents[1]
    report = run_api_comparison(
        XQUAD_DEV, root, rounds=1, data_dir=tmp_path / "data", chunks=60, connections=4, duration_s=2
    )
    assert [(r["build"], r["round"]) for r in report["runs"]] == [("baseline", 1), ("this build", 1)]
    first, second = report["runs"]
    assert first["errors"] == second["errors"] == 0
    # Indexed once, by the first run; the second reused it.
    assert (
        second["chunks_indexed"] == first["chunks_indexed"]
        and second["index_build_s"] == first["index_build_s"]
    )
    assert report["summary"]["this build"]["requests_per_s"] == second["requests_per_s"]
    table = comparison_table(report)
    assert "| median | baseline |" in table and "| median | this build |" in table
    with pytest.raises(BenchError, match="not a checkout"):
        run_api_comparison(XQUAD_DEV, tmp_path, rounds=1, chunks=60, duration_s=1)
