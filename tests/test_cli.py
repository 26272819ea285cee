"""The README's commands, run the way a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli import app
from tests.conftest import DBANK

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    monkeypatch.setenv("INVEKTO_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args))
        return result.exit_code, result.output

    return invoke


def test_ingest_search_list_delete_round_trip_in_a_real_process(tmp_path: Path) -> None:
    env = {**os.environ, "INVEKTO_DATA_DIR": str(tmp_path / "data")}
    run = [sys.executable, "-m", "api.cli"]
    ingest = subprocess.run(
        [*run, "ingest", "files", "--tenant", "dbank", str(DBANK / "kredi.html"), str(DBANK / "DBank.pdf")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert ingest.returncode == 0, ingest.stderr
    search = subprocess.run(
        [*run, "search", "--tenant", "dbank", "--json", "taşıt kredisi için şartlar nelerdir"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert search.returncode == 0, search.stderr
    hits = json.loads(search.stdout)["hits"]
    assert "Taşıt kredisi için şartlar nelerdir" in hits[0]["text"]


def test_ingest_leaves_the_index_built_before_it_exits(cli, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    # The job starts the HNSW build aside; the command waits for it instead of dropping it at exit.
    monkeypatch.setenv("INVEKTO_OPTIMIZE_THRESHOLD", "2")
    code, out = cli("ingest", "files", "--tenant", "acme", str(DBANK / "kredi.html"))
    assert code == 0, out
    info = json.loads(cli("index", "info")[1])
    assert info["points"] >= 2 and info["unindexed_dense"] == 0 and info["building"] == 0


def test_ingest_reports_a_bad_file_and_keeps_the_good_one(cli, tmp_path: Path) -> None:  # noqa: ANN001
    bad = tmp_path / "bozuk.pdf"
    bad.write_bytes(b"%PDF-1.4 not really")
    code, out = cli("ingest", "files", "--tenant", "acme", "--json", str(DBANK / "kredi.html"), str(bad))
    assert code == 0
    files = {f["name"]: f for f in json.loads(out[out.index("{") :])["files"]}
    assert files["kredi.html"]["status"] == "indexed" and files["bozuk.pdf"]["status"] == "failed"
    code, out = cli("ingest", "list", "--tenant", "acme", "--json")
    docs = {d["doc_id"]: d["status"] for d in json.loads(out)}
    assert docs == {"kredi.html": "indexed", "bozuk.pdf": "failed"}
    code, out = cli("ingest", "delete", "--tenant", "acme", "kredi.html")
    assert code == 0
    code, out = cli("search", "--tenant", "acme", "--json", "taşıt kredisi")
    assert json.loads(out)["hits"] == []


def test_a_job_a_killed_ingest_left_running_is_marked_interrupted_by_the_next_one(
    cli,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    from ingestion.registry import Registry
    from retrieval.settings import Settings

    url = Settings(data_dir=tmp_path / "data", _env_file=None).registry_url  # type: ignore[call-arg]
    (tmp_path / "data").mkdir()
    with Registry(url) as registry:  # what `ingest` leaves when it is killed half-way
        registry.create_tenant("acme", "Acme")
        killed = registry.start_job(registry.create_job("acme", "files", ["kredi.html", "DBank.pdf"]).id)
    code, out = cli("ingest", "files", "--tenant", "acme", str(DBANK / "kredi.html"))
    assert code == 0, out
    assert f"job {killed.id} (acme, files) was interrupted" in " ".join(out.split())
    with Registry(url) as registry:
        job = registry.get_job("acme", killed.id)
        assert registry.interrupted_jobs() == []
    assert job is not None and job.status == "failed" and "interrupted" in (job.error or "")


def test_unknown_tenant_search_says_so(cli) -> None:  # noqa: ANN001
    cli("ingest", "files", "--tenant", "acme", str(DBANK / "kredi.html"))
    code, out = cli("search", "--tenant", "nobody", "taşıt kredisi")
    assert code == 0 and "no indexed knowledge" in out


def test_empty_query_is_refused_with_a_message(cli) -> None:  # noqa: ANN001
    code, out = cli("search", "--tenant", "acme", "   ")
    assert code == 2 and "query is empty" in out


def test_a_bad_setting_is_named_not_a_traceback(cli, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("INVEKTO_RATE_LIMIT", "-1")
    monkeypatch.setenv("INVEKTO_DENSE_WEIGHT", "çok")
    code, out = cli("search", "--tenant", "acme", "kredi")
    assert code == 2 and "Traceback" not in out
    assert "INVEKTO_RATE_LIMIT='-1': Input should be greater than or equal to 0" in out
    assert "INVEKTO_DENSE_WEIGHT='çok': Input should be a valid number" in out


def _tiny_dataset(folder: Path) -> Path:
    folder.mkdir(parents=True)
    corpus = json.loads((FIXTURES / "eval" / "tiny_corpus.json").read_text(encoding="utf-8"))
    (folder / "corpus.jsonl").write_text(
        "\n".join(json.dumps(d, ensure_ascii=False) for d in corpus["corpus"]) + "\n", encoding="utf-8"
    )
    (folder / "queries.jsonl").write_text(
        "\n".join(json.dumps(q, ensure_ascii=False) for q in corpus["queries"]) + "\n", encoding="utf-8"
    )
    return folder


def test_eval_retrieval_writes_a_run_and_gates_it(cli, tmp_path: Path) -> None:  # noqa: ANN001
    dataset = _tiny_dataset(tmp_path / "ds")
    code, out = cli(
        "eval",
        "retrieval",
        "--quiet",
        "--dataset",
        str(dataset),
        "--out",
        str(tmp_path / "run-a"),
        "--fail-under",
        "recall@5=0.9",
    )
    assert code == 0, out
    metrics = json.loads((tmp_path / "run-a" / "metrics.json").read_text())
    for key in (
        "recall@1",
        "recall@5",
        "recall@10",
        "mrr@10",
        "ndcg@10",
        "n_queries",
        "latency_ms_p50",
        "latency_ms_p95",
    ):
        assert key in metrics
    assert metrics["config"]["embedder"] == "use-multilingual" and "qdrant-edge-py" in metrics["versions"]
    assert (tmp_path / "run-a" / "report.html").read_text(encoding="utf-8").count(
        "data:image/png;base64"
    ) >= 2
    code, out = cli(
        "eval",
        "retrieval",
        "--quiet",
        "--dataset",
        str(dataset),
        "--out",
        str(tmp_path / "run-b"),
        "--fusion",
        "dense",
        "--fail-under",
        "recall@1=1.01",
    )
    assert code == 1 and "gate failed" in out
    code, out = cli("eval", "compare", str(tmp_path / "run-a"), str(tmp_path / "run-b"))
    assert code == 0 and "recall@1" in out
    code, out = cli(
        "eval", "compare", str(tmp_path / "run-a"), str(tmp_path / "run-b"), "--fail-under", "recall@1=1.01"
    )
    assert code == 1


def test_eval_reports_bad_dataset_lines_by_number(cli, tmp_path: Path) -> None:  # noqa: ANN001
    dataset = _tiny_dataset(tmp_path / "ds")
    with (dataset / "queries.jsonl").open("a", encoding="utf-8") as fh:
        fh.write("{not json\n")
    code, out = cli("eval", "retrieval", "--quiet", "--dataset", str(dataset), "--out", str(tmp_path / "run"))
    assert code == 2 and "queries.jsonl:" in out


def test_build_from_chats_then_evaluate_on_it(cli, tmp_path: Path) -> None:  # noqa: ANN001
    code, out = cli(
        "eval",
        "build-from-chats",
        "--chats",
        str(FIXTURES / "chats" / "store.jsonl"),
        "--out",
        str(tmp_path / "chatds"),
        "--holdout",
        "0.3",
    )
    assert code == 0, out
    queries = [
        json.loads(line)
        for line in (tmp_path / "chatds" / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    corpus_ids = {
        json.loads(line)["id"]
        for line in (tmp_path / "chatds" / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    }
    held_out = {q["id"].split("#")[0] for q in queries}
    assert held_out and not any(doc.split("#")[0].removeprefix("chat:") in held_out for doc in corpus_ids)
    assert any(q["relevant_ids"] for q in queries)
    code, out = cli(
        "eval", "retrieval", "--quiet", "--dataset", str(tmp_path / "chatds"), "--out", str(tmp_path / "run")
    )
    assert code == 0, out


def test_index_info_names_backend_and_embedder(cli) -> None:  # noqa: ANN001
    cli("ingest", "files", "--tenant", "acme", str(DBANK / "kredi.html"))
    code, out = cli("index", "info")
    info = json.loads(out)
    assert (
        code == 0
        and info["backend"] == "edge"
        and info["embedder"] == "use-multilingual-v3"
        and info["points"] >= 1
    )


def test_index_reencode_brings_an_index_of_an_older_bm25_encoding_back_without_ingesting_again(
    cli,
    tmp_path: Path,  # noqa: ANN001
) -> None:
    cli("ingest", "files", "--tenant", "acme", str(DBANK / "kredi.html"))
    meta_file = tmp_path / "data" / "index" / "index.json"
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    meta_file.write_text(
        json.dumps({**meta, "sparse": "bm25-turkish-stem+p5-k1.2-b0.75-avg150"}), encoding="utf-8"
    )
    code, out = cli("search", "--tenant", "acme", "taşıt kredisi")
    assert code == 2 and "invekto-knowledge index reencode" in out

    code, out = cli("index", "reencode")
    assert code == 0, out
    info = json.loads(cli("index", "info")[1])
    chunks = info["points"]
    assert info["unindexed_dense"] == 0
    assert f"{chunks} chunks re-encoded (bm25-turkish-stem+p5-k1.2-b0.75-avg150 -> " in out
    code, out = cli("search", "--tenant", "acme", "--json", "tasit kredisi sartlari")
    assert code == 0 and "Taşıt kredisi" in json.loads(out)["hits"][0]["text"]
    code, out = cli("index", "reencode")
    assert code == 0 and out.strip().endswith(
        "the index already holds this release's BM25 encoding: nothing to do"
    )


def test_configuration_mistakes_are_one_line_not_a_traceback(cli, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("INVEKTO_LLM_PROVIDER", "anthropic")
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    code, out = cli("tenant", "list")
    assert code == 2 and "INVEKTO_LLM_PROVIDER=anthropic needs ANTHROPIC_API_KEY" in out
    assert "Traceback" not in out and len(out.strip().splitlines()) <= 2

    monkeypatch.setenv("INVEKTO_LLM_PROVIDER", "extractive")
    monkeypatch.setenv("INVEKTO_DATABASE_URL", "postgresql://invekto@localhost/invekto")
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if the driver were not installed
    code, out = cli("tenant", "list")
    assert code == 2 and "its driver psycopg is not installed: pip install 'psycopg[binary]'" in out
    assert "Traceback" not in out and len(out.strip().splitlines()) <= 2


def test_an_unknown_invekto_variable_is_reported_with_the_name_meant(
    cli, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    monkeypatch.setenv("INVEKTO_DATADIR", "/tmp/elsewhere")
    code, out = cli("tenant", "list")
    assert code == 0
    assert "unknown variable INVEKTO_DATADIR (did you mean INVEKTO_DATA_DIR?)" in " ".join(out.split())


def test_ingesting_into_a_mistyped_tenant_is_refused_once_tenants_exist(cli) -> None:  # noqa: ANN001
    # The first tenant of a new data dir comes with its first ingestion, and says so.
    code, out = cli("ingest", "files", "--tenant", "acme", str(DBANK / "kredi.html"))
    assert code == 0 and "created tenant 'acme'" in out
    code, out = cli("ingest", "files", "--tenant", "acmee", str(DBANK / "kredi.html"))
    assert code == 2
    assert "no tenant 'acmee' (did you mean 'acme'?)" in " ".join(out.split())
    assert "tenant create acmee" in " ".join(out.split())
    code, out = cli("tenant", "list")
    assert "acmee" not in out
    code, out = cli("ingest", "files", "--tenant", "acmee", "--create-tenant", str(DBANK / "kredi.html"))
    assert code == 0 and "created tenant 'acmee'" in out


def test_a_large_ingest_encodes_in_worker_processes_and_finds_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()

    def ingest_and_search(data: str, size_limit: int) -> tuple[dict, list[dict]]:
        monkeypatch.setenv("INVEKTO_DATA_DIR", str(tmp_path / data))
        monkeypatch.setattr("api.cli.ingest.LARGE_INPUT_BYTES", size_limit)
        out = runner.invoke(
            app, ["ingest", "files", "--tenant", "dbank", "--json", str(DBANK / "kredi.html")]
        )
        assert out.exit_code == 0, out.output
        job = json.loads(out.output[out.output.index("{") :])
        found = runner.invoke(
            app, ["search", "--tenant", "dbank", "--json", "tasit kredisi sartlari nelerdir"]
        )
        return job, json.loads(found.output)["hits"]

    size = (DBANK / "kredi.html").stat().st_size
    small_job, small_hits = ingest_and_search("small", size + 1)
    large_job, large_hits = ingest_and_search("large", size)
    assert small_job["encode_workers"] == 0 and large_job["encode_workers"] >= 1
    assert large_job["files"][0]["chunks"] == small_job["files"][0]["chunks"] > 0
    # The same chunks with the same vectors: the workers run the same encoders.
    assert [h["text"] for h in large_hits] == [h["text"] for h in small_hits]
    assert [h["score"] for h in large_hits] == pytest.approx([h["score"] for h in small_hits], abs=1e-5)
    assert "Taşıt kredisi" in large_hits[0]["text"]

    monkeypatch.setenv("INVEKTO_ENCODE_WORKERS", "0")  # a setting given is kept, whatever the size
    explicit_job, _ = ingest_and_search("explicit", 0)
    assert explicit_job["encode_workers"] == 0
