"""What every CLI command shares: the console for messages and opening the service with clear errors."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from retrieval.settings import Settings, unknown_variables

console = Console(stderr=True)


# Encode workers started when INVEKTO_ENCODE_WORKERS is unset: one per core, at most this many (each
# holds a copy of the model).
MAX_DEFAULT_ENCODE_WORKERS = 4


def default_encode_workers() -> int:
    """Return how many encode worker processes to run when INVEKTO_ENCODE_WORKERS is unset."""
    return min(os.cpu_count() or 1, MAX_DEFAULT_ENCODE_WORKERS)


def load_settings() -> Settings:
    """Return the settings from INVEKTO_* variables and .env; a bad value or a setting that cannot work
    exits with one line naming the variable, an unknown INVEKTO_* variable is reported."""
    for name, close in unknown_variables(os.environ):
        hint = f" (did you mean {close}?)" if close else ""
        console.print(
            f"[yellow]warning:[/yellow] unknown variable {name}{hint}; it is ignored", soft_wrap=True
        )
    try:
        settings = Settings()
    except ValidationError as exc:
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            name = field if field.isupper() else f"INVEKTO_{field.upper()}"
            console.print(f"[red]error:[/red] {name}={error.get('input')!r}: {error['msg']}", soft_wrap=True)
        raise typer.Exit(2) from exc
    problems = configuration_problems(settings)
    for problem in problems:
        console.print(f"[red]error:[/red] {escape(problem)}", soft_wrap=True)
    if problems:
        raise typer.Exit(2)
    return settings


def configuration_problems(settings: Settings) -> list[str]:
    """Return what cannot work in `settings`, one line each: an LLM provider without its key or server, a
    database URL whose driver is not installed, tracing without the otel extra."""
    from assist.providers import provider_from_settings
    from ingestion.registry import engine_url
    from retrieval.tracing import tracing_problem

    problems = []
    try:
        provider_from_settings(settings)
    except ValueError as exc:
        problems.append(str(exc))
    url = engine_url(settings.registry_url)
    try:
        url.get_dialect().import_dbapi()
    except ImportError:
        driver = url.get_dialect().driver
        problems.append(
            f"INVEKTO_DATABASE_URL points at {url.get_backend_name()} but its driver {driver} is not installed"
            + (": pip install 'psycopg[binary]'" if driver == "psycopg" else "")
        )
    tracing = tracing_problem(settings)
    if tracing:
        problems.append(tracing)
    return problems


@contextmanager
def open_context(settings: Settings | None = None) -> Iterator:
    """Yield a ServiceContext; a locked, corrupt or unreachable index exits with its message."""
    from sqlalchemy.exc import OperationalError

    from retrieval.embedders import EmbedderError
    from retrieval.store import StoreError

    from ..context import ServiceContext

    try:
        ctx = ServiceContext.open(settings or load_settings())
    except (StoreError, EmbedderError, RuntimeError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    except OperationalError as exc:
        raise fail(_unreachable(exc), 2) from exc
    try:
        yield ctx
    finally:
        ctx.close()


def open_registry():  # noqa: ANN201 - Registry, imported lazily to keep --help fast
    """Return the registry at INVEKTO_DATABASE_URL (migrated to the code's schema); a database written by
    newer code, or one that cannot be reached, exits with one line."""
    from sqlalchemy.exc import OperationalError

    from ingestion.migrations import SchemaError
    from ingestion.registry import Registry

    url = load_settings().registry_url
    try:
        return Registry(url)
    except SchemaError as exc:
        raise fail(str(exc), 2) from exc
    except OperationalError as exc:
        raise fail(_unreachable(exc), 2) from exc


def _unreachable(exc: Any) -> str:
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"cannot open the registry database (INVEKTO_DATABASE_URL): {reason[0] if reason else exc}"


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `message` as an error and return the exit to raise."""
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)
