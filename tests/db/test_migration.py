"""Migrations up from empty, on every backend, and their agreement with the models."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from podium.db import Database, migration
from podium.db.models import Base
from podium.exceptions import DBError


def test_sync_from_empty_reaches_head(empty_url: str) -> None:
    database = Database(empty_url)
    try:
        assert migration.current_version(database) is None
        assert migration.sync(database) == migration.head_version() == "0002"
        assert migration.current_version(database) == "0002"
        # a second sync is a no-op, not an error
        assert migration.sync(database) == "0002"
        tables = set(sa.inspect(database.engine).get_table_names())
        assert {
            "services",
            "compute_nodes",
            "instances",
            "shadow_services",
            "shadow_compute_nodes",
            "shadow_instances",
        } <= tables
    finally:
        database.dispose()


def test_concurrent_syncs_all_succeed(empty_url: str) -> None:
    """Services starting together may all run sync; one migrates, the others wait."""
    databases = [Database(empty_url) for _ in range(3)]
    errors: list[BaseException] = []
    results: list[str | None] = []

    def run(database: Database) -> None:
        try:
            results.append(migration.sync(database))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(database,)) for database in databases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for database in databases:
        database.dispose()
    assert errors == []
    assert results == ["0002"] * 3


@pytest.mark.parametrize("backend", [pytest.param("mysql", marks=pytest.mark.mysql)])
def test_mysql_lock_is_released_only_once_the_version_is_committed(empty_url: str) -> None:
    """MySQL's lock is per session; released before the migration's commit, the
    next service would read no version and create the tables again."""
    database = Database(empty_url)
    observer = Database(empty_url)
    seen_at_release: list[str | None] = []

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "RELEASE_LOCK" in statement:
            seen_at_release.append(migration.current_version(observer))

    sa.event.listen(database.engine, "before_cursor_execute", on_execute)
    try:
        migration.sync(database)
    finally:
        database.dispose()
        observer.dispose()
    assert seen_at_release == [migration.head_version()]


def test_migrated_schema_matches_models(empty_url: str) -> None:
    """Catches "changed a model, forgot the migration"."""
    database = Database(empty_url)
    try:
        migration.sync(database)
        with database.connection() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
        assert diff == []
    finally:
        database.dispose()


def test_shadow_tables_have_no_unique_constraints(empty_url: str) -> None:
    database = Database(empty_url)
    try:
        migration.sync(database)
        inspector = sa.inspect(database.engine)
        for name in ("services", "compute_nodes", "instances"):
            live = inspector.get_unique_constraints(name)
            assert [c["column_names"][-1] for c in live] == ["deleted"]
            assert inspector.get_unique_constraints(f"shadow_{name}") == []
            live_columns = [c["name"] for c in inspector.get_columns(name)]
            assert [c["name"] for c in inspector.get_columns(f"shadow_{name}")] == live_columns
    finally:
        database.dispose()


def test_downgrade_to_base_and_up_again(empty_url: str) -> None:
    database = Database(empty_url)
    try:
        migration.sync(database)
        assert migration.downgrade(database, "base") is None
        assert "instances" not in sa.inspect(database.engine).get_table_names()
        assert migration.sync(database) == "0002"
    finally:
        database.dispose()


def test_migrations_are_package_data() -> None:
    versions = migration.MIGRATIONS_DIR / "versions"
    assert (migration.MIGRATIONS_DIR / "env.py").is_file()
    assert (migration.MIGRATIONS_DIR / "script.py.mako").is_file()
    # __init__.py files make setuptools ship these as packages; Alembic skips them.
    assert (migration.MIGRATIONS_DIR / "__init__.py").is_file()
    assert (versions / "__init__.py").is_file()


def test_check_schema_refuses_an_unmigrated_database_and_serves_a_newer_one(
    empty_url: str,
) -> None:
    database = Database(empty_url)
    try:
        with pytest.raises(DBError, match=r"schema none \(empty\); this code needs 0002: run"):
            migration.check_schema(database)
        migration.sync(database)
        assert migration.check_schema(database) == "0002"
        # A newer release migrated first (rolling upgrade): still served.
        with database.connection() as connection:
            connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
        assert migration.check_schema(database) == "9999"
    finally:
        database.dispose()
