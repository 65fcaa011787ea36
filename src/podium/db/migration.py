"""Schema migrations (Alembic), shipped in the package, no alembic.ini needed.

``sync(database)`` brings a database to the newest schema;
``current_version(database)`` says where it is (``None``: never migrated).
"""

from __future__ import annotations

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


def sync(database: Database, revision: str = "head") -> str | None:
    """Apply migrations up to ``revision`` (default: the newest); returns the new version.

    On PostgreSQL and SQLite the whole upgrade is one transaction; MySQL
    commits each DDL statement, which is why every migration step is small.
    """
    with database.connection() as connection:
        try:
            command.upgrade(alembic_config(connection), revision)
        except CommandError as error:
            raise DBError(f"Cannot migrate {database.safe_url} to {revision!r}: {error}") from None
    return current_version(database)


def downgrade(database: Database, revision: str) -> str | None:
    """Revert migrations down to ``revision`` (``"base"``: an empty schema). Drops data."""
    with database.connection() as connection:
        try:
            command.downgrade(alembic_config(connection), revision)
        except CommandError as error:
            raise DBError(
                f"Cannot downgrade {database.safe_url} to {revision!r}: {error}"
            ) from None
    return current_version(database)
