"""Schema migrations (Alembic), one branch per application, no alembic.ini needed.

The framework's own tables (the request records) are the Alembic branch
``podium``; every installed application (:mod:`podium.apps`) brings its own
branch, labelled with its name, from the directory of its ``App.migrations``
package. Revision ids are ``<branch>_<NNNN>`` (``podium_0001``, ``cloud_0001``):
that is how a revision newer than this code, which no script here describes,
is still told to belong to its branch.

``sync(database)`` brings every branch to its newest revision in one run;
``current_version(database)`` says where each branch is (``None``: never
migrated). Every function takes ``apps`` (default: the installed ones).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from podium import apps as app_registry
from podium.apps import FRAMEWORK_BRANCH, App
from podium.db.engine import Database
from podium.exceptions import DBError

__all__ = [
    "FRAMEWORK_BRANCH",
    "MIGRATIONS_DIR",
    "alembic_config",
    "branch_of",
    "branches_behind",
    "check_schema",
    "current_version",
    "downgrade",
    "head_versions",
    "sync",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: Upgrade target: the newest revision of every branch.
HEADS = "heads"


def _version_location(app: App) -> str:
    assert app.migrations is not None
    try:
        spec = importlib.util.find_spec(app.migrations)
    except ImportError as error:
        raise DBError(f"App {app.name}: migrations {app.migrations!r}: {error}") from error
    if spec is None or not spec.submodule_search_locations:
        raise DBError(f"App {app.name}: migrations {app.migrations!r} is not a package")
    return str(next(iter(spec.submodule_search_locations)))


def alembic_config(
    connection: sa.Connection | None = None, apps: Sequence[App] | None = None
) -> Config:
    """An Alembic Config with the framework's and every app's version locations.

    For custom commands (``alembic.command.*``): with ``connection`` the
    migrations run on it, through podium's ``env.py``.
    """
    chosen = app_registry.apps_or_installed(apps)
    locations = [str(MIGRATIONS_DIR / "versions")]
    locations += [_version_location(app) for app in chosen if app.migrations is not None]
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # One path per location, whatever characters the paths hold.
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", os.pathsep.join(locations))
    config.attributes["apps"] = chosen
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _scripts(apps: tuple[App, ...]) -> ScriptDirectory:
    scripts = ScriptDirectory.from_config(alembic_config(apps=apps))
    try:
        # Parses every script now, so that a broken history is one clear error.
        _ = scripts.revision_map.heads
    except CommandError as error:
        raise DBError(f"The migration scripts do not form a history: {error}") from None
    return scripts


def _branches(apps: tuple[App, ...]) -> list[str]:
    return [FRAMEWORK_BRANCH, *(app.name for app in apps if app.migrations is not None)]


def branch_of(revision: str, scripts: ScriptDirectory | None = None) -> str:
    """The branch ``revision`` belongs to: its label if a script here has it, else its prefix."""
    if scripts is not None:
        try:
            script = scripts.get_revision(revision)
        except CommandError:
            script = None
        if script is not None and len(script.branch_labels) == 1:
            return next(iter(script.branch_labels))
    return revision.rpartition("_")[0] or revision


def head_versions(apps: Sequence[App] | None = None) -> dict[str, str]:
    """The newest revision of each branch this code ships: the framework's, then each app's."""
    chosen = app_registry.apps_or_installed(apps)
    return _heads(_scripts(chosen), chosen)


def _heads(scripts: ScriptDirectory, apps: tuple[App, ...]) -> dict[str, str]:
    heads: dict[str, str] = {}
    for branch in _branches(apps):
        try:
            head = scripts.revision_map.get_current_head(branch)
        except CommandError as error:
            raise DBError(f"Migrations of branch {branch!r}: {error}") from None
        # Alembic also reads a branch name as the prefix of a revision id: only
        # a head that carries the label belongs to the branch.
        script = None if head is None else scripts.revision_map.get_revision(head)
        if head is None or script is None or branch not in script.branch_labels:
            raise DBError(
                f"Branch {branch!r} has no migration: its first revision must set "
                f"branch_labels = ({branch!r},)"
            )
        heads[branch] = head
    return heads


def current_version(database: Database, apps: Sequence[App] | None = None) -> dict[str, str | None]:
    """The revision each branch is at (None: not migrated), framework first.

    A branch the database holds but no app here knows (an application not
    installed in this process) is reported too, after the others.
    """
    chosen = app_registry.apps_or_installed(apps)
    with database.connection() as connection:
        stored = MigrationContext.configure(connection).get_current_heads()
    scripts = _scripts(chosen) if stored else None
    versions: dict[str, str | None] = dict.fromkeys(_branches(chosen))
    for revision in stored:
        versions[branch_of(revision, scripts)] = revision
    return versions


def branches_behind(
    current: Mapping[str, str | None], apps: Sequence[App] | None = None
) -> dict[str, str]:
    """Branch -> newest revision, for each branch ``current`` has older than this code's.

    A branch never migrated is behind; one at a revision this code does not
    know is newer (a release migrated ahead of this one), not behind.
    """
    chosen = app_registry.apps_or_installed(apps)
    scripts = _scripts(chosen)
    behind: dict[str, str] = {}
    for branch, head in _heads(scripts, chosen).items():
        version = current.get(branch)
        if version != head and (version is None or _known(scripts, version)):
            behind[branch] = head
    return behind


def check_schema(database: Database, apps: Sequence[App] | None = None) -> dict[str, str]:
    """The schema version of each branch, if this code can serve them all; DBError otherwise.

    A service that starts on a database it cannot reach, or one not yet
    migrated, would otherwise start "fine" and fail every request. A branch
    newer than this code knows is served: during a rolling upgrade the new
    code migrates first and the old services keep running (migrations only
    add, so the old queries still work).
    """
    chosen = app_registry.apps_or_installed(apps)
    current = current_version(database, chosen)
    behind = branches_behind(current, chosen)
    if behind:
        described = "; ".join(
            f"{branch} at {current.get(branch) or 'none (empty)'}, this code needs {head}"
            for branch, head in behind.items()
        )
        raise DBError(
            f"The database at {database.safe_url} is behind: {described}: run `podium db sync`"
        )
    return {branch: str(current[branch]) for branch in _branches(chosen)}


def _known(scripts: ScriptDirectory, revision: str) -> bool:
    try:
        return scripts.get_revision(revision) is not None
    except CommandError:
        return False


def sync(
    database: Database, revision: str = HEADS, apps: Sequence[App] | None = None
) -> dict[str, str | None]:
    """Apply migrations up to ``revision`` (default: every branch's newest); returns
    :func:`current_version` after.

    One run migrates every branch, under one lock. On PostgreSQL and SQLite the
    whole upgrade is one transaction; MySQL commits each DDL statement, which is
    why every migration step is small.
    """
    chosen = app_registry.apps_or_installed(apps)
    with _migrating(database) as connection:
        try:
            command.upgrade(alembic_config(connection, chosen), revision)
        except CommandError as error:
            raise DBError(f"Cannot migrate {database.safe_url} to {revision!r}: {error}") from None
    return current_version(database, chosen)


def downgrade(
    database: Database, revision: str, apps: Sequence[App] | None = None
) -> dict[str, str | None]:
    """Revert migrations down to ``revision`` (``"base"``: every branch empty;
    ``"<branch>@base"``: one branch). Drops data."""
    chosen = app_registry.apps_or_installed(apps)
    with _migrating(database) as connection:
        try:
            command.downgrade(alembic_config(connection, chosen), revision)
        except CommandError as error:
            raise DBError(
                f"Cannot downgrade {database.safe_url} to {revision!r}: {error}"
            ) from None
    return current_version(database, chosen)


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
