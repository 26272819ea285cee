"""The registry's schema migrations (ingestion/migrations) on SQLite and PostgreSQL: what they build is
exactly the models' schema, a database from before Alembic is taken over without losing data, and a
database newer than the code is refused in one line."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from ingestion import migrations
from ingestion.registry import Registry, engine_url
from ingestion.registry_models import SCHEMA_VERSION, Base
from tests.postgres_support import fresh_postgres_database, needs_postgres


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=needs_postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database: a new SQLite file, or a new database on the test PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    else:
        with fresh_postgres_database() as url:
            yield url


def _execute(url: str, *statements: str) -> list[tuple]:
    """Run `statements` in one transaction; return the last one's rows (if it returns any)."""
    engine = create_engine(engine_url(url))
    try:
        with engine.begin() as connection:
            for statement in statements:
                result = connection.execute(text(statement))
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def _alembic_revision(url: str) -> str | None:
    engine = create_engine(engine_url(url))
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def test_upgrading_an_empty_database_builds_exactly_the_models_schema(empty_url: str) -> None:
    engine = create_engine(engine_url(empty_url))
    try:
        with engine.begin() as connection:
            before = migrations.upgrade(connection, "test")
        assert (before.current, before.legacy_version) == (None, None)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
            assert migrations.state(connection).up_to_date
            assert set(inspect(connection).get_table_names()) == set(Base.metadata.tables) | {
                "alembic_version"
            }
    finally:
        engine.dispose()


def test_a_database_made_before_migrations_is_stamped_and_keeps_its_data(
    empty_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # What the registry's own create_all + schema_version row wrote before Alembic, with data in it.
    engine = create_engine(engine_url(empty_url))
    try:
        Base.metadata.create_all(engine)
    finally:
        engine.dispose()
    _execute(
        empty_url,
        f"INSERT INTO schema_version (version) VALUES ({SCHEMA_VERSION})",
        "INSERT INTO tenants (id, name, settings, created_at) VALUES "
        "('acme', 'Acme', '{\"tone\": \"sen\"}', '2026-01-02 03:04:05+00:00')",
    )
    with caplog.at_level(logging.INFO, logger="ingestion.migrations"), Registry(empty_url) as registry:
        tenant = registry.get_tenant("acme")
        assert tenant is not None and tenant.settings.tone == "sen" and tenant.created_at.year == 2026
        registry.begin_document("acme", "a.pdf", "doc", None, None, "h1")
        assert registry.mark_indexed("acme", "a.pdf", 1, chunk_count=2).chunk_count == 2
    assert "stamped as 0001_baseline" in caplog.text
    assert _alembic_revision(empty_url) == migrations.head()
    assert _execute(empty_url, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    with Registry(empty_url) as reopened:  # and the next open has nothing to do
        assert [t.id for t in reopened.list_tenants()] == ["acme"]


NEXT_RELEASE = """
import sqlalchemy as sa
from alembic import op

revision = "0002_next"
down_revision = {down!r}
branch_labels = depends_on = None


def upgrade():
    op.add_column("tenants", sa.Column("note", sa.Text(), nullable=True))


def downgrade():
    op.drop_column("tenants", "note")
"""


def test_a_database_at_an_older_revision_is_upgraded_and_the_log_says_so(
    empty_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with Registry(empty_url) as registry:
        registry.create_tenant("acme", "Acme")
    # The next release: this code's revisions and one more on top.
    current = migrations.head()
    scripts = tmp_path / "next-release"
    shutil.copytree(Path(migrations.__file__).parent, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "9999_next.py").write_text(NEXT_RELEASE.format(down=current))
    monkeypatch.setattr(migrations, "SCRIPT_LOCATION", str(scripts))

    with caplog.at_level(logging.INFO, logger="ingestion.migrations"), Registry(empty_url) as registry:
        assert (registry.schema_on_open.current, registry.schema_on_open.head) == (current, "0002_next")
        assert [t.id for t in registry.list_tenants()] == ["acme"]
    assert f"is at revision {current}: upgrading to 0002_next" in caplog.text
    assert _alembic_revision(empty_url) == "0002_next"
    assert _execute(empty_url, "SELECT id, note FROM tenants") == [("acme", None)]


def test_a_database_newer_than_the_code_is_refused_in_one_line(empty_url: str) -> None:
    Registry(empty_url).close()
    _execute(empty_url, "UPDATE alembic_version SET version_num = '9999_from_the_future'")
    with pytest.raises(migrations.SchemaError) as refused:
        Registry(empty_url)
    message = str(refused.value)
    assert "'9999_from_the_future', newer than this code" in message and "\n" not in message
    assert "upgrade invekto-knowledge" in message


def test_opening_the_same_new_database_from_many_threads_migrates_it_once(empty_url: str) -> None:
    import threading

    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            Registry(empty_url).close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _alembic_revision(empty_url) == migrations.head()


def test_db_upgrade_and_current_report_the_revision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from api.cli import app

    monkeypatch.setenv("INVEKTO_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    upgraded = runner.invoke(app, ["db", "upgrade"])
    assert upgraded.exit_code == 0 and f"an empty database -> {migrations.head()}" in upgraded.output
    again = runner.invoke(app, ["db", "upgrade"])
    assert again.exit_code == 0 and f"already at {migrations.head()}" in again.output
    current = runner.invoke(app, ["db", "current"])
    assert current.exit_code == 0 and f"current: {migrations.head()}" in current.output

    _execute(
        f"sqlite:///{tmp_path / 'data' / 'registry.sqlite3'}",
        "UPDATE alembic_version SET version_num = '9999_from_the_future'",
    )
    assert "newer than this code" in runner.invoke(app, ["db", "current"]).output
    for command in (["db", "upgrade"], ["tenant", "list"]):
        refused = runner.invoke(app, command)
        assert refused.exit_code == 2 and "newer than this code" in " ".join(refused.output.split())
        assert "Traceback" not in refused.output and refused.output.count("error:") == 1

    # A PostgreSQL server that is not there: one line too.
    monkeypatch.setenv("INVEKTO_DATABASE_URL", f"postgresql://nobody@/invekto?host={tmp_path / 'no-server'}")
    unreachable = runner.invoke(app, ["tenant", "list"])
    assert unreachable.exit_code == 2
    assert "cannot open the registry database" in " ".join(unreachable.output.split())
    assert "Traceback" not in unreachable.output and unreachable.output.count("error:") == 1
