"""The `invekto-knowledge` command: the second shell over the same services as the HTTP API, one module
per command group (as the routes are one module per resource)."""

from __future__ import annotations

import typer

from .bench import bench_app
from .db import db_app
from .demo import demo
from .evaluate import eval_app
from .index import index_app, prune, search
from .ingest import ingest_app
from .report import report_app
from .serve import serve
from .tenants import key_app, service_key_app, tenant_app

app = typer.Typer(
    help="Invekto knowledge and agent-assist service.", no_args_is_help=True, add_completion=False
)
app.command()(serve)
app.command("demo")(demo)
app.add_typer(ingest_app, name="ingest")
app.command()(search)
app.add_typer(index_app, name="index")
app.command()(prune)
app.add_typer(tenant_app, name="tenant")
app.add_typer(key_app, name="key")
app.add_typer(service_key_app, name="service-key")
app.add_typer(report_app, name="report")
app.add_typer(db_app, name="db")
app.add_typer(eval_app, name="eval")
app.add_typer(bench_app, name="bench")

__all__ = ["app"]
