"""Move soft-deleted rows into the shadow tables, in batches.

The tables archived are those every application lists in ``App.archive``, in
that order (children first), applications by name.

Each batch is one transaction: copy the rows into ``shadow_<table>`` (same
ids, every column) and delete exactly those ids from the live table. A crash
or a ``max_rows`` stop between batches leaves every row in exactly one of the
two tables; a failure inside a batch rolls the whole batch back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Table, select

from podium import apps as app_registry
from podium.apps import App
from podium.db.engine import Database
from podium.db.models import Base, is_soft_delete, shadow_table
from podium.exceptions import DBError

__all__ = ["archive_deleted_rows", "archived_tables"]

LOG = logging.getLogger(__name__)


def archived_tables(apps: Sequence[App] | None = None) -> list[str]:
    """Live tables archived, in order: each app's ``archive`` (default: the installed apps).

    Imports the apps' ``models`` modules, so that their tables are declared.
    """
    apps = app_registry.apps_or_installed(apps)
    app_registry.import_modules(apps, "models")
    names: list[str] = []
    for app in apps:
        for name in app.archive:
            table = Base.metadata.tables.get(name)
            if table is None or not is_soft_delete(table):
                raise DBError(
                    f"App {app.name} archives {name!r}, which is no soft-delete table "
                    f"of its models {list(app.models)}"
                )
            if name in names:
                raise DBError(f"table {name!r} is archived twice (App {app.name})")
            names.append(name)
    return names


def archive_deleted_rows(
    database: Database,
    before: datetime | None = None,
    max_rows: int | None = None,
    batch_size: int = 1000,
    apps: Sequence[App] | None = None,
) -> dict[str, int]:
    """Archive soft-deleted rows; returns rows moved per live table name.

    ``before``: only rows whose ``deleted_at`` is older (naive means UTC).
    ``max_rows``: stop after this many rows in total, across tables.
    ``apps``: whose tables (default: every installed application's).
    """
    if batch_size < 1:
        raise DBError(f"batch_size must be at least 1, not {batch_size}")
    if max_rows is not None and max_rows < 0:
        raise DBError(f"max_rows must be >= 0, not {max_rows}")
    names = archived_tables(apps)
    counts = dict.fromkeys(names, 0)
    remaining = max_rows
    for name in names:
        table = Base.metadata.tables[name]
        shadow = shadow_table(name)
        while remaining is None or remaining > 0:
            wanted = batch_size if remaining is None else min(batch_size, remaining)
            moved = _archive_batch(database, table, shadow, before, wanted)
            counts[table.name] += moved
            if remaining is not None:
                remaining -= moved
            if moved < wanted:
                break
    return counts


def _archive_batch(
    database: Database, table: Table, shadow: Table, before: datetime | None, limit: int
) -> int:
    with database.connection() as connection:
        query = select(table.c.id).where(table.c.deleted != 0)
        if before is not None:
            query = query.where(table.c.deleted_at < before)
        ids = list(connection.scalars(query.order_by(table.c.id).limit(limit).with_for_update()))
        if not ids:
            return 0
        names = [column.name for column in table.columns]
        connection.execute(
            shadow.insert().from_select(
                names, select(*(table.c[name] for name in names)).where(table.c.id.in_(ids))
            )
        )
        deleted = connection.execute(table.delete().where(table.c.id.in_(ids))).rowcount
        if deleted != len(ids):
            # Another archiver took some of these rows in the meantime: undo this
            # batch rather than leave two copies.
            raise DBError(
                f"archive of {table.name} moved {len(ids)} rows but deleted {deleted}; "
                "rolled back (is another archive running?)"
            )
        LOG.info("archived %d rows of %s into %s", len(ids), table.name, shadow.name)
        return len(ids)
