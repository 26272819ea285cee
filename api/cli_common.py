"""What every CLI command shares: the console for messages and opening the service with clear errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from pydantic import ValidationError
from rich.console import Console

from retrieval.settings import Settings

console = Console(stderr=True)


def load_settings() -> Settings:
    """Return the settings from INVEKTO_* variables and .env; a bad value exits naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            name = field if field.isupper() else f"INVEKTO_{field.upper()}"
            console.print(f"[red]error:[/red] {name}={error.get('input')!r}: {error['msg']}", soft_wrap=True)
        raise typer.Exit(2) from exc


@contextmanager
def open_context(settings: Settings | None = None) -> Iterator:
    """Yield a ServiceContext; a locked, corrupt or unreachable index exits with its message."""
    from retrieval.embedders import EmbedderError
    from retrieval.store import StoreError

    from .context import ServiceContext

    try:
        ctx = ServiceContext.open(settings or load_settings())
    except (StoreError, EmbedderError, RuntimeError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    try:
        yield ctx
    finally:
        ctx.close()
