"""`invekto-knowledge ingest ...`: documents, FAQ sheets, quick replies and past chats into a tenant's index."""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ingestion.pipeline import IngestItem, IngestProgress, iter_files
from ingestion.registry_models import Job, JobKind

from .common import console, default_encode_workers, load_settings, open_context

if TYPE_CHECKING:
    from retrieval.settings import Settings

    from ..context import ServiceContext

ingest_app = typer.Typer(
    help="Ingest tenant knowledge; unchanged files are skipped, changed ones replaced.", no_args_is_help=True
)

TenantOpt = typer.Option(
    ..., "--tenant", "-t", help="Tenant id (a new data dir's first tenant is created by its first ingestion)."
)
CreateTenantOpt = typer.Option(
    False, "--create-tenant", help="Create the tenant if there is none by this id."
)


def _tenant_for_ingestion(ctx, tenant: str, create: bool) -> None:  # noqa: ANN001 - a ServiceContext
    """Make sure `tenant` exists. The first tenant of a new data dir is created on its first ingestion;
    after that an unknown id (a typo) exits naming the close ones, unless --create-tenant."""
    if ctx.registry.get_tenant(tenant) is not None:
        return
    others = [t.id for t in ctx.registry.list_tenants()]
    if others and not create:
        close = difflib.get_close_matches(tenant, others, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        console.print(
            f"[red]error:[/red] no tenant {tenant!r}{hint}; create it with `invekto-knowledge tenant create "
            f"{tenant} --name ...`, or pass --create-tenant",
            soft_wrap=True,
        )
        raise typer.Exit(2)
    ctx.ingestor.ensure_tenant(tenant)
    console.print(f"created tenant {tenant!r}")


# Input of this size or more is encoded in worker processes, one per core (at most 4, as `serve` does):
# each loads the model first (about 2 s), which a small input does not earn back. Measured on 2 cores
# (`ingest files`, whole command): 1,500 passages (1.3 MB) 37.0-42.4 s in process, 26.4-26.6 s with two
# workers; 600 passages (520 KB) 17.1-19.3 s and 14.8-15.1 s; 5 passages 7.8-8.8 s and 10.1-10.3 s.
LARGE_INPUT_BYTES = 256 * 1024


def _ingest_settings(input_bytes: int) -> Settings:
    """Return the settings of an ingestion of `input_bytes` of files: INVEKTO_ENCODE_WORKERS when set,
    else encode workers for a large input and none for a small one."""
    settings = load_settings()
    if settings.encode_workers is None and input_bytes >= LARGE_INPUT_BYTES:
        settings = settings.model_copy(update={"encode_workers": default_encode_workers()})
    return settings


def _size(files: Iterable[Path]) -> int:
    return sum(f.stat().st_size for f in files if f.is_file())


def _run(
    tenant: str,
    kind: JobKind,
    make_items: Callable[..., list[IngestItem]],
    as_json: bool,
    create_tenant: bool = False,
    input_bytes: int = 0,
) -> None:
    settings = _ingest_settings(input_bytes)
    workers = settings.encode_workers or 0
    with open_context(settings) as ctx:
        _close_interrupted(ctx)
        _tenant_for_ingestion(ctx, tenant, create_tenant)
        items = make_items()
        if not items:
            console.print("[yellow]nothing to ingest[/yellow]")
            raise typer.Exit(1)
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[chunks]} chunks"),
            TimeElapsedColumn(),
            TextColumn("[dim]{task.fields[current]}"),
            console=console,
            disable=as_json,
        ) as bar:
            task = bar.add_task(kind, total=len(items), chunks=0, current="")

            def report(p: IngestProgress) -> None:
                bar.update(
                    task,
                    completed=p.files_done,
                    chunks=p.chunks_written,
                    current=f"{p.current}: {p.status}"[:60],
                )

            if workers and not as_json:
                console.print(
                    f"encoding in {workers} worker processes ({input_bytes / 1024:,.0f} KB of input)"
                )
            job = ctx.ingestor.run(tenant, kind, items, progress=report)
            # The job started the index build its new points call for: it finishes before the index closes.
            ctx.index.maintain()
    _print_job(job, as_json, workers)
    if job.status == "failed":
        raise typer.Exit(1)


def _close_interrupted(ctx: ServiceContext) -> None:
    """Mark the jobs a killed run left `running` as interrupted; uploads saved for the server stay queued.

    Only with the edge index: holding its lock, this command is the one process ingesting."""
    if ctx.settings.store != "edge":
        return
    from ingestion.jobs import UPLOADS_DIR, close_interrupted

    waiting, closed = close_interrupted(ctx.registry, ctx.settings.data_dir / UPLOADS_DIR)
    for job in closed:
        console.print(
            f"[yellow]job {job.id} ({job.tenant_id}, {job.kind}) was interrupted[/yellow]: {job.error}"
        )
    if waiting:
        console.print(
            f"{len(waiting)} uploaded jobs wait for the server (`invekto-knowledge serve`) to run them"
        )


def _print_job(job: Job, as_json: bool, encode_workers: int = 0) -> None:
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "job": job.id,
                    "status": job.status,
                    "encode_workers": encode_workers,
                    "files": [f.__dict__ for f in job.files],
                },
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    table = Table(title=f"job {job.id}: {job.status}")
    for col in ("file", "status", "doc id", "chunks", "error"):
        table.add_column(col)
    for f in job.files:
        style = {"failed": "red", "skipped": "dim"}.get(f.status, "")
        table.add_row(f.name, f.status, f.doc_id or "", str(f.chunks), f.error or "", style=style)
    console.print(table)
    console.print(f"{job.files_done} done, {job.files_failed} failed, {job.chunks_written} chunks written")


@ingest_app.command("files")
def ingest_files(
    paths: list[Path] = typer.Argument(
        ..., help="Files or folders (PDF, DOCX, PPTX, HTML, MD, TXT, CSV, XLSX, JSON)."
    ),
    tenant: str = TenantOpt,
    as_json: bool = typer.Option(False, "--json"),
    create_tenant: bool = CreateTenantOpt,
) -> None:
    """Parse, redact, chunk, embed and index documents."""
    from ingestion.sources import file_items

    missing = [p for p in paths if not p.exists()]
    if missing:
        console.print(f"[red]error:[/red] no such file or folder: {', '.join(map(str, missing))}")
        raise typer.Exit(2)
    base = paths[0] if len(paths) == 1 and paths[0].is_dir() else None
    files = iter_files(paths)
    _run(tenant, "files", lambda: file_items(tenant, files, base=base), as_json, create_tenant, _size(files))


@ingest_app.command("faq")
def ingest_faq(
    file: Path = typer.Argument(..., exists=True, dir_okay=False),
    tenant: str = TenantOpt,
    as_json: bool = typer.Option(False, "--json"),
    create_tenant: bool = CreateTenantOpt,
) -> None:
    """A FAQ sheet (CSV/XLSX/JSON with soru/cevap or question/answer columns): one chunk per pair."""
    from ingestion.sources import sheet_item

    _run(tenant, "faq", lambda: [sheet_item(tenant, file, "faq")], as_json, create_tenant, _size([file]))


@ingest_app.command("quick-replies")
def ingest_quick_replies(
    file: Path = typer.Argument(..., exists=True, dir_okay=False),
    tenant: str = TenantOpt,
    as_json: bool = typer.Option(False, "--json"),
    create_tenant: bool = CreateTenantOpt,
) -> None:
    """Invekto quick replies / templates (title + text columns)."""
    from ingestion.sources import sheet_item

    _run(
        tenant,
        "quick_replies",
        lambda: [sheet_item(tenant, file, "quick_reply")],
        as_json,
        create_tenant,
        _size([file]),
    )


@ingest_app.command("chats")
def ingest_chats(
    file: Path = typer.Argument(..., exists=True, dir_okay=False),
    tenant: str = TenantOpt,
    as_json: bool = typer.Option(False, "--json"),
    create_tenant: bool = CreateTenantOpt,
) -> None:
    """Past conversations (Invekto JSON/JSONL export, see docs/conversation-format.md): resolved ones only."""
    from ingestion.sources import chat_items

    def items() -> list[IngestItem]:
        imported = chat_items(tenant, file)
        for problem in imported.problems:
            console.print(f"[yellow]skipped:[/yellow] {problem}")
        console.print(f"{imported.conversations} conversations, {imported.pairs} question/answer pairs")
        return imported.items

    _run(tenant, "chats", items, as_json, create_tenant, _size([file]))


@ingest_app.command("list")
def ingest_list(tenant: str = TenantOpt, as_json: bool = typer.Option(False, "--json")) -> None:
    """List the tenant's documents with status, version and chunk counts."""
    with open_context() as ctx:
        docs = ctx.registry.list_documents(tenant)
    if as_json:
        typer.echo(
            json.dumps(
                [{k: str(v) if k.endswith("_at") else v for k, v in d.__dict__.items()} for d in docs],
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    table = Table(title=f"{tenant}: {len(docs)} documents")
    for col in ("doc id", "source", "status", "version", "chunks", "error"):
        table.add_column(col)
    for d in docs:
        table.add_row(d.doc_id, d.source, d.status, str(d.version), str(d.chunk_count), d.error or "")
    console.print(table)


@ingest_app.command("delete")
def ingest_delete(doc_id: str = typer.Argument(...), tenant: str = TenantOpt) -> None:
    """Remove every chunk of a document from the index."""
    with open_context() as ctx:
        if not ctx.ingestor.delete_document(tenant, doc_id):
            console.print(f"[red]error:[/red] tenant {tenant!r} has no document {doc_id!r}")
            raise typer.Exit(1)
    typer.echo(f"deleted {doc_id}")


@ingest_app.command("erase")
def ingest_erase(
    tenant: str = TenantOpt,
    phone: list[str] = typer.Option([], "--phone", help="A customer's phone number (repeatable)."),
    email: list[str] = typer.Option([], "--email", help="A customer's e-mail address (repeatable)."),
    conversation: list[str] = typer.Option([], "--conversation", help="A conversation id (repeatable)."),
    document: list[str] = typer.Option([], "--document", help="A document id (repeatable)."),
) -> None:
    """KVKK erasure: a customer's data by phone or e-mail, conversations, documents; the index is rewritten
    so nothing of them stays in its files. Prints what went (stored ids: no personal data)."""
    from assist.learning import learned_doc_id
    from ingestion.erasure import Eraser, ErasureResult
    from ingestion.jobs import UPLOADS_DIR

    if not (phone or email or conversation or document):
        console.print("[red]error:[/red] name at least one --phone, --email, --conversation or --document")
        raise typer.Exit(2)
    with open_context() as ctx:
        eraser = Eraser(ctx.ingestor, ctx.settings.data_dir / UPLOADS_DIR, learned_doc_id)
        results = [eraser.subject(tenant, value) for value in [*phone, *email]]
        results += [eraser.conversation(tenant, cid) for cid in conversation]
        results += [r for r in (eraser.document(tenant, doc_id) for doc_id in document) if r is not None]
    typer.echo(json.dumps(asdict(ErasureResult.merged(results)), ensure_ascii=False, indent=2))


@ingest_app.command("guard-ids")
def ingest_guard_ids() -> None:
    """Once after upgrading: ids an older release stored raw (file names, conversation ids with personal
    data) are written again guarded, in the index and the registry, and the index is rewritten."""
    from ingestion.erasure import Eraser
    from ingestion.jobs import UPLOADS_DIR

    with open_context() as ctx:
        moved, changed = Eraser(ctx.ingestor, ctx.settings.data_dir / UPLOADS_DIR).guard_stored_ids()
    typer.echo(f"{moved} index points and {changed} registry rows rewritten")
