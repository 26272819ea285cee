"""`invekto-knowledge serve`: the HTTP API under uvicorn."""

from __future__ import annotations

import typer

from retrieval.settings import Settings

from ..server import BODY_TIMEOUT_S, HEADER_TIMEOUT_S, MAX_CONNECTIONS, ServeOptions, admin_token_problem
from .common import default_encode_workers, fail, load_settings, open_context


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
    workers: int = typer.Option(
        1,
        min=1,
        max=64,
        help="HTTP worker processes in front of one index process (more cores serve more requests; "
        "each worker adds about 150 MiB).",
    ),
    encoder_process: bool | None = typer.Option(
        None,
        "--encoder-process/--in-process-encoder",
        help="With --in-process-index: encode in a child process (default: on; INVEKTO_ENCODER_PROCESS).",
    ),
) -> None:
    """Run the HTTP API (uvicorn; with --workers N, N HTTP processes share one index process)."""
    import uvicorn

    from ..app import create_app

    settings = load_settings()
    # Unset (None) means on for the server; an explicit false from the environment or .env is honoured.
    if index_process is None:
        index_process = settings.index_process is not False
    if encoder_process is None:
        encoder_process = settings.encoder_process is not False
    encode_workers = settings.encode_workers
    if encode_workers is None:
        encode_workers = default_encode_workers()
    options = {"rate_limit": rate_limit, "rate_burst": burst, "compute_slots": compute_slots}
    settings = settings.model_copy(
        update={
            "index_process": index_process,
            "encoder_process": encoder_process,
            "encode_workers": encode_workers,
            **{name: value for name, value in options.items() if value is not None},
        }
    )
    problem = admin_token_problem(settings)
    if problem:
        raise fail(problem, 2)
    serving = ServeOptions(
        host=host or settings.host,
        port=port or settings.port,
        log_level=log_level,
        access_log=access_log,
        header_timeout_s=header_timeout,
        body_timeout_s=body_timeout,
        max_connections=max_connections,
    )
    if workers > 1:
        _serve_workers(settings, workers, serving)
        return
    with open_context(settings) as ctx:
        app = create_app(settings, ctx, owns_context=True, settle_heap=True)
        uvicorn.Server(serving.config(app, settings)).run()


def _serve_workers(settings: Settings, workers: int, options: ServeOptions) -> None:
    import logging

    from retrieval.embedders import EmbedderError
    from retrieval.store import StoreError

    from ..workers import Supervisor

    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    try:
        Supervisor(settings, workers, options).run()
    except (StoreError, EmbedderError, RuntimeError, OSError) as exc:
        raise fail(str(exc), 2) from exc
