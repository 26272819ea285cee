"""Tenant, API key, webhook secret and service key management, behind the admin token (INVEKTO_ADMIN_TOKEN)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from ingestion.erasure import Eraser
from ingestion.registry import TenantExistsError

from ..deps import AdminDep, ApiKeysDep, ContextDep, JobsDep
from ..errors import ADMIN_ERRORS, ProblemError, not_found, problem_responses
from ..schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    ServiceKeyCreate,
    ServiceKeyCreated,
    ServiceKeyOut,
    TenantCreate,
    TenantOut,
    TenantSettingsPatch,
    WebhookSecretCreated,
    WebhookSecretState,
)

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    dependencies=[AdminDep],
    responses=ADMIN_ERRORS,
)


def _tenant_or_404(context: ContextDep, tenant_id: str) -> TenantOut:
    tenant = context.registry.get_tenant(tenant_id)
    if tenant is None:
        raise not_found("Tenant", f"There is no tenant {tenant_id!r}.")
    return TenantOut.of(tenant)


@router.post("/tenants", status_code=201, response_model=TenantOut, responses=problem_responses(409))
def create_tenant(body: TenantCreate, context: ContextDep, response: Response) -> TenantOut:
    """Create a tenant; then create an API key for it."""
    try:
        tenant = context.registry.create_tenant(body.id, body.name, body.settings)
    except TenantExistsError as exc:
        raise ProblemError(409, "tenant-exists", "Tenant already exists", str(exc)) from exc
    except ValueError as exc:  # what the registry checks beyond the schema, e.g. a blank name
        raise ProblemError(422, "invalid-tenant", "Invalid tenant", str(exc)) from exc
    response.headers["Location"] = f"/v1/admin/tenants/{tenant.id}"
    return TenantOut.of(tenant)


@router.get("/tenants", response_model=list[TenantOut])
def list_tenants(context: ContextDep) -> list[TenantOut]:
    return [TenantOut.of(t) for t in context.registry.list_tenants()]


@router.get("/tenants/{tenant_id}", response_model=TenantOut, responses=problem_responses(404))
def get_tenant(tenant_id: str, context: ContextDep) -> TenantOut:
    return _tenant_or_404(context, tenant_id)


@router.patch("/tenants/{tenant_id}", response_model=TenantOut, responses=problem_responses(404))
def update_tenant_settings(
    tenant_id: str, body: TenantSettingsPatch, context: ContextDep, api_keys: ApiKeysDep
) -> TenantOut:
    """Change some of a tenant's settings (tone, language, resolve thresholds, PII patterns)."""
    try:
        updated = context.registry.update_tenant_settings(tenant_id, body.settings)
    except LookupError as exc:
        raise not_found("Tenant", f"There is no tenant {tenant_id!r}.") from exc
    except ValueError as exc:
        raise ProblemError(422, "invalid-settings", "Invalid tenant settings", str(exc)) from exc
    # Requests authenticate against cached tenants: the new settings apply from the next request on.
    api_keys.forget_all()
    return TenantOut.of(updated)


@router.delete("/tenants/{tenant_id}", status_code=204, responses=problem_responses(404))
def delete_tenant(tenant_id: str, context: ContextDep, jobs: JobsDep, api_keys: ApiKeysDep) -> Response:
    """Delete a tenant with everything it has: indexed chunks, documents, jobs, keys, suggestions, audit."""
    _tenant_or_404(context, tenant_id)
    # The index is rewritten without the tenant's points: deleted ones would stay in its files otherwise.
    Eraser(context.ingestor, jobs.uploads_dir).tenant(tenant_id)
    api_keys.forget_all()
    return Response(status_code=204)


@router.post(
    "/tenants/{tenant_id}/keys",
    status_code=201,
    response_model=ApiKeyCreated,
    responses=problem_responses(404),
)
def create_api_key(tenant_id: str, body: ApiKeyCreate, context: ContextDep) -> ApiKeyCreated:
    """Create an API key; the response is the only time the key is shown."""
    _tenant_or_404(context, tenant_id)
    info, key = context.registry.create_api_key(tenant_id, body.name)
    return ApiKeyCreated(**ApiKeyOut.model_validate(info).model_dump(), key=key)


@router.get("/tenants/{tenant_id}/keys", response_model=list[ApiKeyOut], responses=problem_responses(404))
def list_api_keys(tenant_id: str, context: ContextDep) -> list[ApiKeyOut]:
    """The tenant's keys (revoked ones too), by prefix; never the keys themselves."""
    _tenant_or_404(context, tenant_id)
    return [ApiKeyOut.model_validate(k) for k in context.registry.list_api_keys(tenant_id)]


@router.delete("/tenants/{tenant_id}/keys/{key_id}", status_code=204, responses=problem_responses(404))
def revoke_api_key(tenant_id: str, key_id: str, context: ContextDep, api_keys: ApiKeysDep) -> Response:
    """Revoke a key: requests with it are refused from now on."""
    if not context.registry.revoke_api_key(key_id, tenant_id=tenant_id):
        raise not_found("API key", f"Tenant {tenant_id!r} has no key {key_id!r}.")
    api_keys.forget_all()
    return Response(status_code=204)


@router.post(
    "/tenants/{tenant_id}/webhook-secret",
    status_code=201,
    response_model=WebhookSecretCreated,
    responses=problem_responses(404),
)
def rotate_webhook_secret(tenant_id: str, context: ContextDep, api_keys: ApiKeysDep) -> WebhookSecretCreated:
    """Create the tenant's webhook secret, or replace it; the response is the only time it is shown.

    From now on its `POST /v1/conversations/closed` calls must be signed and its job callbacks are signed
    with it. After a rotation the previous secret still verifies incoming webhooks for 24 hours.
    """
    try:
        webhook = context.registry.rotate_webhook_secret(tenant_id)
    except LookupError as exc:
        raise not_found("Tenant", f"There is no tenant {tenant_id!r}.") from exc
    api_keys.forget_all()  # cached tenants carry their secrets
    return WebhookSecretCreated(
        tenant_id=tenant_id, secret=webhook.current, **WebhookSecretState.of(webhook).model_dump()
    )


@router.delete("/tenants/{tenant_id}/webhook-secret", status_code=204, responses=problem_responses(404))
def delete_webhook_secret(tenant_id: str, context: ContextDep, api_keys: ApiKeysDep) -> Response:
    """Remove the tenant's webhook secret: its webhooks are no longer verified, its callbacks not signed."""
    _tenant_or_404(context, tenant_id)
    if not context.registry.delete_webhook_secret(tenant_id):
        raise not_found("Webhook secret", f"Tenant {tenant_id!r} has no webhook secret.")
    api_keys.forget_all()
    return Response(status_code=204)


@router.post(
    "/service-keys", status_code=201, response_model=ServiceKeyCreated, responses=problem_responses(404)
)
def create_service_key(body: ServiceKeyCreate, context: ContextDep) -> ServiceKeyCreated:
    """Create a service key for a backend acting for many tenants; the response is the only time it is shown.

    Each request with it names its tenant in `X-Invekto-Tenant` and is then served as that tenant's own
    key would be. `tenants` limits which ones; left out, it may act for every tenant.
    """
    try:
        info, key = context.registry.create_service_key(body.name, body.tenants)
    except LookupError as exc:
        raise not_found("Tenant", f"{exc.args[0]}: a service key may only list existing tenants.") from exc
    return ServiceKeyCreated(**ServiceKeyOut.model_validate(info).model_dump(), key=key)


@router.get("/service-keys", response_model=list[ServiceKeyOut])
def list_service_keys(context: ContextDep) -> list[ServiceKeyOut]:
    """Every service key (revoked ones too), by prefix; never the keys themselves."""
    return [ServiceKeyOut.model_validate(k) for k in context.registry.list_service_keys()]


@router.delete("/service-keys/{key_id}", status_code=204, responses=problem_responses(404))
def revoke_service_key(key_id: str, context: ContextDep, api_keys: ApiKeysDep) -> Response:
    """Revoke a service key: requests with it are refused from now on, for every tenant."""
    if not context.registry.revoke_service_key(key_id):
        raise not_found("Service key", f"There is no service key {key_id!r}.")
    api_keys.forget_all()
    return Response(status_code=204)
