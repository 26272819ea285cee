"""Tenants and their API keys: the registry's records of who uses the service."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from ingestion.registry_models import (
    ApiKeyInfo,
    ApiKeyRow,
    ServiceKeyInfo,
    ServiceKeyRow,
    Tenant,
    TenantRow,
    TenantSettings,
    WebhookSecretRow,
    WebhookSecrets,
    to_record,
    utcnow,
)

from .registry_db import RegistryDatabase, require_tenant

_TENANT_SLUG_RE = re.compile(r"[a-z0-9_-]{2,64}")
_KEY_PREFIX = "ik_"
SERVICE_KEY_PREFIX = "isk_"
WEBHOOK_SECRET_PREFIX = "whsec_"
_KEY_DISPLAY_CHARS = 8
# After a rotation the previous webhook secret still verifies incoming webhooks this long, so the sender can
# switch to the new one without a window of refused requests.
WEBHOOK_SECRET_GRACE = timedelta(hours=24)


class TenantExistsError(ValueError):
    """Raised when creating a tenant whose id is already taken."""


def _validate_tenant_id(tenant_id: str) -> None:
    if not isinstance(tenant_id, str) or not _TENANT_SLUG_RE.fullmatch(tenant_id):
        raise ValueError(
            f"Tenant id {tenant_id!r} must be 2-64 characters of lowercase a-z, 0-9, '-' or '_' (e.g. 'acme-tr')"
        )


def _hash_key(plaintext: str) -> str:
    # API keys carry 192 random bits, so nobody can brute-force them from the hash: a fast SHA-256 is
    # enough, and a slow password hash (bcrypt, argon2) would only add latency to every request.
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


class TenantRecords(RegistryDatabase):
    """Tenants and API keys."""

    # --- Tenants ---

    def create_tenant(
        self, tenant_id: str, name: str, settings: Mapping[str, Any] | TenantSettings | None = None
    ) -> Tenant:
        """Return the new tenant; ValueError for a bad slug or settings, TenantExistsError if taken."""
        _validate_tenant_id(tenant_id)
        if not name.strip():
            raise ValueError("Tenant name must not be empty")
        parsed = (
            settings
            if isinstance(settings, TenantSettings)
            else TenantSettings.model_validate(settings or {})
        )
        try:
            with self.transaction() as session:
                if session.get(TenantRow, tenant_id) is not None:
                    raise TenantExistsError(f"Tenant {tenant_id!r} already exists")
                row = TenantRow(id=tenant_id, name=name.strip(), settings=parsed.model_dump(mode="json"))
                session.add(row)
                session.flush()
                return _tenant(row)
        except IntegrityError as err:  # a concurrent create on PostgreSQL won the race
            raise TenantExistsError(f"Tenant {tenant_id!r} already exists") from err

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        """Return the tenant, or None if there is none with this id."""
        with self.transaction(write=False) as session:
            row = session.get(TenantRow, tenant_id)
            return _tenant(row) if row else None

    def list_tenants(self) -> list[Tenant]:
        """Return every tenant, ordered by id."""
        with self.transaction(write=False) as session:
            rows = session.scalars(
                select(TenantRow).options(selectinload(TenantRow.webhook)).order_by(self._by_id(TenantRow.id))
            )
            return [_tenant(row) for row in rows]

    def update_tenant_settings(self, tenant_id: str, patch: Mapping[str, Any]) -> Tenant:
        """Return the tenant with `patch` merged into its settings; a None value resets that key to its default.

        The whole result is validated (ValueError) before anything is saved; LookupError if no such tenant.
        """
        with self.transaction() as session:
            row = session.get(TenantRow, tenant_id, with_for_update=True)
            if row is None:
                raise LookupError(f"No tenant {tenant_id!r}")
            merged = {**row.settings, **patch}
            merged = {key: value for key, value in merged.items() if value is not None}
            row.settings = TenantSettings.model_validate(merged).model_dump(mode="json")
            session.flush()
            return _tenant(row)

    def delete_tenant(self, tenant_id: str) -> bool:
        """Return True if the tenant existed; its keys, documents, jobs, suggestions and audit go with it."""
        # The database's ON DELETE CASCADE removes the tenant's rows.
        return self._delete_row(TenantRow, tenant_id)

    def _delete_row(self, model: type[TenantRow | WebhookSecretRow], key: str) -> bool:
        """Return True if `model` had a row with primary key `key`, now deleted."""
        with self.transaction() as session:
            row = session.get(model, key)
            if row is None:
                return False
            session.delete(row)
            return True

    # --- API keys ---

    def create_api_key(self, tenant_id: str, name: str) -> tuple[ApiKeyInfo, str]:
        """Return the key's record and the plaintext key; the plaintext is never stored or shown again."""
        secret = secrets.token_urlsafe(24)  # 32 characters
        plaintext = f"{_KEY_PREFIX}{tenant_id}_{secret}"
        with self.transaction() as session:
            require_tenant(session, tenant_id)
            row = ApiKeyRow(
                id=str(uuid.uuid4()),
                tenant_id=tenant_id,
                name=name,
                # The first 8 characters would be "ik_<tenant>" for every key, so show a piece of the secret.
                key_prefix=f"{_KEY_PREFIX}{tenant_id}_{secret[:_KEY_DISPLAY_CHARS]}",
                key_hash=_hash_key(plaintext),
            )
            session.add(row)
            session.flush()
            return to_record(ApiKeyInfo, row), plaintext

    def authenticate(self, plaintext: str) -> Tenant | None:
        """Return the tenant an unrevoked API key belongs to, or None for an unknown or revoked key."""
        if not plaintext.startswith(_KEY_PREFIX):
            return None
        key_hash = _hash_key(plaintext)
        with self.transaction(write=False) as session:
            found = session.execute(
                select(ApiKeyRow, TenantRow)
                .join(TenantRow, TenantRow.id == ApiKeyRow.tenant_id)
                .where(ApiKeyRow.key_hash == key_hash)
            ).first()
            if found is None:
                return None
            key, tenant = found.tuple()
            if not hmac.compare_digest(key.key_hash, key_hash) or key.revoked_at is not None:
                return None
            return _tenant(tenant)

    def revoke_api_key(self, key_id: str, *, tenant_id: str | None = None) -> bool:
        """Return True if the key exists (within `tenant_id` when given) and is now revoked."""
        with self.transaction() as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None or (tenant_id is not None and row.tenant_id != tenant_id):
                return False
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            return True

    def list_api_keys(self, tenant_id: str) -> list[ApiKeyInfo]:
        """Return the tenant's keys, revoked ones included, oldest first."""
        with self.transaction(write=False) as session:
            rows = session.scalars(
                select(ApiKeyRow).where(ApiKeyRow.tenant_id == tenant_id).order_by(ApiKeyRow.created_at)
            )
            return [to_record(ApiKeyInfo, row) for row in rows]

    # --- Webhook secrets ---

    def rotate_webhook_secret(
        self, tenant_id: str, grace: timedelta = WEBHOOK_SECRET_GRACE
    ) -> WebhookSecrets:
        """Return the tenant's secrets with a new current one (`whsec_...`, to be shown once); the one it
        had stays valid for incoming webhooks for `grace`. LookupError if there is no such tenant."""
        secret = WEBHOOK_SECRET_PREFIX + secrets.token_urlsafe(32)
        with self.transaction() as session:
            if session.get(TenantRow, tenant_id, with_for_update=True) is None:
                raise LookupError(f"No tenant {tenant_id!r}")
            now = utcnow()
            row = session.get(WebhookSecretRow, tenant_id)
            if row is None:
                row = WebhookSecretRow(tenant_id=tenant_id, secret=secret, created_at=now)
                session.add(row)
            else:
                row.previous_secret, row.previous_valid_until = row.secret, now + grace
                row.secret, row.created_at = secret, now
            session.flush()
            return _webhook(row)

    def delete_webhook_secret(self, tenant_id: str) -> bool:
        """Return True if the tenant had a webhook secret; from now on its webhooks are not signed."""
        return self._delete_row(WebhookSecretRow, tenant_id)

    # --- Service keys ---

    def create_service_key(
        self, name: str, tenants: Sequence[str] | None = None
    ) -> tuple[ServiceKeyInfo, str]:
        """Return a new service key's record and the plaintext key (shown once). `tenants`: the tenants it
        may act for (each must exist: LookupError otherwise); None: every tenant, present and future."""
        secret = secrets.token_urlsafe(24)
        plaintext = f"{SERVICE_KEY_PREFIX}{secret}"
        listed = None if tenants is None else sorted(set(tenants))
        with self.transaction() as session:
            for tenant_id in listed or ():
                require_tenant(session, tenant_id)
            row = ServiceKeyRow(
                id=str(uuid.uuid4()),
                name=name,
                key_prefix=f"{SERVICE_KEY_PREFIX}{secret[:_KEY_DISPLAY_CHARS]}",
                key_hash=_hash_key(plaintext),
                tenants=listed,
            )
            session.add(row)
            session.flush()
            return _service_key(row), plaintext

    def authenticate_service_key(self, plaintext: str) -> ServiceKeyInfo | None:
        """Return the unrevoked service key `plaintext` is, or None."""
        if not plaintext.startswith(SERVICE_KEY_PREFIX):
            return None
        key_hash = _hash_key(plaintext)
        with self.transaction(write=False) as session:
            row = session.scalar(select(ServiceKeyRow).where(ServiceKeyRow.key_hash == key_hash))
            if row is None or not hmac.compare_digest(row.key_hash, key_hash) or row.revoked_at is not None:
                return None
            return _service_key(row)

    def list_service_keys(self) -> list[ServiceKeyInfo]:
        """Return every service key, revoked ones included, oldest first."""
        with self.transaction(write=False) as session:
            rows = session.scalars(select(ServiceKeyRow).order_by(ServiceKeyRow.created_at))
            return [_service_key(row) for row in rows]

    def revoke_service_key(self, key_id: str) -> bool:
        """Return True if the service key exists and is now revoked."""
        with self.transaction() as session:
            row = session.get(ServiceKeyRow, key_id)
            if row is None:
                return False
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            return True


def _tenant(row: TenantRow) -> Tenant:
    webhook = row.webhook
    return to_record(
        Tenant,
        row,
        settings=TenantSettings.model_validate(row.settings),
        webhook=None if webhook is None else _webhook(webhook),
    )


def _webhook(row: WebhookSecretRow) -> WebhookSecrets:
    return WebhookSecrets(row.secret, row.created_at, row.previous_secret, row.previous_valid_until)


def _service_key(row: ServiceKeyRow) -> ServiceKeyInfo:
    return to_record(ServiceKeyInfo, row, tenants=None if row.tenants is None else tuple(row.tenants))
