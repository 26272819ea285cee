"""The registry's schema migrations (Alembic): what Registry runs when it opens a database, and
`invekto-knowledge db upgrade|current` for an operator.

- an empty database is upgraded to the newest revision (head);
- a database written before Alembic (it has the table schema_version) is stamped with the baseline when
  it is at the baseline's schema version, finished by the baseline when it is older, then upgraded;
- a database at an older revision is upgraded, and the log says so;
- a database at a revision this code does not know (written by newer code) is refused.

On PostgreSQL the whole run holds an advisory lock inside one transaction, so processes that open the same
database at once migrate it once; on SQLite the registry's write transaction (BEGIN IMMEDIATE) does that.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

from ingestion.registry_models import SCHEMA_VERSION

log = logging.getLogger(__name__)

BASELINE = "0001_baseline"
# Where Alembic finds env.py and versions/ (a package resource, so it works from the installed wheel).
SCRIPT_LOCATION = "ingestion:migrations"
# Any fixed 64-bit number: the key of the PostgreSQL advisory lock migrations hold.
_ADVISORY_LOCK_KEY = 0x1A7E_C70D_B5C3_0001


class SchemaError(RuntimeError):
    """The database's schema is one this code cannot use (newer, or unknown)."""


@dataclass(frozen=True)
class SchemaState:
    current: str | None  # the database's Alembic revision (None: none yet)
    head: str  # the newest revision this code knows
    legacy_version: int | None  # schema_version of a database written before Alembic and not yet stamped

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head

    @property
    def newer(self) -> bool:
        """True when the database is at a revision this code does not know: newer code wrote it."""
        return self.current is not None and self.current not in _revisions(SCRIPT_LOCATION)[1]


def _config(connection: Connection | None = None, location: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", location or SCRIPT_LOCATION)
    config.attributes["connection"] = connection
    return config


@cache
def _revisions(location: str) -> tuple[str, frozenset[str]]:
    script = ScriptDirectory.from_config(_config(location=location))
    head = script.get_current_head()
    assert head is not None, "the registry's migrations have more than one head"
    return head, frozenset(s.revision for s in script.walk_revisions())


def head() -> str:
    """Return the newest revision this code knows."""
    return _revisions(SCRIPT_LOCATION)[0]


def state(connection: Connection) -> SchemaState:
    """Return where the database behind `connection` stands."""
    current = MigrationContext.configure(connection).get_current_revision()
    legacy = None
    if current is None and inspect(connection).has_table("schema_version"):
        legacy = connection.execute(text("SELECT max(version) FROM schema_version")).scalar()
    return SchemaState(current, head(), legacy)


def upgrade(connection: Connection, where: str) -> SchemaState:
    """Bring the database behind `connection` (inside its transaction) to head and return the state it was
    in before; SchemaError if it is newer than this code. `where` names the database in messages."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
    before = state(connection)
    if before.newer:
        raise SchemaError(
            f"Registry at {where} is at schema revision {before.current!r}, newer than this code "
            f"(it knows up to {before.head!r}): upgrade invekto-knowledge, or point INVEKTO_DATABASE_URL "
            "at another database"
        )
    if before.legacy_version is not None and before.legacy_version > SCHEMA_VERSION:
        raise SchemaError(
            f"Registry at {where} has schema version {before.legacy_version}, this code expects "
            f"{SCHEMA_VERSION} or older: upgrade invekto-knowledge, or point INVEKTO_DATABASE_URL at another "
            "database"
        )
    if before.up_to_date:
        return before
    config = _config(connection)
    if before.legacy_version == SCHEMA_VERSION:
        log.info("registry at %s predates migrations: stamped as %s", where, BASELINE)
        command.stamp(config, BASELINE)
    elif before.legacy_version is not None:
        log.info("registry at %s has the old schema version %s: upgrading", where, before.legacy_version)
    elif before.current is not None:
        log.info("registry at %s is at revision %s: upgrading to %s", where, before.current, before.head)
    command.upgrade(config, "head")
    return before
