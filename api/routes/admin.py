"""Tenant and API key management, behind the admin token (INVEKTO_ADMIN_TOKEN)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from ingestion.erasure import Eraser
from ingestion.registry import TenantExistsError

from ..deps import AdminDep, ApiKeysDep, ContextDep, JobsDep
from ..errors import ADMIN_ERRORS, ProblemError, not_found, problem_responses
from ..schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOut, TenantCreate, TenantOut, TenantSettingsPatch

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
    return TenantOut.model_validate(tenant)


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
    return TenantOut.model_validate(tenant)


@router.get("/tenants", response_model=list[TenantOut])
def list_tenants(context: ContextDep) -> list[TenantOut]:
    return [TenantOut.model_validate(t) for t in context.registry.list_tenants()]


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
    return TenantOut.model_validate(updated)


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
