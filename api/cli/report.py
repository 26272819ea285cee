"""`invekto-knowledge report gaps|conflicts`: what a tenant's knowledge lacks, and where its sources disagree."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import typer
from rich.markup import escape
from rich.table import Table

from .common import console, open_context

report_app = typer.Typer(
    help="Knowledge reports for a tenant's admin: gaps and conflicts.", no_args_is_help=True
)


def _service(ctx):  # noqa: ANN001, ANN202 - ServiceContext → AssistService, imported lazily to keep --help fast
    from assist.service import AssistService

    return AssistService(
        ctx.settings.model_copy(update={"llm_provider": "extractive"}), ctx.index, ctx.registry, ctx.ingestor
    )


def _tenant_or_exit(ctx, tenant: str) -> None:  # noqa: ANN001
    if ctx.registry.get_tenant(tenant) is None:
        console.print(f"[red]error:[/red] no tenant {tenant!r} (invekto-knowledge tenant list)")
        raise typer.Exit(2)


@report_app.command("gaps")
def gaps(
    tenant: str = typer.Option(..., help="Tenant id."),
    days: int = typer.Option(30, min=1, help="The period: questions handed off in the last DAYS days."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Questions handed off for no_knowledge or low_confidence, grouped into topics, most asked first."""
    since = datetime.now(UTC) - timedelta(days=days)
    with open_context() as ctx:
        _tenant_or_exit(ctx, tenant)
        topics = _service(ctx).knowledge_gaps(tenant, since)
    if as_json:
        from ..routes.knowledge import gap_report

        typer.echo(gap_report(since, topics).model_dump_json(indent=1))
        return
    if not topics:
        console.print(f"No question was handed off for want of knowledge in the last {days} days.")
        return
    table = Table(
        title=f"Knowledge gaps of {tenant}, last {days} days ({sum(t.count for t in topics)} questions)"
    )
    for column in ("topic", "asked", "examples", "an agent's earlier answer"):
        table.add_column(column)
    for t in topics:
        label = escape(t.label) + (" [dim](off topic)[/dim]" if t.off_topic else "")
        candidate = (
            f"{escape(t.candidate.text[:120])} [dim]({escape(t.candidate.ref)})[/dim]" if t.candidate else ""
        )
        table.add_row(label, str(t.count), escape("\n".join(t.examples)), candidate)
    console.print(table)


@report_app.command("conflicts")
def conflicts(
    tenant: str = typer.Option(..., help="Tenant id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Sources that state different values about the same thing, and documents a newer one replaced."""
    with open_context() as ctx:
        _tenant_or_exit(ctx, tenant)
        found, stale = _service(ctx).knowledge_conflicts(tenant)
    if as_json:
        from ..routes.knowledge import conflict_report

        typer.echo(conflict_report(found, stale).model_dump_json(indent=1))
        return
    if not found and not stale:
        console.print("No conflicting sources and no replaced documents.")
        return
    table = Table(title=f"Conflicting sources of {tenant} (never sent automatically until fixed)")
    for column in ("what differs", "one source says", "another says"):
        table.add_column(column)
    for c in found:
        table.add_row(
            escape(c.kind),
            f"{escape(c.first.value)} — {escape(c.first.text)} [dim]({escape(c.first.ref)})[/dim]",
            f"{escape(c.second.value)} — {escape(c.second.text)} [dim]({escape(c.second.ref)})[/dim]",
        )
    console.print(table)
    for s in stale:
        console.print(f"stale: {escape(s.ref)} replaced by {escape(s.replaced_by)} — {escape(s.reason)}")
