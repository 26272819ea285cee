"""`invekto-knowledge tenant …`, `key …` and `service-key …`: tenants, their API keys and webhook secrets,
and the service keys of backends acting for many tenants.

The commands open only the registry database, so they work while the server runs (the server holds the
edge index lock, not the database).
"""

from __future__ import annotations

import json

import typer

from .common import console, fail, open_context, open_registry

tenant_app = typer.Typer(help="Tenants: create and list (works while the server runs).", no_args_is_help=True)
key_app = typer.Typer(help="Tenant API keys: create, list and revoke.", no_args_is_help=True)
service_key_app = typer.Typer(
    help="Service keys of a backend acting for many tenants (X-Invekto-Tenant): create, list and revoke.",
    no_args_is_help=True,
)


@tenant_app.command("create")
def tenant_create(
    tenant_id: str = typer.Argument(..., help="Slug: 2-64 of a-z, 0-9, '-', '_' (e.g. acme-tr)."),
    name: str | None = typer.Option(None, "--name", help="Display name (default: the id)."),
    tone: str = typer.Option("siz", help="How replies address customers: siz (formal) or sen."),
) -> None:
    """Create a tenant; then `key create` gives it an API key."""
    from ingestion.registry import TenantExistsError

    with open_registry() as registry:
        try:
            tenant = registry.create_tenant(tenant_id, name or tenant_id, {"tone": tone})
        except TenantExistsError as exc:
            raise fail(str(exc)) from exc
        except ValueError as exc:
            raise fail(str(exc), 2) from exc
    typer.echo(f"created tenant {tenant.id} ({tenant.name})")


@tenant_app.command("list")
def tenant_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """List tenants."""
    with open_registry() as registry:
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
    from ingestion.jobs import UPLOADS_DIR

    if not yes:
        raise fail(f"deleting {tenant_id!r} cannot be undone; run again with --yes", 2)
    with open_context() as ctx:
        if not Eraser(ctx.ingestor, ctx.settings.data_dir / UPLOADS_DIR).tenant(tenant_id):
            raise fail(f"no tenant {tenant_id!r}")
    typer.echo(f"deleted tenant {tenant_id}")


@tenant_app.command("webhook-secret")
def tenant_webhook_secret(
    tenant_id: str = typer.Argument(..., help="The tenant whose webhooks are signed."),
    delete: bool = typer.Option(
        False, "--delete", help="Remove the secret: webhooks are no longer verified."
    ),
) -> None:
    """Create or rotate the tenant's webhook secret and print it (stdout, alone; shown only once). The
    previous secret still verifies incoming webhooks for 24 hours."""
    with open_registry() as registry:
        if delete:
            if not registry.delete_webhook_secret(tenant_id):
                raise fail(f"tenant {tenant_id!r} has no webhook secret")
            typer.echo(f"removed the webhook secret of {tenant_id}")
            return
        try:
            webhook = registry.rotate_webhook_secret(tenant_id)
        except LookupError as exc:
            raise fail(f"no tenant {tenant_id!r}") from exc
    rotated = (
        f"; the previous one is valid until {webhook.previous_valid_until:%Y-%m-%d %H:%M} UTC"
        if webhook.previous_valid_until
        else ""
    )
    console.print(f"webhook secret for tenant {tenant_id}{rotated}; store it now, it is not shown again")
    typer.echo(webhook.current)


@key_app.command("create")
def key_create(
    tenant: str = typer.Option(..., "--tenant", "-t", help="Tenant the key belongs to."),
    name: str = typer.Option("default", "--name", help="What the key is for."),
) -> None:
    """Create an API key and print it (stdout, alone, so scripts can capture it). It is shown only once."""
    with open_registry() as registry:
        try:
            info, key = registry.create_api_key(tenant, name)
        except LookupError as exc:
            raise fail(
                f"no tenant {tenant!r}; create it with `invekto-knowledge tenant create {tenant}`"
            ) from exc
    console.print(
        f"key {info.id} ({info.key_prefix}...) for tenant {tenant}; store it now, it is not shown again"
    )
    typer.echo(key)


@key_app.command("list")
def key_list(tenant: str = typer.Option(..., "--tenant", "-t")) -> None:
    """List a tenant's keys by id and prefix (the keys themselves are not stored)."""
    with open_registry() as registry:
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
    with open_registry() as registry:
        if not registry.revoke_api_key(key_id, tenant_id=tenant):
            raise fail(f"no API key {key_id!r}" + (f" for tenant {tenant!r}" if tenant else ""))
    typer.echo(f"revoked {key_id}")


@service_key_app.command("create")
def service_key_create(
    name: str = typer.Option(..., "--name", help="What the key is for, e.g. crm."),
    tenants: list[str] | None = typer.Option(
        None, "--tenant", "-t", help="A tenant it may act for (repeat the option); none: every tenant."
    ),
) -> None:
    """Create a service key and print it (stdout, alone). It is shown only once."""
    with open_registry() as registry:
        try:
            info, key = registry.create_service_key(name, tenants or None)
        except LookupError as exc:
            raise fail(f"{exc.args[0]}: a service key may only list existing tenants") from exc
    scope = ", ".join(info.tenants) if info.tenants is not None else "every tenant"
    console.print(
        f"service key {info.id} ({info.key_prefix}...) for {scope}; store it now, it is not shown again"
    )
    typer.echo(key)


@service_key_app.command("list")
def service_key_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """List service keys by id and prefix (the keys themselves are not stored)."""
    with open_registry() as registry:
        keys = registry.list_service_keys()
    if as_json:
        rows = [
            {
                "id": k.id,
                "name": k.name,
                "key_prefix": k.key_prefix,
                "tenants": list(k.tenants) if k.tenants is not None else None,
                "created_at": k.created_at.isoformat(),
                "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
            }
            for k in keys
        ]
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for k in keys:
        state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
        scope = ",".join(k.tenants) if k.tenants is not None else "*"
        typer.echo(f"{k.id}\t{k.key_prefix}...\t{k.name}\t{scope}\t{state}")


@service_key_app.command("revoke")
def service_key_revoke(
    key_id: str = typer.Argument(..., help="The key's id (from `service-key list`)."),
) -> None:
    """Revoke a service key: requests with it are refused from now on, for every tenant."""
    with open_registry() as registry:
        if not registry.revoke_service_key(key_id):
            raise fail(f"no service key {key_id!r}")
    typer.echo(f"revoked {key_id}")
