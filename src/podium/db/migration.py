"""Schema migrations (Alembic), shipped in the package, no alembic.ini needed.

``sync(database)`` brings a database to the newest schema;
``current_version(database)`` says where it is (``None``: never migrated).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from podium.db.engine import Database
from podium.exceptions import DBError

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "check_schema",
    "current_version",
    "downgrade",
    "head_version",
    "sync",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """An Alembic Config pointing at the package's migrations (for custom commands)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_version() -> str:
    """The newest revision the package ships."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the package ships no migrations"
    return head


def current_version(database: Database) -> str | None:
    """The revision the database is at, or None if it was never migrated."""
    with database.connection() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def check_schema(database: Database) -> str:
    """The database's schema version, if this code can serve it; DBError otherwise.

    A service that starts on a database it cannot reach, or one not yet
    migrated, would otherwise start "fine" and fail every request. A schema
    newer than this code knows is served: during a rolling upgrade the new
    code migrates first and the old services keep running (migrations only
    add, so the old queries still work).
    """
    current = current_version(database)
    head = head_version()
    if current == head:
        return current
    scripts = ScriptDirectory.from_config(alembic_config())
    known = {script.revision for script in scripts.walk_revisions()}
    if current is None or current in known:
        raise DBError(
            f"The database at {database.safe_url} is at schema {current or 'none (empty)'}; "
            f"this code needs {head}: run `podium db sync`"
        )
    return current


def sync(database: Database, revision: str = "head") -> str | None:
    """Apply migrations up to ``revision`` (default: the newest); returns the new version.

    On PostgreSQL and SQLite the whole upgrade is one transaction; MySQL
    commits each DDL statement, which is why every migration step is small.
    """
    with _migrating(database) as connection:
        try:
            command.upgrade(alembic_config(connection), revision)
        except CommandError as error:
            raise DBError(f"Cannot migrate {database.safe_url} to {revision!r}: {error}") from None
    return current_version(database)


# Several services may run `sync` as they start; the first migrates, the others
# wait and then find the schema at head (Alembic reads the version only after
# the lock is held, and the lock is released only once the version is committed).
_LOCK_NAME = "podium_schema_migration"
_PG_LOCK_KEY = 0x706F6469756D  # "podium"


@contextmanager
def _migrating(database: Database) -> Iterator[sa.Connection]:
    """A connection in one transaction, holding the migration lock until it commits."""
    with _session_lock(database), database.connection() as connection:
        _lock_in_transaction(connection)
        yield connection


@contextmanager
def _session_lock(database: Database) -> Iterator[None]:
    """MySQL's migration lock, held on a connection of its own.

    GET_LOCK belongs to the session, not the transaction, and MySQL commits
    the version row only when the migration's transaction ends: released on
    the migrating connection, the lock would let the next service read the
    old version and create the tables again ("Table ... already exists").
    """
    if database.backend != "mysql":
        yield
        return
    with database.connection() as lock_connection:
        got = lock_connection.execute(
            sa.text("SELECT GET_LOCK(:name, 300)"), {"name": _LOCK_NAME}
        ).scalar()
        if got != 1:
            raise DBError("Timed out waiting for another `podium db sync` to finish")
        try:
            yield
        finally:
            lock_connection.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": _LOCK_NAME})


def _lock_in_transaction(connection: sa.Connection) -> None:
    """The lock that ends with the migration's own commit (PostgreSQL, SQLite)."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    elif dialect == "sqlite":
        # Take the write lock now (pysqlite would only BEGIN at the first DML),
        # so a second process waits on the busy timeout instead of racing.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def downgrade(database: Database, revision: str) -> str | None:
    """Revert migrations down to ``revision`` (``"base"``: an empty schema). Drops data."""
    with _migrating(database) as connection:
        try:
            command.downgrade(alembic_config(connection), revision)
        except CommandError as error:
            raise DBError(
                f"Cannot downgrade {database.safe_url} to {revision!r}: {error}"
            ) from None
    return current_version(database)
