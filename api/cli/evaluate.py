"""`invekto-knowledge eval …`: offline evaluation of retrieval and answer quality, reports, comparisons
and CI gates (the one command group that needs the `eval` extra)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import typer
from rich.table import Table

from .common import console, load_settings

eval_app = typer.Typer(
    help="Offline evaluation: retrieval and answer quality, reports, comparisons, CI gates.",
    no_args_is_help=True,
)


@eval_app.callback()
def _eval_needs_its_extra() -> None:
    from rich.markup import escape

    from retrieval.extras import MissingExtraError, require_installed

    try:
        require_installed(("ranx", "matplotlib", "sklearn"), "eval", "invekto-knowledge eval")
    except MissingExtraError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc


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
        Path(__file__).resolve().parents[2] / "assist" / "data" / "answer_verifier.json",
        "--out",
        help="Model file to write (default: the one the package ships).",
    ),
    folds: int = typer.Option(5, "--folds", help="Cross-validation folds over labelled queries (0: none)."),
    quiet: bool = typer.Option(False, "--quiet"),
) -> None:
    """Train the answer verifier on labelled bundles plus hard cases from their knowledge; report CV quality."""
    from eval.datasets import DatasetError
    from eval.verifier_training import collect_rows, cross_validate, fit, simulate_policy

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
        # The policy's promise on held-out customer messages: does the self-test threshold keep the target?
        simulated = simulate_policy(rows, folds)
        trained_on["policy_simulation"] = simulated
        for row in simulated:
            if row["mode"] != "auto":
                typer.echo(f"{'policy at target ' + str(row['target']):>34}  suggest-only")
                continue
            typer.echo(
                f"{'policy at target ' + str(row['target']):>34}  threshold {row['threshold']}: "
                f"{row['answered']} held-out messages answered, {row['wrong']} wrong "
                f"(precision {row['precision']}), coverage {row['coverage']}"
            )
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
