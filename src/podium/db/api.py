"""Generic DB helpers an application builds its DB functions from, for any model.

``create`` and ``get`` run their own transaction (through :meth:`Database.run`,
so a connection lost before anything could commit costs a retry, not a
failure); the others take a ``Session`` so that an application composes them
inside one ``db.run(work)``. They return model rows, detached and fully loaded
once the transaction ends, so they can be read after the call (``row.host`` or
``row["host"]``).

Reads honour ``context.read_deleted``: ``'no'`` (default) skips soft-deleted
rows, ``'yes'`` includes them, ``'only'`` returns only them. Updates and
deletes act on live rows only. A missing row raises
:class:`~podium.exceptions.NotFound` naming the table and key; a unique
constraint raises :class:`~podium.exceptions.DuplicateEntry`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from podium.context import RequestContext
from podium.db.engine import Database
from podium.db.models import Base, table_of
from podium.db.query import model_query, newest_first, update_values
from podium.db.types import utcnow
from podium.exceptions import NotFound

__all__ = [
    "create",
    "get",
    "get_one",
    "returns_updates",
    "soft_delete",
    "update_live",
    "update_returning",
]

M = TypeVar("M", bound=Base)


def _described(keys: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in keys.items())


def create(db: Database, model: type[M], values: Mapping[str, Any]) -> M:
    """INSERT one row of ``model`` from ``values`` (column names); returns it as stored.

    Unknown columns and the soft-delete bookkeeping (``id``, ``deleted``,
    ``deleted_at``) are refused with a DBError before any SQL.
    """
    attributes = update_values(model, values)

    def work(session: Session) -> M:
        # A new row object each attempt: a rolled-back attempt leaves its own stale.
        row = model(**attributes)
        session.add(row)
        session.flush()
        return row

    return db.run(work)


def get_one(session: Session, context: RequestContext, model: type[M], **keys: Any) -> M:
    """The row of ``model`` whose columns equal ``keys``, as ``context.read_deleted`` allows.

    With deleted rows visible, the live row wins, then the newest deleted twin.
    """
    query = model_query(model, context).filter_by(**keys).order_by(*newest_first(model))
    row = session.scalars(query.limit(1)).first()
    if row is None:
        raise NotFound(f"No {model.__tablename__} row with {_described(keys)}")
    return row


def get(db: Database, context: RequestContext, model: type[M], **keys: Any) -> M:
    """:func:`get_one` in a transaction of its own."""
    return db.run(lambda session: get_one(session, context, model, **keys))


def update_returning(
    session: Session,
    model: type[M],
    values: Mapping[str, Any],
    where: Sequence[ColumnElement[bool]],
    identity: Sequence[ColumnElement[bool]],
) -> M | None:
    """UPDATE the one row matching ``where`` with ``values``; returns it as stored, or None.

    ``values`` are attribute keys (see :func:`podium.db.query.update_values`)
    or SQL expressions. One round trip with RETURNING (PostgreSQL, SQLite);
    MariaDB has no UPDATE ... RETURNING, so there the row is read back by
    ``identity`` (its key, which the update does not change) in the same
    transaction. A conditional ``where`` (a compare-and-swap) that matches
    nothing returns None and changes nothing.
    """
    statement = update(model).where(*where).values(**values)
    options = {"synchronize_session": False}
    if session.get_bind().dialect.update_returning:
        return session.scalars(statement.returning(model), execution_options=options).first()
    if session.execute(statement, execution_options=options).rowcount == 0:  # type: ignore[attr-defined]
        return None
    return session.scalars(
        select(model).where(*identity), execution_options={"populate_existing": True}
    ).one()


def returns_updates(db: Database) -> bool:
    """Whether an update is one ``UPDATE ... RETURNING`` statement on this backend.

    Then a unit of work that is only that update may run as
    ``db.run(work, single_statement=True)``: autocommit, no BEGIN/COMMIT round trips.
    """
    return bool(db.engine.dialect.update_returning)


def update_live(session: Session, model: type[M], values: Mapping[str, Any], **keys: Any) -> M:
    """Update the live row whose columns equal ``keys``; returns it as stored (NotFound)."""
    table = table_of(model)
    identity = [table.c.deleted == 0, *(table.c[name] == value for name, value in keys.items())]
    row = update_returning(session, model, values, identity, identity)
    if row is None:
        raise NotFound(f"No live {model.__tablename__} row with {_described(keys)}")
    return row


def soft_delete(session: Session, model: type[M], **keys: Any) -> M:
    """Soft-delete the live row whose columns equal ``keys``; returns it as deleted (NotFound).

    ``deleted`` takes the row's id and ``deleted_at`` now; ``updated_at`` keeps
    its value, so it still says when the row last changed while alive.
    """
    table = table_of(model)
    row_id = session.scalar(
        select(table.c.id).where(table.c.deleted == 0, *(table.c[k] == v for k, v in keys.items()))
    )
    if row_id is None:
        raise NotFound(f"No live {model.__tablename__} row with {_described(keys)}")
    values = {"deleted": table.c.id, "deleted_at": utcnow(), "updated_at": table.c.updated_at}
    by_id = [table.c.id == row_id]
    row = update_returning(session, model, values, [*by_id, table.c.deleted == 0], by_id)
    if row is None:  # soft-deleted by someone else since the SELECT
        raise NotFound(f"No live {model.__tablename__} row with {_described(keys)}")
    return row
