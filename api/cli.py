"""The `invekto-knowledge` command: one entry point, a subcommand per job."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from retrieval.settings import Settings

app = typer.Typer(
    help="Invekto knowledge and agent-assist service.", no_args_is_help=True, add_completion=False
)
bench_app = typer.Typer(help="Benchmarks that write JSON and a Markdown table.", no_args_is_help=True)
index_app = typer.Typer(help="Inspect and maintain the index.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
app.add_typer(index_app, name="index")

console = Console(stderr=True)
DEFAULT_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "xquad-tr-dev"


def load_settings() -> Settings:
    return Settings()


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
    out.mkdir(parents=True, exist_ok=True)
    (out / "retrieval.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    table = markdown_table(report)
    (out / "retrieval.md").write_text("# Retrieval benchmark\n\n" + table, encoding="utf-8")
    typer.echo(table)
    typer.echo(f"wrote {out / 'retrieval.json'} and {out / 'retrieval.md'}")


if __name__ == "__main__":
    app()
