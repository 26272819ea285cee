"""FastAPI dependencies: the service parts opened at startup, the tenant behind an API key, the admin token.

The tenant always comes from the API key, never from a path or a body, so no request can name
another tenant's data. A service key (the CRM backend's, acting for many tenants) names the tenant in the
X-Invekto-Tenant header, and only one the key may act for. Every tenant request also takes a token from the
tenant's rate-limit bucket.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Annotated, TypeVar

import anyio
from fastapi import Depends, Header, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from assist.service import AssistService
from ingestion.jobs import IngestionJobs
from ingestion.registry import Registry
from ingestion.registry_models import ServiceKeyInfo, Tenant
from ingestion.registry_tenants import SERVICE_KEY_PREFIX
from retrieval.settings import Settings

from .context import ServiceContext
from .errors import ProblemError
from .logs import set_tenant
from .metrics import ServiceMetrics
from .ratelimit import RateLimiter, retry_after_header

T = TypeVar("T")
_MAX_CACHED_KEYS = 10_000


class ApiKeys:
    """The tenant of an API key (and the service key a key is, and the tenant a service key names),
    remembered for `ttl_s` seconds so most requests skip the database.

    The registry hashes the key and compares in constant time; this cache is keyed by the key's SHA-256,
    so no plaintext key is kept. Revoking a key or deleting a tenant through this server clears it at
    once; a revocation made elsewhere (the CLI) takes effect within `ttl_s`.
    """

    def __init__(
        self, registry: Registry, ttl_s: float = 2.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.registry = registry
        self.ttl_s = ttl_s
        self._clock = clock
        self._found: dict[bytes, tuple[Tenant | ServiceKeyInfo, float]] = {}

    def tenant(self, key: str) -> Tenant | None:
        """Return the tenant of an unrevoked tenant API key, or None; unknown keys are never cached."""
        found = self._remembered(
            b"k" + hashlib.sha256(key.encode()).digest(), self.registry.authenticate, key
        )
        return found if isinstance(found, Tenant) else None

    def service_key(self, key: str) -> ServiceKeyInfo | None:
        """Return the unrevoked service key `key` is, or None."""
        digest = b"s" + hashlib.sha256(key.encode()).digest()
        found = self._remembered(digest, self.registry.authenticate_service_key, key)
        return found if isinstance(found, ServiceKeyInfo) else None

    def tenant_by_id(self, tenant_id: str) -> Tenant | None:
        """Return the tenant a service key's request names, or None if there is none."""
        found = self._remembered(b"t" + tenant_id.encode(), self.registry.get_tenant, tenant_id)
        return found if isinstance(found, Tenant) else None

    def _remembered(
        self, cache_key: bytes, load: Callable[[str], Tenant | ServiceKeyInfo | None], arg: str
    ) -> Tenant | ServiceKeyInfo | None:
        now = self._clock()
        cached = self._found.get(cache_key)
        if cached is not None and cached[1] > now:
            return cached[0]
        # A short indexed read, on the event loop, once per key per ttl_s.
        found = load(arg)
        if found is None:
            self._found.pop(cache_key, None)
            return None
        if len(self._found) > _MAX_CACHED_KEYS:
            self._found.clear()
        self._found[cache_key] = (found, now + self.ttl_s)
        return found

    def forget_all(self) -> None:
        self._found.clear()


class ComputeSlots:
    """Runs CPU-bound domain calls (embedding, search, assist) on at most `slots` threads at once.

    Without it, every waiting request runs on its own thread and the encoder's matrix products thrash the
    cores: throughput falls several-fold under 32 concurrent clients. Requests over the limit wait in
    the event loop, holding no thread.
    """

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._limiter = anyio.CapacityLimiter(slots)

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)


# The getters below and the auth dependencies are `async def` on purpose: FastAPI runs a plain `def`
# dependency on the thread pool, a thread hop per dependency per request for what is an attribute read.

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="The tenant's API key (`Authorization: Bearer ik_...`), a service key (`isk_...`, with "
    "`X-Invekto-Tenant` naming the tenant), or the admin token on /v1/admin.",
)
_api_key = APIKeyHeader(
    name="X-API-Key", auto_error=False, scheme_name="apiKey", description="The tenant's API key."
)
_admin_token = APIKeyHeader(
    name="X-Admin-Token", auto_error=False, scheme_name="adminToken", description="The admin token."
)


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_context(request: Request) -> ServiceContext:
    return request.app.state.context


async def get_jobs(request: Request) -> IngestionJobs:
    return request.app.state.jobs


async def get_metrics(request: Request) -> ServiceMetrics:
    return request.app.state.metrics


async def get_assist(request: Request) -> AssistService:
    return request.app.state.assist


async def get_compute(request: Request) -> ComputeSlots:
    return request.app.state.compute


async def get_api_keys(request: Request) -> ApiKeys:
    return request.app.state.api_keys


TENANT_HEADER = "X-Invekto-Tenant"


async def current_tenant(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    api_key: Annotated[str | None, Security(_api_key)],
    acting_for: Annotated[
        str | None,
        Header(
            alias=TENANT_HEADER,
            max_length=64,
            description="With a service key (`isk_...`): the tenant this request acts for (required). With a "
            "tenant's own key it may be left out; if sent, it must name that tenant.",
        ),
    ] = None,
) -> Tenant:
    """Return the tenant whose API key the request carries, or the one a service key's request names;
    401 without a valid key, 403 for a tenant the key may not act for, 429 over the tenant's rate."""
    key = api_key or (bearer.credentials if bearer else None)
    if not key:
        raise ProblemError(
            401,
            "unauthorized",
            "API key required",
            "Send the tenant's API key as `Authorization: Bearer <key>` or `X-API-Key: <key>`.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    address = _refuse_guessing(request)
    api_keys: ApiKeys = request.app.state.api_keys
    service = api_keys.service_key(key) if key.startswith(SERVICE_KEY_PREFIX) else None
    tenant = _acting_tenant(api_keys, service, acting_for) if service else api_keys.tenant(key)
    if tenant is None:
        request.app.state.auth_failures.acquire(address)
        raise ProblemError(
            401,
            "invalid-api-key",
            "Invalid API key",
            "The API key is unknown or revoked.",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    if acting_for is not None and acting_for != tenant.id:
        raise ProblemError(
            403,
            "tenant-not-allowed",
            "Tenant not allowed",
            f"A tenant's API key acts only for its own tenant; {TENANT_HEADER} names another one.",
        )
    set_tenant(tenant.id)
    limiter: RateLimiter = request.app.state.rate_limiter
    wait = limiter.acquire(tenant.id)
    if wait:
        limit = limiter.limit
        raise ProblemError(
            429,
            "rate-limited",
            "Rate limit exceeded",
            f"This tenant may send {limit.rate:g} requests per second (bursts up to {limit.burst}); "
            f"retry in {retry_after_header(wait)} s.",
            headers={"Retry-After": retry_after_header(wait)},
        )
    return tenant


def _acting_tenant(api_keys: ApiKeys, service: ServiceKeyInfo, acting_for: str | None) -> Tenant:
    """Return the tenant a service key's request names; 400 without one, 403 for one it may not act for."""
    if not acting_for:
        raise ProblemError(
            400,
            "tenant-required",
            "Tenant header required",
            f"A service key acts for a tenant named in each request: send `{TENANT_HEADER}: <tenant id>`.",
        )
    tenant = api_keys.tenant_by_id(acting_for) if service.may_act_for(acting_for) else None
    if tenant is None:
        # An unknown tenant and one the key may not act for look the same.
        raise ProblemError(
            403,
            "tenant-not-allowed",
            "Tenant not allowed",
            f"This service key may not act for tenant {acting_for!r}.",
        )
    return tenant


def _refuse_guessing(request: Request) -> str:
    """Return the client's address; 429 when it sent too many wrong keys or admin tokens lately."""
    address = request.client.host if request.client else "unknown"
    failures: RateLimiter = request.app.state.auth_failures
    wait = failures.waiting(address)
    if wait:
        raise ProblemError(
            429,
            "too-many-failed-attempts",
            "Too many failed authentications",
            f"This address sent too many wrong API keys or admin tokens; retry in {retry_after_header(wait)} s.",
            headers={"Retry-After": retry_after_header(wait)},
        )
    return address


async def require_admin(
    request: Request,
    settings: Annotated[Settings, Depends(get_settings)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    admin_token: Annotated[str | None, Security(_admin_token)],
) -> None:
    """Pass when the request carries the admin token; 503 when none is configured (admin is never open)."""
    expected = settings.admin_token.get_secret_value() if settings.admin_token else ""
    if not expected:
        raise ProblemError(
            503,
            "admin-not-configured",
            "Admin token not configured",
            "Set INVEKTO_ADMIN_TOKEN to manage tenants over HTTP, or use the `invekto-knowledge tenant` "
            "and `key` commands.",
        )
    given = admin_token or (bearer.credentials if bearer else None)
    if not given:
        raise ProblemError(
            401,
            "unauthorized",
            "Admin token required",
            "Send the admin token as `Authorization: Bearer <token>` or `X-Admin-Token: <token>`.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    address = _refuse_guessing(request)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        request.app.state.auth_failures.acquire(address)
        raise ProblemError(403, "forbidden", "Invalid admin token", "This token may not manage tenants.")


ContextDep = Annotated[ServiceContext, Depends(get_context)]
JobsDep = Annotated[IngestionJobs, Depends(get_jobs)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
AssistDep = Annotated[AssistService, Depends(get_assist)]
ComputeDep = Annotated[ComputeSlots, Depends(get_compute)]
ApiKeysDep = Annotated[ApiKeys, Depends(get_api_keys)]
TenantDep = Annotated[Tenant, Depends(current_tenant)]
AdminDep = Depends(require_admin)

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Repeating a request with the same key returns the job the first one started.",
    ),
]
