"""PostgreSQL for the tests: the server .ci/run starts (TEST_POSTGRES_URL), cleaned for each test.

Modules that run against both databases take the `database_url` fixture (tests/conftest.py): a SQLite file
in the test's temp dir, then the PostgreSQL database emptied. Without the variable the PostgreSQL half is
skipped with the reason below.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from ingestion.registry import engine_url

# Not INVEKTO_*: the service warns about INVEKTO_ variables it does not read, and CI exports this one.
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "")
SKIP_REASON = "TEST_POSTGRES_URL is not set: no PostgreSQL to test against (.ci/run starts one)"
needs_postgres = pytest.mark.skipif(not POSTGRES_URL, reason=SKIP_REASON)


def _admin_url() -> URL:
    return engine_url(POSTGRES_URL)


def empty_postgres() -> str:
    """Return the test database's URL with every table dropped (the registry migrates it on open)."""
    engine = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            # A registry a test left open holds no lock once idle; waiting longer means a leaked transaction.
            connection.execute(text("SET lock_timeout = '10s'"))
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()
    return POSTGRES_URL


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """Yield the URL of a new, empty database on the test server; it is dropped afterwards."""
    name = f"invekto_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield engine_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()
