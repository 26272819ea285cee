"""`invekto-knowledge db upgrade|current`: the registry database's schema migrations, run explicitly.

The service and every command upgrade the database when they open it; an operator runs `db upgrade` to do
it on purpose (before a deployment, in a release step) and `db current` to see where it stands.
"""

from __future__ import annotations

import typer

from .common import console, load_settings, open_registry

db_app = typer.Typer(
    help="The registry database's schema: upgrade it, show its revision.", no_args_is_help=True
)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring INVEKTO_DATABASE_URL's schema to the newest revision (a new database gets every table)."""
    with open_registry() as registry:
        before = registry.schema_on_open
    if before.up_to_date:
        typer.echo(f"already at {before.head}")
    else:
        typer.echo(f"upgraded {before.current or 'an empty database'} -> {before.head}")


@db_app.command("current")
def db_current() -> None:
    """Print the database's schema revision and the newest one this code knows; changes nothing."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import OperationalError

    from ingestion import migrations
    from ingestion.registry import engine_url

    engine = create_engine(engine_url(load_settings().registry_url))
    try:
        with engine.connect() as connection:
            state = migrations.state(connection)
    except OperationalError as exc:
        console.print(f"[red]error:[/red] cannot open the database: {exc.orig}", soft_wrap=True)
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()
    current = state.current or (
        f"none (written before migrations, schema version {state.legacy_version})"
        if state.legacy_version is not None
        else "none (empty database)"
    )
    typer.echo(f"current: {current}\nhead:    {state.head}")
    if state.newer:
        typer.echo("the database is newer than this code: upgrade invekto-knowledge")
    elif not state.up_to_date:
        typer.echo("run `invekto-knowledge db upgrade` (the service also does when it starts)")
