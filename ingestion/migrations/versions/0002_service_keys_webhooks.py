"""Service keys (a backend acting for several tenants, naming one per request) and tenants' webhook secrets.

A database that already has either table (one made by `Base.metadata.create_all` before it was stamped)
keeps it.

Revision ID: 0002_service_keys_webhooks
Revises: 0001_baseline
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

revision = "0002_service_keys_webhooks"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def _timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _webhook_secrets() -> None:
    op.create_table(
        "webhook_secrets",
        sa.Column(
            "tenant_id",
            sa.String(64),
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            nullable=False,
            primary_key=True,
        ),
        sa.Column("secret", sa.String(100), nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("previous_secret", sa.String(100), nullable=True),
        sa.Column("previous_valid_until", _timestamp(), nullable=True),
    )


def _service_keys() -> None:
    op.create_table(
        "service_keys",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("key_prefix", sa.String(100), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("tenants", sa.JSON(), nullable=True),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("revoked_at", _timestamp(), nullable=True),
    )


_TABLES: dict[str, Callable[[], None]] = {
    "webhook_secrets": _webhook_secrets,
    "service_keys": _service_keys,
}


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    for name, create in _TABLES.items():
        if name not in existing:
            create()


def downgrade() -> None:
    for name in reversed(_TABLES):
        op.drop_table(name)
