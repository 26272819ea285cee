"""What every CLI command shares: the console for messages and opening the service with clear errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from retrieval.settings import Settings

console = Console(stderr=True)


def load_settings() -> Settings:
    return Settings()


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
