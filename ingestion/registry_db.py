"""The registry's database: the engine on SQLite or PostgreSQL, short transactions, schema migrations.

Each aggregate keeps its own records on it: tenants and API keys (`registry_tenants`), documents and
ingestion jobs (`registry_documents`), joined in `registry.Registry`; assist keeps
suggestions, feedback and audit entries (`assist.records`) and the gap log (`assist.gap_log`).

SQLite notes: WAL lets readers run beside the one writer; every writing transaction opens with BEGIN
IMMEDIATE so read-then-write steps (begin_document, update_job_file) cannot interleave, and the busy
timeout makes concurrent writers queue instead of failing. An in-memory `sqlite://` database is a single
connection, so there every transaction is serialised by a lock.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, Self, TypeVar, get_args

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    create_engine,
    delete,
    event,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker
from sqlalchemy.pool import StaticPool

from ingestion import migrations
from ingestion.pseudonym import IdGuard
from ingestion.registry_models import (
    PiiSubjectRow,
    TenantRow,
)

_BUSY_TIMEOUT_MS = 10_000


class WouldWait(RuntimeError):
    """A write asked not to wait (`inserting(wait=False)`) would have to: another writer holds the
    database, or it is not a local SQLite file (a network round trip). Nothing was written."""


T = TypeVar("T")


def check_choice(value: str, allowed: Any, what: str) -> None:
    """Raise ValueError unless `value` is one of the Literal `allowed`."""
    choices = get_args(allowed)
    if value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)}; got {value!r}")


def retry_once_on_conflict(attempt: Callable[[], T]) -> T:
    """Return `attempt()`, run again if it lost a unique-key race (PostgreSQL; SQLite writers never race)."""
    try:
        return attempt()
    except IntegrityError:
        return attempt()


def require_tenant(session: Session, tenant_id: str) -> None:
    if session.get(TenantRow, tenant_id) is None:
        raise LookupError(f"No tenant {tenant_id!r}")


def drop_subject_links(session: Session, tenant_id: str, kind: str, refs: Sequence[str]) -> None:
    """Delete the personal-data links of the `kind` records `refs` (guarded ids)."""
    if refs:
        session.execute(
            delete(PiiSubjectRow).where(
                PiiSubjectRow.tenant_id == tenant_id,
                PiiSubjectRow.kind == kind,
                PiiSubjectRow.ref.in_(list(refs)),
            )
        )


def engine_url(url: str) -> URL:
    """Return `url` parsed, a plain postgresql:// meaning psycopg 3 (the driver this package installs;
    SQLAlchemy's own default for it is psycopg2)."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+psycopg") if parsed.drivername == "postgresql" else parsed


def _is_memory_sqlite(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"


def _without_nul(value: Any) -> Any:
    return value.replace("\x00", "\ufffd") if isinstance(value, str) and "\x00" in value else value


def _scrub_parameters(parameters: Any) -> Any:
    """Return statement parameters (a dict or tuple, or a list of them) with NUL characters in strings
    replaced by U+FFFD: PostgreSQL text cannot hold NUL, so neither database stores one, and a lookup by an
    id that had one finds the row (its parameter is scrubbed the same way)."""
    if isinstance(parameters, dict):
        return {key: _without_nul(value) for key, value in parameters.items()}
    if isinstance(parameters, list | tuple):
        if parameters and isinstance(parameters[0], dict | list | tuple):  # executemany
            return type(parameters)(_scrub_parameters(p) for p in parameters)
        return type(parameters)(_without_nul(value) for value in parameters)
    return parameters


def _create_engine(url: URL) -> Engine:
    # pre_ping drops connections the PostgreSQL server closed while the pool held them.
    sqlite = url.get_backend_name() == "sqlite"
    engine = _create_sqlite_engine(url) if sqlite else create_engine(url, pool_pre_ping=True)

    @event.listens_for(engine, "before_cursor_execute", retval=True)
    def _no_nul(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool
    ) -> tuple[str, Any]:
        return statement, _scrub_parameters(parameters)

    return engine


def _create_sqlite_engine(url: URL) -> Engine:
    memory = _is_memory_sqlite(url)
    if not memory and url.database and url.query.get("uri") != "true":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": _BUSY_TIMEOUT_MS / 1000},
        # One shared connection keeps an in-memory database alive and visible to every thread.
        **({"poolclass": StaticPool} if memory else {}),
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module, which would start them lazily on the
        # first write; _on_begin issues BEGIN instead (SQLAlchemy's documented SQLite recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        # Deleted rows are overwritten, not left in free pages: erasure must leave nothing behind.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        if not memory:
            _journal_to_wal(cursor)
            cursor.execute("PRAGMA synchronous=NORMAL")  # durable enough with WAL, much faster commits
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        options = connection.get_execution_options()
        statement = f"BEGIN {options.get('sqlite_begin', 'DEFERRED')}"
        # Straight to the driver: through exec_driver_sql this one statement cost a third of every
        # suggest's audit insert. Its errors are wrapped as SQLAlchemy wraps them ("database is locked").
        driver = connection.connection.driver_connection
        if options.get("sqlite_nowait"):
            # Another process holds the write lock: fail at once instead of sleeping in the busy handler.
            # BEGIN IMMEDIATE takes the lock; in WAL the commit does not wait for it again.
            driver.execute("PRAGMA busy_timeout=0")
            try:
                driver.execute(statement)
            except sqlite3.OperationalError as err:
                raise WouldWait(f"the database is locked by another writer: {err}") from err
            finally:
                driver.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            return
        try:
            driver.execute(statement)
        except sqlite3.Error as err:
            raise DBAPIError.instance(statement, None, err, sqlite3.Error) from err

    return engine


def _journal_to_wal(cursor: Any) -> None:
    """Switch the database to WAL. A new file opened by several connections at once is locked by the one
    that migrates it, and SQLite answers that switch "database is locked" at once instead of waiting its
    busy timeout: so wait here, up to the same timeout."""
    deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class RegistryDatabase:
    """The registry's database: one engine, its transactions and its schema. Open the `Registry` once
    and share it between threads."""

    def __init__(self, url: str, *, ids: IdGuard | None = None) -> None:
        """`ids` guards document ids, job file names and conversation ids (ingestion.pseudonym): every
        method takes the id a tenant gave and stores or looks up its guarded form. Without it a random
        secret is used, good for this object's lifetime only (tests, throw-away eval registries)."""
        self.ids = ids or IdGuard(secrets.token_bytes(32))
        parsed = engine_url(url)
        self._engine = _create_engine(parsed)
        sqlite = parsed.get_backend_name() == "sqlite"
        shared = threading.RLock()
        self._lock: AbstractContextManager[Any] = (
            shared if sqlite and _is_memory_sqlite(parsed) else nullcontext()
        )
        # SQLite has one writer at a time. Writers of this process queue on a lock here: left to SQLite's
        # busy handler, a waiting writer sleeps 1, 2, 5, 10, 15... ms between tries, and four suggest
        # requests storing their audit rows at once waited that long for each other.
        self._write_lock: AbstractContextManager[Any] = shared if sqlite else nullcontext()
        writer = self._engine.execution_options(sqlite_begin="IMMEDIATE")
        self._write_engine = writer
        # Writes that may be tried without waiting: a SQLite file's (an in-memory one's lock is the reader's too).
        self._nowait_engine = (
            writer.execution_options(sqlite_nowait=True) if sqlite and not _is_memory_sqlite(parsed) else None
        )
        self._reader = sessionmaker(self._engine, expire_on_commit=False)
        self._writer = sessionmaker(writer, expire_on_commit=False)
        # Where the schema stood before this open brought it to head (ingestion.migrations).
        self.schema_on_open: migrations.SchemaState
        self._migrate()

    def close(self) -> None:
        """Close every pooled connection; the registry is unusable afterwards."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        # Inside one write transaction: concurrent openers of a new database migrate it once.
        with self._write_lock, self._write_engine.begin() as connection:
            self.schema_on_open = migrations.upgrade(connection, repr(self._engine.url))

    def schema_state(self) -> migrations.SchemaState:
        """Return the database's schema revision now (head once the registry is open)."""
        with self._lock, self._engine.connect() as connection:
            return migrations.state(connection)

    def _by_id(self, column: ColumnElement[str] | InstrumentedAttribute[str]) -> ColumnElement[str]:
        """Return `column` to order by, compared character by character as SQLite does: PostgreSQL's default
        collation is usually linguistic (en_US in the postgres image: "a-c" < "A." < "ab")."""
        return column.collate("C") if self._engine.dialect.name == "postgresql" else column.expression

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Session]:
        """Yield a session in one transaction (a writing one takes SQLite's write lock at once)."""
        factory = self._writer if write else self._reader
        with self._write_lock if write else self._lock, factory() as session, session.begin():
            yield session

    @contextmanager
    def inserting(self, tenant_id: str, *, wait: bool = True) -> Iterator[Connection]:
        """Yield a plain connection in one write transaction; LookupError for an unknown tenant.

        `wait=False`: raise WouldWait at once, before anything is written, when the write would wait for
        another writer (of this process or another) or for a network (any database but a SQLite file).
        A server's event loop writes this way and hands the write to a thread when it would wait.
        """
        # Core inserts on a plain connection: no ORM session or unit of work on the hot path (every suggest
        # writes here). The tenant foreign key catches an unknown tenant.
        if wait:
            lock, engine = self._write_lock, self._write_engine
        elif self._nowait_engine is None:
            raise WouldWait("only a SQLite file is written without waiting")
        else:
            lock, engine = self._held_now(), self._nowait_engine
        try:
            with lock, engine.begin() as connection:
                yield connection
        except IntegrityError as err:
            raise LookupError(f"No tenant {tenant_id!r}") from err

    @contextmanager
    def _held_now(self) -> Iterator[None]:
        """Hold this process's write lock if it is free now, else raise WouldWait."""
        lock: threading.RLock = self._write_lock  # type: ignore[assignment]
        if not lock.acquire(blocking=False):
            raise WouldWait("another writer of this process holds the database")
        try:
            yield
        finally:
            lock.release()

    def checkpoint(self) -> None:
        """After an erasure: SQLite copies the write-ahead log into the database and truncates it, so the
        log keeps no page images of deleted rows (deleted rows themselves are overwritten, secure_delete).
        PostgreSQL reclaims deleted rows with its own (auto)vacuum."""
        if self._engine.url.get_backend_name() == "sqlite" and not _is_memory_sqlite(self._engine.url):
            with self._lock, self._engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
