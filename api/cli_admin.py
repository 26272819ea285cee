"""`invekto-knowledge serve`, tenant and API key administration, and `bench api`.

The admin commands open only the registry database, so they work while the server runs (the server
holds the edge index lock, not the database).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .cli_common import console, load_settings, open_context
from .server import BODY_TIMEOUT_S, HEADER_TIMEOUT_S, MAX_CONNECTIONS, admin_token_problem, uvicorn_config

tenant_app = typer.Typer(help="Tenants: create and list (works while the server runs).", no_args_is_help=True)
key_app = typer.Typer(help="Tenant API keys: create, list and revoke.", no_args_is_help=True)


def serve(
    host: str | None = typer.Option(None, help="Address to bind (default INVEKTO_HOST, 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (default INVEKTO_PORT, 7104)."),
    rate_limit: float | None = typer.Option(
        None, min=0.0, help="Requests per second per tenant, 0: no limit (default INVEKTO_RATE_LIMIT, 20)."
    ),
    burst: int | None = typer.Option(
        None,
        min=1,
        help="Requests a tenant may send at once before the rate applies (default INVEKTO_RATE_BURST, 40).",
    ),
    compute_slots: int | None = typer.Option(
        None,
        min=1,
        help="Assist and search calls running Python at once; the rest wait their turn "
        "(default INVEKTO_COMPUTE_SLOTS, else 4; 2 with --in-process-index).",
    ),
    access_log: bool = typer.Option(True, help="Log every request."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
    header_timeout: float = typer.Option(
        HEADER_TIMEOUT_S, min=0.1, help="Seconds a client has to send a request's line and headers."
    ),
    body_timeout: float = typer.Option(
        BODY_TIMEOUT_S, min=0.1, help="Seconds a request body may pause before the connection is closed."
    ),
    max_connections: int = typer.Option(
        MAX_CONNECTIONS, min=1, help="Open connections at most; requests beyond them get 503."
    ),
    index_process: bool | None = typer.Option(
        None,
        "--index-process/--in-process-index",
        help="Encode and search in a child process, on the other core (default: on; INVEKTO_INDEX_PROCESS).",
    ),
    encoder_process: bool | None = typer.Option(
        None,
        "--encoder-process/--in-process-encoder",
        help="With --in-process-index: encode in a child process (default: on; INVEKTO_ENCODER_PROCESS).",
    ),
) -> None:
    """Run the HTTP API (uvicorn, one worker: the index is locked to one process)."""
    import uvicorn

    from .app import create_app

    settings = load_settings()
    # Unset (None) means on for the server; an explicit false from the environment or .env is honoured.
    if index_process is None:
        index_process = settings.index_process is not False
    if encoder_process is None:
        encoder_process = settings.encoder_process is not False
    options = {"rate_limit": rate_limit, "rate_burst": burst, "compute_slots": compute_slots}
    settings = settings.model_copy(
        update={
            "index_process": index_process,
            "encoder_process": encoder_process,
            **{name: value for name, value in options.items() if value is not None},
        }
    )
    problem = admin_token_problem(settings)
    if problem:
        raise _fail(problem, 2)
    with open_context(settings) as ctx:
        app = create_app(
            settings,
            ctx,
            owns_context=True,
        )
        config = uvicorn_config(
            app,
            host=host or settings.host,
            port=port or settings.port,
            log_level=log_level,
            access_log=access_log,
            header_timeout_s=header_timeout,
            body_timeout_s=body_timeout,
            max_connections=max_connections,
        )
        # SIGTERM: requests still open get this long before the lifespan stops the ingestion jobs, which
        # wait at most settings.shutdown_timeout_s (the running one resumes at the next start).
        config.timeout_graceful_shutdown = int(max(1.0, settings.shutdown_timeout_s))
        uvicorn.Server(config).run()


def _registry():  # noqa: ANN202 - Registry, imported lazily to keep --help fast
    from ingestion.registry import Registry

    return Registry(load_settings().registry_url)


def _fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


@tenant_app.command("create")
def tenant_create(
    tenant_id: str = typer.Argument(..., help="Slug: 2-64 of a-z, 0-9, '-', '_' (e.g. acme-tr)."),
    name: str | None = typer.Option(None, "--name", help="Display name (default: the id)."),
    tone: str = typer.Option("siz", help="How replies address customers: siz (formal) or sen."),
) -> None:
    """Create a tenant; then `key create` gives it an API key."""
    from ingestion.registry import TenantExistsError

    with _registry() as registry:
        try:
            tenant = registry.create_tenant(tenant_id, name or tenant_id, {"tone": tone})
        except TenantExistsError as exc:
            raise _fail(str(exc)) from exc
        except ValueError as exc:
            raise _fail(str(exc), 2) from exc
    typer.echo(f"created tenant {tenant.id} ({tenant.name})")


@tenant_app.command("list")
def tenant_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """List tenants."""
    with _registry() as registry:
        tenants = registry.list_tenants()
    if as_json:
        rows = [{"id": t.id, "name": t.name, "created_at": t.created_at.isoformat()} for t in tenants]
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for t in tenants:
        typer.echo(f"{t.id}\t{t.name}\t{t.created_at:%Y-%m-%d}")


@tenant_app.command("delete")
def tenant_delete(
    tenant_id: str = typer.Argument(..., help="The tenant to delete with everything it has."),
    yes: bool = typer.Option(False, "--yes", help="Confirm: this cannot be undone."),
) -> None:
    """Delete a tenant: its index points (the index is rewritten without them), documents, jobs, keys,
    suggestions, audit and uploads."""
    from ingestion.erasure import Eraser

    if not yes:
        raise _fail(f"deleting {tenant_id!r} cannot be undone; run again with --yes", 2)
    with open_context() as ctx:
        if not Eraser(ctx.ingestor, ctx.settings.data_dir / "uploads").tenant(tenant_id):
            raise _fail(f"no tenant {tenant_id!r}")
    typer.echo(f"deleted tenant {tenant_id}")


@key_app.command("create")
def key_create(
    tenant: str = typer.Option(..., "--tenant", "-t", help="Tenant the key belongs to."),
    name: str = typer.Option("default", "--name", help="What the key is for."),
) -> None:
    """Create an API key and print it (stdout, alone, so scripts can capture it). It is shown only once."""
    with _registry() as registry:
        try:
            info, key = registry.create_api_key(tenant, name)
        except LookupError as exc:
            raise _fail(
                f"no tenant {tenant!r}; create it with `invekto-knowledge tenant create {tenant}`"
            ) from exc
    console.print(
        f"key {info.id} ({info.key_prefix}...) for tenant {tenant}; store it now, it is not shown again"
    )
    typer.echo(key)


@key_app.command("list")
def key_list(tenant: str = typer.Option(..., "--tenant", "-t")) -> None:
    """List a tenant's keys by id and prefix (the keys themselves are not stored)."""
    with _registry() as registry:
        keys = registry.list_api_keys(tenant)
    for k in keys:
        state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
        typer.echo(f"{k.id}\t{k.key_prefix}...\t{k.name}\t{state}")


@key_app.command("revoke")
def key_revoke(
    key_id: str = typer.Argument(..., help="The key's id (from `key list`)."),
    tenant: str | None = typer.Option(None, "--tenant", "-t", help="Only if the key is this tenant's."),
) -> None:
    """Revoke an API key: requests with it are refused from now on."""
    with _registry() as registry:
        if not registry.revoke_api_key(key_id, tenant_id=tenant):
            raise _fail(f"no API key {key_id!r}" + (f" for tenant {tenant!r}" if tenant else ""))
    typer.echo(f"revoked {key_id}")


def bench_api(
    out: Path = typer.Option(Path("bench-results"), "--out", help="Folder for api.json and api.md."),
    dataset: Path = typer.Option(
        Path(__file__).resolve().parents[2] / "shared" / "data" / "xquad-tr-dev",
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
) -> None:
    """Load `POST /v1/assist/suggest` with wrk on loopback (extractive provider) and report req/s, latency, RSS."""
    from .bench import BenchError, markdown_table, run_api_benchmark

    try:
        report = run_api_benchmark(
            dataset,
            chunks=chunks,
            connections=connections,
            duration_s=duration,
            threads=threads,
            compute_slots=compute_slots,
            data_dir=data_dir,
            pause_ms=pause_ms,
            progress=lambda msg: console.print(f"[dim]{msg}[/dim]"),
        )
    except BenchError as exc:
        raise _fail(str(exc), 2) from exc
    out.mkdir(parents=True, exist_ok=True)
    (out / "api.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    table = markdown_table(report)
    (out / "api.md").write_text("# API load benchmark\n\n" + table, encoding="utf-8")
    typer.echo(table)
    typer.echo(f"wrote {out / 'api.json'} and {out / 'api.md'}")
