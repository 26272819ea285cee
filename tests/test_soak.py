"""`bench soak` at a smoke-test size: ingestion and searches at once, stalls, disk and RSS over time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app
from retrieval.soak import latency_stats
from tests.conftest import XQUAD_DEV


def test_bench_soak_writes_stalls_disk_and_rss_over_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INVEKTO_DATA_DIR", str(tmp_path / "unused"))
    out = tmp_path / "results"
    args = ["bench", "soak", "--out", str(out), "--dataset", str(XQUAD_DEV), "--base", "1000"]
    result = CliRunner().invoke(app, [*args, "--jobs", "2", "--job-chunks", "32", "--clients", "2"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "soak.json").read_text(encoding="utf-8"))
    assert [row["job"] for row in report["timeline"]] == [1, 2]
    assert all(row["optimized"] for row in report["timeline"])  # each job ends with an optimize
    assert report["after_jobs"]["points"] == report["fresh_open"]["points"] == 1000 + 2 * 32
    assert report["search_errors"] == 0 and report["search_ms"]["all_jobs"]["n"] > 0
    # The index keeps no segment an optimize replaced: disk as a fresh open's.
    assert report["after_jobs"]["segment_dirs"] == report["after_jobs"]["segments"]
    assert report["disk_vs_fresh"] <= 1.3
    table = (out / "soak.md").read_text(encoding="utf-8")
    assert "| during optimize |" in table and "| fresh open |" in table and "| 2 |" in table
    assert not (tmp_path / "unused").exists()  # the soak runs in a data dir of its own


def test_latency_stats_are_nearest_rank_percentiles() -> None:
    stats = latency_stats([float(ms) for ms in range(1, 101)])
    assert (stats["n"], stats["p50"], stats["p95"], stats["p99"], stats["max"]) == (
        100,
        51.0,
        95.0,
        99.0,
        100.0,
    )
    assert latency_stats([])["n"] == 0
