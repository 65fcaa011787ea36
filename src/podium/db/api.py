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

import threading
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    ClauseElement,
    ColumnElement,
    Select,
    Update,
    bindparam,
    false,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, attributes, configure_mappers

from podium.context import RequestContext
from podium.db.engine import Database, DriverStatement
from podium.db.models import Base, table_of
from podium.db.query import column_key, model_query, newest_first, update_values
from podium.db.types import utcnow
from podium.exceptions import NotFound

__all__ = [
    "PreparedUpdate",
    "create",
    "get",
    "get_one",
    "insert_row",
    "returns_updates",
    "soft_delete",
    "update_live",
    "update_returning",
    "update_row",
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
    # A new row object each attempt: a rolled-back attempt leaves its own stale.
    return db.run(lambda session: _insert(session, model, attributes))


def insert_row(session: Session, model: type[M], values: Mapping[str, Any]) -> M:
    """:func:`create` inside a unit of work of the caller's (an update that found no row)."""
    return _insert(session, model, update_values(model, values))


def _insert(session: Session, model: type[M], attributes: Mapping[str, Any]) -> M:
    row = model(**attributes)
    session.add(row)
    session.flush()
    return row


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


#: An UPDATE, the same RETURNING every column, and the SELECT that reads the
#: row back where the backend has no UPDATE ... RETURNING (MariaDB).
_Statements = tuple[Update, Update, Select[Any]]


def _statements(model: type[Base], update: Update, read_back: Select[Any]) -> _Statements:
    return update, update.returning(*_layout(model).columns), read_back


class _Layout:
    """How a model's rows come back from the statements below: its attribute keys and
    columns in the mapper's order, and where its primary key sits among them."""

    __slots__ = ("columns", "keys", "onupdate", "primary_key")

    def __init__(self, model: type[Base]) -> None:
        mapper = model.__mapper__
        if not mapper.configured:
            # Instances are built here, not by the ORM's loading, which would
            # configure the mappers first: attributes need it to be readable.
            configure_mappers()
        mapped = mapper.columns
        self.keys = tuple(mapped.keys())
        self.columns = tuple(mapped.values())
        self.primary_key = tuple(self.columns.index(column) for column in mapper.primary_key)
        # Column defaults on UPDATE computed in Python (updated_at's clock): a
        # statement run on the driver's cursor needs their values given.
        self.onupdate = tuple(
            (key, column.onupdate)
            for key, column in mapped.items()
            if column.onupdate is not None
            and (column.onupdate.is_callable or column.onupdate.is_scalar)
        )


_LAYOUTS: dict[type[Base], _Layout] = {}


def _layout(model: type[Base]) -> _Layout:
    layout = _LAYOUTS.get(model)
    if layout is None:
        layout = _LAYOUTS[model] = _Layout(model)
    return layout


def _detached(model: type[M], row: Sequence[Any]) -> M:
    """A detached, fully loaded ``model`` instance holding ``row`` (all its columns, in
    the mapper's order).

    Built without a Session: the rows these helpers return are read, never
    flushed, so the identity map and the ORM's row loading (most of an
    update's CPU on a conductor) are work nobody uses.
    """
    layout = _layout(model)
    mapper = model.__mapper__
    instance: M = mapper.class_manager.new_instance()
    state = attributes.instance_state(instance)
    state.dict.update(zip(layout.keys, row, strict=True))
    state.key = mapper.identity_key_from_primary_key(tuple(row[i] for i in layout.primary_key))
    return instance


def _run_update(
    session: Session,
    model: type[M],
    statements: _Statements,
    params: Mapping[str, Any] | None,
) -> M | None:
    """Run the update (RETURNING every column where the backend can); the row, or None."""
    statement, returning, read_back = statements
    # Pending ORM changes go first, as the ORM's own execute would send them.
    session.flush()
    connection = session.connection()
    if connection.dialect.update_returning:
        row = connection.execute(returning, params).first()
    elif connection.execute(statement, params).rowcount == 0:
        row = None
    else:
        row = connection.execute(read_back, params).one()
    return None if row is None else _detached(model, row)


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
    nothing returns None and changes nothing. For a row found by key with
    plain values, :func:`update_row` does the same with a statement built once.
    """
    mapped = model.__mapper__.columns
    statement = (
        update(table_of(model))
        .where(*where)
        .values(
            {mapped[key] if isinstance(key, str) else key: value for key, value in values.items()}
        )
    )
    read_back = select(*_layout(model).columns).where(*identity)
    return _run_update(session, model, _statements(model, statement, read_back), None)


#: Statements of update_row, by shape. A shape is the model, the columns set,
#: the key columns and the expected-value counts: a handful per application.
#: Past the bound (a caller varying the shapes without end) it starts afresh.
_SHAPES: dict[tuple[Any, ...], PreparedUpdate[Any]] = {}
_SHAPES_BOUND = 1024
_SHAPES_LOCK = threading.Lock()


class PreparedUpdate(Generic[M]):
    """An UPDATE of one row of ``model``, built with bind parameters once and run
    again with new values on the driver's cursor
    (:class:`~podium.db.engine.DriverStatement`): RETURNING every column, or,
    where the backend has no UPDATE ... RETURNING (MariaDB), then a SELECT of
    the row by ``read_back`` (conditions on a key the update does not change).

    For an application's hot DB functions, whose UPDATE has a fixed shape
    (a heartbeat's): building, compiling and executing a statement through
    SQLAlchemy cost more CPU than sending it. :func:`update_row` builds one
    per shape itself. Columns with a default on UPDATE computed in Python
    (``updated_at``) must be set by the statement: it is run as written.
    """

    __slots__ = ("_built", "_model", "_read_back", "_statement")

    def __init__(
        self, model: type[M], statement: Update, read_back: Sequence[ColumnElement[bool]]
    ) -> None:
        self._model = model
        self._statement = statement
        self._read_back = tuple(read_back)
        # Built on first use, not at import: the mappers may not all be declared yet.
        self._built: tuple[DriverStatement, DriverStatement, DriverStatement] | None = None

    def _statements(self) -> tuple[DriverStatement, DriverStatement, DriverStatement]:
        built = self._built
        if built is None:  # two threads may both build it: the same statements
            columns = _layout(self._model).columns
            built = self._built = (
                DriverStatement(self._statement.returning(*columns), columns),
                DriverStatement(self._statement),
                DriverStatement(select(*columns).where(*self._read_back), columns),
            )
        return built

    def run(self, session: Session, params: Mapping[str, Any]) -> M | None:
        """Run it with ``params`` (bind names to values); the row as stored, or None
        when no row matched (nothing changed)."""
        returning, plain, read_back = self._statements()
        # Pending ORM changes go first, as the ORM's own execute would send them.
        session.flush()
        connection = session.connection()
        row: Sequence[Any] | None
        if connection.dialect.update_returning:
            row = returning.first(connection, params, events=True)
        elif plain.execute(connection, params, events=True) == 0:
            row = None
        else:
            row = read_back.first(connection, params, events=True)
        return None if row is None else _detached(self._model, row)


def _shape_statements(model: type[M], shape: tuple[Any, ...]) -> PreparedUpdate[M]:
    _, setting, keyed, expecting = shape
    mapped = model.__mapper__.columns
    table = table_of(model)
    by_key = [table.c.deleted == 0]
    by_key += [
        mapped[name] == bindparam(f"k{i}", type_=mapped[name].type) for i, name in enumerate(keyed)
    ]
    where = list(by_key)
    for j, (name, count, with_null) in enumerate(expecting):
        column = mapped[name]
        allowed: list[ColumnElement[bool]] = []
        if count:
            allowed.append(
                column.in_([bindparam(f"e{j}_{m}", type_=column.type) for m in range(count)])
            )
        if with_null:
            allowed.append(column.is_(None))
        where.append(or_(*allowed) if allowed else false())
    values = {
        mapped[name]: bindparam(f"s{i}", type_=mapped[name].type) for i, name in enumerate(setting)
    }
    # Read back by the key as it is after the update (a key column may be set too).
    read_keys = [
        mapped[name]
        == bindparam(
            f"s{setting.index(name)}" if name in setting else f"k{i}", type_=mapped[name].type
        )
        for i, name in enumerate(keyed)
    ]
    return PreparedUpdate(model, update(table).where(*where).values(values), read_keys)


def _prepared_shape(model: type[M], shape_key: tuple[Any, ...]) -> PreparedUpdate[M]:
    """The statements of one shape of :func:`update_row`, built on its first use."""
    shape = _SHAPES.get(shape_key)
    if shape is None:
        shape = _shape_statements(model, shape_key)
        with _SHAPES_LOCK:
            if len(_SHAPES) >= _SHAPES_BOUND:
                _SHAPES.clear()
            _SHAPES[shape_key] = shape
    return shape


def update_row(
    session: Session,
    model: type[M],
    values: Mapping[str, Any],
    keys: Mapping[str, Any],
    expected: Mapping[str, Sequence[Any]] | None = None,
) -> M | None:
    """UPDATE the live row whose columns equal ``keys``; returns it as stored, or None.

    ``values`` and ``keys`` are attribute keys (see
    :func:`podium.db.query.update_values`) to plain values. ``expected``
    makes it a compare-and-swap: column -> the values it may hold for the
    update to apply (``None`` among them: NULL); None is returned when the
    row is missing, deleted or holds another value, and nothing changes.

    The same as :func:`update_returning`, but each statement is built and
    compiled once per shape (the model, which columns are set, keyed and
    expected, and how many values each expects) and run again with new
    parameters, straight on the driver's cursor
    (:class:`~podium.db.engine.DriverStatement`): a conductor's saves come
    in few shapes, and building, compiling and executing an UPDATE through
    SQLAlchemy cost more CPU than sending it.
    """
    if any(isinstance(value, ClauseElement) for value in values.values()):
        raise TypeError("update_row takes plain values; use update_returning for SQL expressions")
    layout = _layout(model)
    if layout.onupdate and any(key not in values for key, _ in layout.onupdate):
        values = dict(values)
        for key, default in layout.onupdate:
            if key not in values:
                values[key] = default.arg(None) if default.is_callable else default.arg  # type: ignore[attr-defined]
    expecting = tuple(
        (name, sum(state is not None for state in states), None in states)
        for name, states in (expected or {}).items()
    )
    shape = _prepared_shape(model, (model, tuple(values), tuple(keys), expecting))
    params: dict[str, Any] = {f"s{i}": value for i, value in enumerate(values.values())}
    params.update((f"k{i}", value) for i, value in enumerate(keys.values()))
    for j, states in enumerate((expected or {}).values()):
        params.update(
            (f"e{j}_{m}", state)
            for m, state in enumerate(state for state in states if state is not None)
        )
    result: M | None = shape.run(session, params)
    return result


def returns_updates(db: Database) -> bool:
    """Whether an update is one ``UPDATE ... RETURNING`` statement on this backend.

    Then a unit of work that is only that update may run as
    ``db.run(work, single_statement=True)``: autocommit, no BEGIN/COMMIT round trips.
    """
    return bool(db.engine.dialect.update_returning)


def update_live(session: Session, model: type[M], values: Mapping[str, Any], **keys: Any) -> M:
    """Update the live row whose columns equal ``keys``; returns it as stored (NotFound)."""
    if any(isinstance(value, ClauseElement) for value in values.values()):
        table = table_of(model)
        identity = [table.c.deleted == 0, *(table.c[name] == value for name, value in keys.items())]
        row = update_returning(session, model, values, identity, identity)
    else:
        row = update_row(session, model, values, {column_key(model, k): v for k, v in keys.items()})
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
