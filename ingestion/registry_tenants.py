"""Tenants and their API keys: the registry's records of who uses the service."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    select,
)
from sqlalchemy.exc import IntegrityError

from ingestion.registry_models import (
    ApiKeyInfo,
    ApiKeyRow,
    Tenant,
    TenantRow,
    TenantSettings,
    to_record,
    utcnow,
)

from .registry_db import RegistryDatabase, require_tenant

_TENANT_SLUG_RE = re.compile(r"[a-z0-9_-]{2,64}")
_KEY_PREFIX = "ik_"
_KEY_DISPLAY_CHARS = 8


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
            rows = session.scalars(select(TenantRow).order_by(self._by_id(TenantRow.id)))
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
        with self.transaction() as session:
            row = session.get(TenantRow, tenant_id)
            if row is None:
                return False
            session.delete(row)  # the database's ON DELETE CASCADE removes the tenant's rows
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


def _tenant(row: TenantRow) -> Tenant:
    return to_record(Tenant, row, settings=TenantSettings.model_validate(row.settings))
