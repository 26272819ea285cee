"""Alembic's environment for the registry: it always runs on the connection ingestion.migrations hands it."""

from __future__ import annotations

from alembic import context

from ingestion.registry_models import Base


def run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("the registry's migrations run through `invekto-knowledge db upgrade`")
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


# Alembic runs this file with its context set up; merely imported (a walk over the package) it does nothing.
if getattr(context, "config", None) is not None:
    run()
