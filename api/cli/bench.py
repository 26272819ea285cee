"""`invekto-knowledge bench …`: benchmarks that write JSON and a Markdown table (retrieval, ingestion,
stalls, soak, the HTTP API under load)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from .common import console, fail, load_settings

bench_app = typer.Typer(help="Benchmarks that write JSON and a Markdown table.", no_args_is_help=True)
DEFAULT_DEV = Path(__file__).resolve().parents[3] / "shared" / "data" / "xquad-tr-dev"


def write_report(out: Path, name: str, title: str, report: dict, table: str) -> str:
    """Write a benchmark's `<name>.json` and `<name>.md` into `out`; return the Markdown table."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    (out / f"{name}.md").write_text(f"# {title}\n\n" + table, encoding="utf-8")
    return table


@bench_app.command("retrieval")
def bench_retrieval(
    out: Path = typer.Option(
        Path("bench-results"), "--out", help="Folder for retrieval.json and retrieval.md."
    ),
    dataset: Path = typer.Option(
        DEFAULT_DEV, "--dataset", help="Dataset folder whose texts seed the points."
    ),
    sizes: str = typer.Option("10000,20000,100000", help="Edge index sizes, comma separated."),
    local_sizes: str = typer.Option("10000,20000", help="qdrant-client local-mode sizes (slow: keep small)."),
    tenants: int = typer.Option(50),
    queries: int = typer.Option(300, help="Queries per edge measurement."),
) -> None:
    """Engine p50/p95 (edge vs qdrant-client local mode) and end-to-end query latency."""
    from retrieval.bench import markdown_table, run_benchmark
    from retrieval.embedders import load_embedder

    settings = load_settings()
    if not (dataset / "corpus.jsonl").exists():
        console.print(f"[red]error:[/red] no corpus.jsonl in {dataset}")
        raise typer.Exit(2)
    report = run_benchmark(
        settings,
        load_embedder(settings.embedder),
        dataset,
        sizes=tuple(int(s) for s in sizes.split(",") if s),
        local_sizes=tuple(int(s) for s in local_sizes.split(",") if s),
        tenants=tenants,
        queries=queries,
        progress=lambda msg: console.print(f"[dim]{msg}[/dim]"),
    )
    typer.echo(write_report(out, "retrieval", "Retrieval benchmark", report, markdown_table(report)))
    typer.echo(f"wrote {out / 'retrieval.json'} and {out / 'retrieval.md'}")


@bench_app.command("ingest")
def bench_ingest(
    out: Path = typer.Option(Path("bench-results"), "--out", help="Folder for ingest.json and ingest.md."),
    dataset: Path = typer.Option(
        DEFAULT_DEV, "--dataset", help="Dataset folder whose passages are ingested."
    ),
    chunks: int = typer.Option(3000, help="How many documents (passages repeated under distinct ids)."),
    encode_workers: int | None = typer.Option(
        None,
        "--encode-workers",
        min=0,
        help="Encode in this many worker processes (default: INVEKTO_ENCODE_WORKERS).",
    ),
) -> None:
    """Ingestion throughput vs the raw encoder (one process) on the same texts, in one run."""
    from ingestion.bench import markdown_table, run_ingest_benchmark
    from retrieval.embedders import load_embedder

    settings = load_settings()
    if encode_workers is not None:
        settings = settings.model_copy(update={"encode_workers": encode_workers})
    report = run_ingest_benchmark(
        settings, load_embedder(settings.embedder), dataset / "corpus.jsonl", chunks=chunks
    )
    typer.echo(write_report(out, "ingest", "Ingestion benchmark", report, markdown_table(report)))


@bench_app.command("stall")
def bench_stall(
    out: Path = typer.Option(Path("bench-results"), "--out", help="Folder for stall.json and stall.md."),
    large_mb: float = typer.Option(2.0, "--large-mb", help="Size of the large .txt one tenant uploads."),
    time_limit_s: float = typer.Option(
        5.0, "--time-limit-s", help="Parse time limit the large file is tried under."
    ),
    memory_limit_mb: int = typer.Option(
        8, "--memory-limit-mb", help="Parse memory limit the large file is tried under."
    ),
    before: Path | None = typer.Option(
        None, "--before", help="A stall.json of an earlier run, shown beside this one in the table."
    ),
) -> None:
    """Another tenant's one-document job while a large file is ingested, the parse limits, shutdown time."""
    from retrieval.embedders import load_embedder

    from ..bench_stall import markdown_table, run_stall_benchmark

    settings = load_settings()
    report = run_stall_benchmark(
        settings,
        load_embedder(settings.embedder),
        large_mb=large_mb,
        timeout_limit_s=time_limit_s,
        memory_limit_mb=memory_limit_mb,
    )
    earlier = json.loads(before.read_text(encoding="utf-8")) if before else None
    typer.echo(write_report(out, "stall", "Stall benchmark", report, markdown_table(earlier, report)))


@bench_app.command("soak")
def bench_soak(
    out: Path = typer.Option(Path("bench-results"), "--out", help="Folder for soak.json and soak.md."),
    dataset: Path = typer.Option(
        DEFAULT_DEV, "--dataset", help="Dataset folder whose texts seed the points and the jobs."
    ),
    base: int = typer.Option(20_000, help="Points in the index before the jobs."),
    jobs: int = typer.Option(10, help="Ingestion jobs, each ending with maintain()."),
    job_chunks: int = typer.Option(1_000, "--job-chunks", help="Chunks per job (real passages, encoded)."),
    clients: int = typer.Option(4, help="Search clients querying during the jobs."),
    pause_ms: int = typer.Option(
        20, "--pause-ms", help="Each client's pause between an answer and its next search."
    ),
) -> None:
    """Ingestion and searching at the same time: search stalls, index disk and RSS over time."""
    from retrieval.embedders import load_embedder
    from retrieval.soak import markdown_table, run_soak

    settings = load_settings()
    report = run_soak(
        settings,
        load_embedder(settings.embedder),
        dataset,
        base=base,
        jobs=jobs,
        job_chunks=job_chunks,
        clients=clients,
        pause_ms=pause_ms,
        progress=lambda msg: console.print(f"[dim]{msg}[/dim]"),
    )
    typer.echo(write_report(out, "soak", "Soak benchmark", report, markdown_table(report)))


@bench_app.command("api")
def bench_api(
    out: Path = typer.Option(Path("bench-results"), "--out", help="Folder for api.json and api.md."),
    dataset: Path = typer.Option(
        DEFAULT_DEV,
        "--dataset",
        help="corpus.jsonl passages are indexed (repeated), queries.jsonl questions are asked.",
    ),
    chunks: int = typer.Option(10_000, help="Chunks to index before the load."),
    connections: int = typer.Option(32, help="Concurrent clients."),
    duration: int = typer.Option(60, help="Seconds of load."),
    threads: int = typer.Option(1, help="wrk threads (they share the machine with the server)."),
    compute_slots: int | None = typer.Option(None, help="The server's --compute-slots (default: its own)."),
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        help="Keep the index here and reuse it on the next run (default: a temporary dir).",
    ),
    pause_ms: int = typer.Option(
        0,
        "--pause-ms",
        min=0,
        help="Each client's pause between an answer and its next request (0: back to back, saturation).",
    ),
    workers: int = typer.Option(1, min=1, max=64, help="The server's --workers (HTTP worker processes)."),
    baseline: Path | None = typer.Option(
        None,
        "--baseline",
        help="Another checkout of this project (e.g. a git worktree of the last release): its server and "
        "this one run in turns on one index, with each build's median.",
    ),
    rounds: int = typer.Option(2, min=1, help="With --baseline: rounds of one run per build."),
) -> None:
    """Load `POST /v1/assist/suggest` with wrk on loopback (extractive provider) and report req/s, latency, RSS."""
    from ..bench import BenchError, comparison_table, markdown_table, run_api_benchmark, run_api_comparison

    options: dict[str, Any] = {
        "chunks": chunks,
        "connections": connections,
        "duration_s": duration,
        "threads": threads,
        "compute_slots": compute_slots,
        "workers": workers,
        "pause_ms": pause_ms,
    }

    def progress(msg: str) -> None:
        console.print(f"[dim]{msg}[/dim]")

    try:
        if baseline is not None:
            compared = run_api_comparison(
                dataset, baseline, rounds=rounds, data_dir=data_dir, progress=progress, **options
            )
            typer.echo(write_report(out, "api", "API load benchmark", compared, comparison_table(compared)))
        else:
            report = run_api_benchmark(dataset, data_dir=data_dir, progress=progress, **options)
            typer.echo(write_report(out, "api", "API load benchmark", report, markdown_table(report)))
    except BenchError as exc:
        raise fail(str(exc), 2) from exc
    typer.echo(f"wrote {out / 'api.json'} and {out / 'api.md'}")
