"""`invekto-knowledge demo`: the first command a newcomer runs.

It seeds the demo tenant (a small Turkish bank knowledge base that ships in `api/demo_data/`), starts
the server with that same service context (so the index is opened, and locked, once) and prints the
playground URL, a fresh API key, the answering mode and a curl to paste. Offline by default; with
`ANTHROPIC_API_KEY` set the settings pick Claude on their own.
"""

from __future__ import annotations

import json
import shlex
import socket
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import typer

from retrieval.settings import Settings

from ..server import admin_token_problem, uvicorn_config
from .common import console, load_settings, open_context

if TYPE_CHECKING:
    from ..context import ServiceContext
    from ..demo import DemoSeed

EXAMPLE_QUESTION = "Taşıt kredisi için şartlar nelerdir?"


@dataclass(frozen=True)
class SeedReport:
    """What seeding did to the demo files this run: newly indexed, unchanged (skipped), failed."""

    indexed: int
    skipped: int
    failed: list[str]


def answering_mode(settings: Settings) -> tuple[str, str]:
    """Return the mode name the API reports ("extractive", "anthropic:<model>", ...) and a line for humans.

    A provider asked for without its configuration is a ValueError (from provider_from_settings).
    """
    from assist.providers import provider_from_settings

    provider = provider_from_settings(settings)
    if provider is None:
        return "extractive", "offline extractive (no LLM; set ANTHROPIC_API_KEY to answer with Claude)"
    if provider.name.startswith("anthropic:"):
        return provider.name, f"Claude ({provider.name})"
    return provider.name, f"LLM ({provider.name})"


def base_url(host: str, port: int) -> str:
    """Return the URL a local browser uses for a server bound to host:port."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def suggest_curl(url: str, key: str) -> str:
    body = json.dumps(
        {"conversation_id": "demo-1", "messages": [{"role": "customer", "text": EXAMPLE_QUESTION}]},
        ensure_ascii=False,
    )
    return (
        f"curl -sS -X POST {url}/v1/assist/suggest -H {shlex.quote('Authorization: Bearer ' + key)} \\\n"
        f"  -H 'Content-Type: application/json' -d {shlex.quote(body)}"
    )


def _seed(ctx: ServiceContext) -> tuple[DemoSeed, SeedReport]:
    from ..demo import DEMO_TENANT, seed_demo

    before = {job.id for job in ctx.registry.list_jobs(DEMO_TENANT)}
    seed = seed_demo(ctx, DEMO_TENANT)
    files = [f for job in ctx.registry.list_jobs(seed.tenant_id) if job.id not in before for f in job.files]
    report = SeedReport(
        indexed=sum(f.status == "indexed" for f in files),
        skipped=sum(f.status == "skipped" for f in files),
        failed=[f"{f.name}: {f.error}" for f in files if f.status == "failed"],
    )
    return seed, report


def _print_ready(url: str, key: str, mode_line: str, serving: bool) -> None:
    lines = [
        "",
        "Invekto Knowledge demo" + (" is running" if serving else " is seeded"),
        f"  playground  {url}/playground",
        f"  open with the key filled in: {url}/playground#key={key}",
        f"  API key     {key}",
        f"  mode        {mode_line}",
        f"  API docs    {url}/docs",
        "",
        "Ask the demo bank a question:",
        suggest_curl(url, key),
        "",
    ]
    if serving:
        lines.append("Press Ctrl+C to stop.")
    else:
        lines.append("Start the server with `invekto-knowledge demo` (or `invekto-knowledge serve`).")
    typer.echo("\n".join(lines))


def demo(
    host: str | None = typer.Option(None, help="Address to bind (default INVEKTO_HOST, 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (default INVEKTO_PORT, 7104)."),
    serve: bool = typer.Option(
        True, "--serve/--no-serve", help="Start the server after seeding (--no-serve: seed and print only)."
    ),
    access_log: bool = typer.Option(False, help="Log every request (off: the playground polls jobs)."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Seed the demo tenant (a Turkish bank FAQ, quick replies, past chats), start the server, print a key.

    Each run prints a new API key for the demo tenant; earlier demo keys keep working. Unchanged demo
    files are skipped, so a second run is quick.
    """
    settings = load_settings()
    problem = admin_token_problem(settings)
    if problem:
        console.print(f"[red]error:[/red] {problem}")
        raise typer.Exit(2)
    try:
        _, mode_line = answering_mode(settings)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    bind_host, bind_port = host or settings.host, port or settings.port
    url = base_url(bind_host, bind_port)
    busy = serve and port_in_use(bind_host, bind_port)
    if busy:
        console.print(
            f"[red]error:[/red] {bind_host}:{bind_port} is in use ({busy}); pick another with --port"
        )
        raise typer.Exit(2)
    with open_context(settings) as ctx:
        console.print(f"[dim]seeding the demo tenant in {settings.data_dir.resolve()} ...[/dim]")
        seed, report = _seed(ctx)
        console.print(
            f"demo tenant [bold]{seed.tenant_id}[/bold]: {seed.documents} documents, {seed.chunks} chunks "
            f"({report.indexed} files indexed, {report.skipped} unchanged, {len(report.failed)} failed)",
            soft_wrap=True,
        )
        for failure in report.failed:
            console.print(f"[yellow]failed:[/yellow] {failure}")
        if not serve:
            _print_ready(url, seed.api_key, mode_line, serving=False)
            return
        ready = partial(_print_ready, url, seed.api_key, mode_line, serving=True)
        _serve(ctx, bind_host, bind_port, access_log, log_level, ready)


def port_in_use(host: str, port: int) -> str:
    """Return why the server could not listen on host:port ("" when it can), checked before seeding."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return ""


def _serve(
    ctx: ServiceContext, host: str, port: int, access_log: bool, log_level: str, on_ready: Callable[[], None]
) -> None:
    """Run uvicorn over the already open context (one process holds the index lock) until Ctrl+C."""
    import uvicorn

    from ..app import create_app

    class _DemoServer(uvicorn.Server):
        # Print the URL and key once the socket listens, not before: a click on it must work.
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                on_ready()

    app = create_app(ctx.settings, ctx)
    _DemoServer(uvicorn_config(app, host=host, port=port, log_level=log_level, access_log=access_log)).run()
