"""The `invekto-knowledge` command: one entry point, a subcommand per job."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import typer
from rich.table import Table

from retrieval.settings import Settings

from .cli_admin import bench_api, key_app, serve, tenant_app
from .cli_common import console, load_settings
from .cli_db import db_app
from .cli_demo import demo
from .cli_ingest import ingest_app
from .cli_report import report_app

app = typer.Typer(
    help="Invekto knowledge and agent-assist service.", no_args_is_help=True, add_completion=False
)
bench_app = typer.Typer(help="Benchmarks that write JSON and a Markdown table.", no_args_is_help=True)
index_app = typer.Typer(help="Inspect and maintain the index.", no_args_is_help=True)
eval_app = typer.Typer(
    help="Offline evaluation: retrieval and answer quality, reports, comparisons, CI gates.",
    no_args_is_help=True,
)
app.add_typer(bench_app, name="bench")
app.add_typer(index_app, name="index")
app.add_typer(eval_app, name="eval")


@eval_app.callback()
def _eval_needs_its_extra() -> None:
    from rich.markup import escape

    from retrieval.extras import MissingExtraError, require_installed

    try:
        require_installed(("ranx", "matplotlib", "sklearn"), "eval", "invekto-knowledge eval")
    except MissingExtraError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc


DEFAULT_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "xquad-tr-dev"
app.add_typer(ingest_app, name="ingest")
app.command()(serve)
app.command("demo")(demo)
app.add_typer(tenant_app, name="tenant")
app.add_typer(key_app, name="key")
app.add_typer(report_app, name="report")
app.add_typer(db_app, name="db")
bench_app.command("api")(bench_api)


def _open_index(settings: Settings):  # noqa: ANN202 - KnowledgeIndex, imported lazily to keep --help fast
    from retrieval.index import KnowledgeIndex
    from retrieval.store import StoreError

    try:
        return KnowledgeIndex(settings)
    except StoreError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


@app.command()
def search(
    tenant: str = typer.Option(..., "--tenant", "-t", help="Tenant whose knowledge is searched."),
    query: str = typer.Argument(..., help="Question or customer message."),
    limit: int = typer.Option(5, "--limit", "-k"),
    source: list[str] = typer.Option(
        [], "--source", help="Only these sources (doc, faq, chat, quick_reply)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Search one tenant's knowledge (hybrid dense + Turkish BM25)."""
    from retrieval.index import QueryOptions
    from retrieval.models import SearchFilters

    with _open_index(load_settings()) as index:
        try:
            result = index.search(
                tenant, query, QueryOptions(limit=limit), SearchFilters(sources=tuple(source))
            )
        except ValueError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from exc
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "note": result.note,
                    "timings_ms": result.timings_ms,
                    "hits": [h.__dict__ for h in result.hits],
                },
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    if result.note:
        console.print(f"[yellow]{result.note}[/yellow]")
    for rank, hit in enumerate(result.hits, 1):
        typer.echo(
            f"{rank}. [{hit.source}] {hit.title} › {hit.section}  ({hit.doc_id}#{hit.chunk_id}, score {hit.score:.3f})"
        )
        typer.echo(f"   {hit.text[:200]}")


@index_app.command("info")
def index_info() -> None:
    """Print the index location, backend, embedder and point counts."""
    settings = load_settings()
    with _open_index(settings) as index:
        info = getattr(index.store, "info", lambda: {})()
        typer.echo(
            json.dumps(
                {
                    "backend": index.store.backend,
                    "data_dir": str(settings.data_dir),
                    **index.meta.as_dict(),
                    **info,
                },
                indent=2,
            )
        )


@index_app.command("optimize")
def index_optimize() -> None:
    """Build the HNSW index now (edge backend; blocks, about 3 min per 200k chunks on 2 cores)."""
    with _open_index(load_settings()) as index:
        ran = index.store.optimize()
        typer.echo("optimized" if ran else "already optimal")


def write_report(out: Path, name: str, title: str, report: dict, table: str) -> str:
    """Write a benchmark's `<name>.json` and `<name>.md` into `out`; return the Markdown table."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    (out / f"{name}.md").write_text(f"# {title}\n\n" + table, encoding="utf-8")
    return table


@app.command()
def prune(
    tenant: str | None = typer.Option(
        None, "--tenant", "-t", help="Only this tenant (default: every tenant)."
    ),
) -> None:
    """Delete audit entries and suggestions older than each tenant's retention_days (the server also
    does this in the background); replies that were learned stay."""
    from assist.retention import prune as prune_expired
    from ingestion.registry import Registry

    with Registry(load_settings().registry_url) as registry:
        pruned = prune_expired(registry, tenant_id=tenant)
    if tenant is not None and not pruned:
        console.print(f"[red]error:[/red] no tenant {tenant!r}")
        raise typer.Exit(2)
    for p in pruned:
        typer.echo(
            f"{p.tenant_id}: {p.audit_entries} audit entries, {p.suggestions} suggestions and "
            f"{p.gap_questions} gap questions older than {p.retention_days} days deleted"
        )


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
) -> None:
    """Ingestion throughput vs the raw encoder on the same texts, in one run."""
    from ingestion.bench import markdown_table, run_ingest_benchmark
    from retrieval.embedders import load_embedder

    settings = load_settings()
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

    from .bench_stall import markdown_table, run_stall_benchmark

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


FailOverOpt = typer.Option(
    [], "--fail-over", help="Upper gate such as wrong_answer_rate=0.03 or near_miss.wrong_answer_rate=0.05."
)


def _gate(metrics: dict, fail_under: Sequence[str], fail_over: Sequence[str] = ()) -> None:
    from eval.compare import GateError, check_gates, parse_gates

    try:
        gates = parse_gates(fail_under, fail_over)
        failures = check_gates(metrics, gates)
    except GateError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    for failure in failures:
        console.print(f"[red]gate failed:[/red] {failure}")
    if failures:
        raise typer.Exit(1)
    if gates:
        console.print(f"[green]all {len(gates)} gates passed[/green]")


DATASET_HELP = (
    "Folder with corpus.jsonl and queries.jsonl, or a tenant bundle (knowledge/ and queries.jsonl)."
)


def _print_per_tag(metrics: dict, columns: Sequence[str]) -> None:
    per_tag = metrics.get("per_tag") or {}
    if not per_tag:
        return
    table = Table(title="per tag")
    for col in ("tag", "n", *columns):
        table.add_column(col)
    for tag, m in per_tag.items():
        cells = [f"{m[c]:.3f}" if isinstance(m.get(c), float) else str(m.get(c, "-")) for c in columns]
        table.add_row(tag, str(m.get("n_queries", "")), *cells)
    console.print(table)


@eval_app.command("retrieval")
def eval_retrieval(
    dataset: Path = typer.Option(..., "--dataset", help=DATASET_HELP),
    out: Path = typer.Option(
        ..., "--out", help="Run folder: metrics.json, per_query.jsonl, report.md, report.html."
    ),
    extra_corpus: list[Path] = typer.Option(
        [], "--extra-corpus", help="More corpus folders mixed in as distractors."
    ),
    fusion: str | None = typer.Option(None, help="Override INVEKTO_FUSION for this run."),
    dense_weight: float | None = typer.Option(None, help="Override INVEKTO_DENSE_WEIGHT for this run."),
    fail_under: list[str] = typer.Option([], "--fail-under", help="Gate such as recall@1=0.93 (repeatable)."),
    fail_over: list[str] = FailOverOpt,
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Recall@1/5/10, MRR@10, nDCG@10 (tenant bundles: hit@k and MRR over sources, per tag) and latency,
    through the same ingestion and search users run."""
    from eval.datasets import DatasetError
    from eval.runner import run_retrieval_eval
    from retrieval.index import QueryOptions

    try:
        metrics = run_retrieval_eval(
            load_settings(),
            dataset,
            out,
            extra_corpus=extra_corpus,
            options=QueryOptions(limit=10, fusion=fusion, dense_weight=dense_weight),
            show_progress=not quiet,
        )
    except (DatasetError, FileNotFoundError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    keys = [
        *("recall@1", "recall@5", "recall@10", "ndcg@10"),
        *("hit@1", "hit@3", "hit@5", "hit@10"),
        *("mrr@10", "n_queries", "latency_ms_p50", "latency_ms_p95"),
    ]
    for key in (k for k in keys if k in metrics):
        value = metrics[key]
        typer.echo(f"{key:>16}  {value:.4f}" if isinstance(value, float) else f"{key:>16}  {value}")
    _print_per_tag(metrics, ("hit@1", "hit@5", "mrr@10"))
    typer.echo(f"report: {out / 'report.html'}")
    _gate(metrics, fail_under, fail_over)


@eval_app.command("answers")
def eval_answers(
    dataset: Path = typer.Option(..., "--dataset", help=DATASET_HELP),
    out: Path = typer.Option(..., "--out", help="Run folder."),
    provider: str = typer.Option("extractive", help="extractive | anthropic | openai-compatible"),
    extra_corpus: list[Path] = typer.Option([], "--extra-corpus"),
    fail_under: list[str] = typer.Option(
        [], "--fail-under", help="Gate such as auto_answer_rate=0.5 or paraphrase.auto_answer_rate=0.75."
    ),
    fail_over: list[str] = FailOverOpt,
    precision_target: float | None = typer.Option(
        None, "--precision-target", min=0.5, max=1.0, help="The eval tenant's auto-answer precision target."
    ),
    quiet: bool = typer.Option(False, "--quiet"),
) -> None:
    """Suggest + resolve per question: answer/citation/answered/handoff rates, ragas scores (LLM judge if ANTHROPIC_API_KEY)."""
    from eval.answers import run_answer_eval
    from eval.datasets import DatasetError

    settings = load_settings()
    judge = None
    if settings.anthropic_api_key:
        import anthropic

        from eval.ragas_metrics import ClaudeJudge

        judge = ClaudeJudge(
            anthropic.Anthropic(api_key=settings.anthropic_api_key.get_secret_value()),
            model=settings.anthropic_model,
        )
    if provider not in ("extractive", "anthropic", "openai-compatible"):
        console.print(f"[red]error:[/red] unknown provider {provider!r}")
        raise typer.Exit(2)
    try:
        metrics = run_answer_eval(
            settings,
            dataset,
            out,
            provider=provider,
            extra_corpus=extra_corpus,
            judge=judge,
            show_progress=not quiet,
            precision_target=precision_target,
        )
    except (DatasetError, FileNotFoundError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    for key, value in metrics.items():
        if key not in ("config", "versions", "per_tag", "risk_coverage", "policy_evidence"):
            typer.echo(f"{key:>42}  {value:.4f}" if isinstance(value, float) else f"{key:>42}  {value}")
    _print_per_tag(
        metrics, ("auto_answer_rate", "wrong_answer_rate", "handoff_rate_unanswerable", "suggest_hit@3")
    )
    typer.echo(f"report: {out / 'report.html'}")
    _gate(metrics, fail_under, fail_over)


@eval_app.command("train-verifier")
def eval_train_verifier(
    bundle: list[Path] = typer.Option(..., "--bundle", help="Labelled tenant bundle (repeatable)."),
    out: Path = typer.Option(
        Path(__file__).resolve().parents[1] / "assist" / "data" / "answer_verifier.json",
        "--out",
        help="Model file to write (default: the one the package ships).",
    ),
    folds: int = typer.Option(5, "--folds", help="Cross-validation folds over labelled queries (0: none)."),
    quiet: bool = typer.Option(False, "--quiet"),
) -> None:
    """Train the answer verifier on labelled bundles plus hard cases from their knowledge; report CV quality."""
    from eval.datasets import DatasetError
    from eval.verifier_training import collect_rows, cross_validate, fit

    try:
        rows = collect_rows(load_settings(), bundle, show_progress=not quiet)
    except (DatasetError, FileNotFoundError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    trained_on = {
        "bundles": [p.name for p in bundle],
        "rows": len(rows.y),
        "positives": int(sum(rows.y)),
        "labelled_queries": len(rows.queries),
    }
    if folds > 1:
        summary = {k: v for k, v in cross_validate(rows, folds).items() if k != "risk_coverage"}
        trained_on["cross_validation"] = summary
        for key, value in summary.items():
            typer.echo(f"{key:>34}  {value}")
    model = fit(rows, trained_on)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    typer.echo(f"model: {out} ({len(rows.y)} rows, {trained_on['positives']} positive)")


@eval_app.command("fusion-sweep")
def eval_fusion_sweep(
    dataset: Path = typer.Option(..., "--dataset"),
    out: Path | None = typer.Option(None, "--out", help="Write the Markdown table here too."),
) -> None:
    """Every fusion method and weight on one dataset, with title folds to expose over-tuning."""
    from eval.fusion_sweep import markdown, sweep

    table = markdown(sweep(load_settings(), dataset))
    typer.echo(table)
    if out:
        out.write_text(table, encoding="utf-8")


@eval_app.command("build-from-chats")
def eval_build_from_chats(
    chats: Path = typer.Option(
        ..., "--chats", exists=True, dir_okay=False, help="Conversation export (JSONL or JSON)."
    ),
    out: Path = typer.Option(..., "--out", help="Dataset folder to write."),
    holdout: float = typer.Option(0.2, help="Share of resolved conversations held out as questions."),
    seed: int = typer.Option(13),
) -> None:
    """Turn resolved conversations into a dataset: held-out customer questions, the team's replies as references."""
    from eval.from_chats import build_from_chats

    try:
        summary = build_from_chats(chats, out, holdout=holdout, seed=seed)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    for problem in summary.problems:
        console.print(f"[yellow]skipped:[/yellow] {problem}")
    typer.echo(
        f"{summary.conversations} resolved conversations, {summary.held_out} held out: "
        f"{summary.corpus_docs} corpus docs, {summary.queries} questions ({summary.answerable} answerable) in {out}"
    )


@eval_app.command("compare")
def eval_compare(
    run_a: Path = typer.Argument(..., help="Baseline run folder (or its metrics.json)."),
    run_b: Path = typer.Argument(..., help="Candidate run folder."),
    fail_under: list[str] = typer.Option(
        [], "--fail-under", help="Gates checked on RUN_B, e.g. recall@1=0.93."
    ),
    fail_over: list[str] = FailOverOpt,
) -> None:
    """Metric deltas side by side; with --fail-under/--fail-over, exit 1 when RUN_B misses a gate."""
    from eval.compare import compare_runs, format_comparison, load_metrics

    try:
        deltas = compare_runs(run_a, run_b)
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    typer.echo(format_comparison(deltas, run_a.name, run_b.name))
    _gate(load_metrics(run_b), fail_under, fail_over)


if __name__ == "__main__":
    app()
