"""`invekto-knowledge search`, `index info|optimize|reencode` and `prune`: the index and the stored records, from
the command line."""

from __future__ import annotations

import json

import typer

from retrieval.settings import Settings

from .common import console, load_settings

index_app = typer.Typer(help="Inspect and maintain the index.", no_args_is_help=True)


def _open_index(settings: Settings):  # noqa: ANN202 - KnowledgeIndex, imported lazily to keep --help fast
    from retrieval.index import KnowledgeIndex
    from retrieval.store import StoreError

    try:
        return KnowledgeIndex(settings)
    except StoreError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


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
        info: dict[str, int] = getattr(index.store, "info", dict)()
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


@index_app.command("reencode")
def index_reencode() -> None:
    """Encode every chunk's BM25 vector again with this release's encoding, after an upgrade that changed
    it (the service refuses the index until then). Dense vectors are kept; nothing is ingested again.
    Run it with the service stopped; on edge it ends by building the HNSW index (about 3 min per 200k
    chunks on 2 cores)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from retrieval.index import reencode_sparse
    from retrieval.store import StoreError

    with Progress(
        TextColumn("[bold]BM25 vectors"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("reencode", total=None)
        try:
            done, before = reencode_sparse(load_settings(), progress=lambda n: bar.advance(task, n))
        except StoreError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from exc
    if done == 0:
        typer.echo("the index already holds this release's BM25 encoding: nothing to do")
    else:
        typer.echo(f"{done} chunks re-encoded ({before} -> this release's encoding)")


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
