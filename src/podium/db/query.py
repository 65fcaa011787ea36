"""Query helpers: ``read_deleted`` filtering and soft delete, for any model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, case, select, update
from sqlalchemy.orm import Session

from podium.context import ReadDeleted, RequestContext
from podium.db.models import Base, SoftDeleteMixin
from podium.db.types import utcnow
from podium.exceptions import DBError

__all__ = [
    "column_key",
    "deleted_filter",
    "model_query",
    "newest_first",
    "soft_delete",
    "update_values",
]

M = TypeVar("M", bound=Base)

_READ_DELETED = ("no", "yes", "only")


def deleted_filter(model: type[Base], read_deleted: ReadDeleted) -> ColumnElement[bool] | None:
    """The WHERE clause for ``read_deleted`` (None: no filter)."""
    deleted = model.__table__.c.deleted
    if read_deleted == "no":
        return deleted == 0
    if read_deleted == "only":
        return deleted != 0
    if read_deleted == "yes":
        return None
    raise DBError(f"read_deleted must be one of {_READ_DELETED}, not {read_deleted!r}")


def model_query(
    model: type[M], context: RequestContext, read_deleted: ReadDeleted | None = None
) -> Select[M]:
    """``SELECT model`` restricted as ``read_deleted`` (default: the context's) asks."""
    query = select(model)
    clause = deleted_filter(model, read_deleted or context.read_deleted)
    return query if clause is None else query.where(clause)


def newest_first(model: type[Base]) -> tuple[ColumnElement[Any], ...]:
    """ORDER BY that puts the live row first, then the most recently created twin."""
    table = model.__table__
    return (case((table.c.deleted == 0, 0), else_=1), table.c.id.desc())


def column_key(model: type[Base], name: str) -> str:
    """The attribute key of column ``name`` (``metadata`` -> ``metadata_``)."""
    key = model._key_for(name)
    if key in model.__mapper__.columns:
        return key
    raise DBError(f"{model.__tablename__} has no column {name!r}")


def update_values(
    model: type[Base], values: Mapping[str, Any], *, protected: tuple[str, ...] = ()
) -> dict[str, Any]:
    """``values`` keyed by column name (``metadata`` or ``metadata_``) -> attribute keys.

    Unknown columns and the soft-delete bookkeeping columns are refused with a
    DBError naming the table, instead of a late SQL error.
    """
    columns = model.__mapper__.columns
    refused = {"id", "deleted", "deleted_at", *protected}
    result: dict[str, Any] = {}
    for name, value in values.items():
        key = column_key(model, name)
        if columns[key].name in refused:
            raise DBError(f"{model.__tablename__}.{columns[key].name} cannot be set directly")
        result[key] = value
    return result


def soft_delete(session: Session, model: type[SoftDeleteMixin], *where: ColumnElement[bool]) -> int:
    """Soft-delete the live rows matching ``where``; returns how many.

    ``deleted`` becomes the row's own id, ``deleted_at`` now; ``updated_at`` is
    kept, so it still says when the row last changed while alive.
    """
    table = model.__table__  # type: ignore[attr-defined]
    statement = (
        update(table)
        .where(table.c.deleted == 0, *where)
        .values(deleted=table.c.id, deleted_at=utcnow(), updated_at=table.c.updated_at)
    )
    result = session.execute(statement)
    return int(result.rowcount)  # type: ignore[attr-defined]
