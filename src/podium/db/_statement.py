"""Statements run straight on the driver's cursor (:class:`DriverStatement`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc

__all__ = ["DriverStatement"]


@dataclass
class _Compiled:
    """A statement as one dialect's driver takes it."""

    sql: str
    names: tuple[str, ...]  # the statement's bind names
    order: tuple[str, ...] | None  # bind names in order, for a positional paramstyle
    fixed: dict[str, Any]  # binds the statement gives a value of its own (deleted = 0)
    processors: dict[str, Callable[[Any], Any]]
    # (column index, result processor) of the columns that have one, from the first row:
    # most have none, and a row is then passed through untouched.
    results: tuple[tuple[int, Callable[[Any], Any]], ...] | None = None


_CURSOR_KEY = "podium_driver_cursor"


def _cursor(connection: sa.Connection) -> Any:
    """The DBAPI connection's cursor for driver statements, made on its first use.

    Kept with the pooled connection (its ``info`` lives as long as the DBAPI
    connection) and used again: making and closing a cursor per statement cost
    a tenth of a statement's CPU. A connection is used by one thread at a time,
    and each statement fetches its row before the next one runs.
    """
    fairy = connection.connection
    dbapi_connection = fairy.dbapi_connection
    assert dbapi_connection is not None
    info = fairy.info
    cursor = info.get(_CURSOR_KEY)
    if cursor is None or getattr(cursor, "connection", None) is not dbapi_connection:
        cursor = info[_CURSOR_KEY] = dbapi_connection.cursor()
    return cursor


class DriverStatement:
    """A fixed statement, compiled once per dialect and run straight on the
    connection's DBAPI cursor.

    For what runs with every request (a conductor's inbox and its saves):
    SQLAlchemy's execution of a statement, its result set-up and row
    processing cost more CPU than the round trip to the database. What is
    skipped is only that: values go through the columns' bind processors and
    rows through their result processors, as SQLAlchemy would; a driver error
    leaves as SQLAlchemy's ``DBAPIError`` (the connection invalidated if it
    was lost), as from ``Connection.execute``. With ``events=True`` the
    connection's ``before_execute`` and ``before_cursor_execute`` listeners
    run as for any statement (block_db_access, the point of no return in
    autocommit, the inbox's record before a write).

    ``columns``: what the statement returns, for the result processors.
    """

    def __init__(self, statement: sa.Executable, columns: tuple[Any, ...] = ()) -> None:
        self.statement = statement
        self._columns = columns
        self._by_dialect: dict[str, _Compiled] = {}

    def _compiled(self, dialect: Any) -> _Compiled:
        key = f"{dialect.name}+{dialect.driver}"
        found = self._by_dialect.get(key)
        if found is None:
            compiled = self.statement.compile(dialect=dialect)  # type: ignore[attr-defined]
            processors = {
                name: processor
                for name, bind in compiled.binds.items()
                if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect))
            }
            fixed = {
                name: bind.effective_value
                for name, bind in compiled.binds.items()
                if not bind.required
            }
            order = tuple(compiled.positiontup) if compiled.positional else None
            found = self._by_dialect[key] = _Compiled(
                compiled.string, tuple(compiled.binds), order, fixed, processors
            )
        return found

    def _bound(self, dialect: Any, params: Mapping[str, Any]) -> tuple[_Compiled, Any]:
        """The statement for ``dialect`` and its arguments, as the driver takes them."""
        compiled = self._compiled(dialect)
        fixed, processors = compiled.fixed, compiled.processors
        try:
            # Only the statement's own: a driver may refuse a value it is given but
            # does not use (PyMySQL escapes every one).
            values = {
                name: params[name] if name in params else fixed[name] for name in compiled.names
            }
            for name, processor in processors.items():
                values[name] = processor(values[name])
        except Exception as error:
            # As SQLAlchemy reports a value a column type could not bind.
            raise exc.StatementError(
                f"({type(error).__module__}.{type(error).__qualname__}) {error}",
                compiled.sql,
                params,
                error,
            ) from error
        args = values if compiled.order is None else [values[n] for n in compiled.order]
        return compiled, args

    def _wrapped(
        self, connection: sa.Connection, error: Any, sql: str, args: Any
    ) -> exc.StatementError:
        """A driver's error as SQLAlchemy's, the connection invalidated if it was lost."""
        dialect = connection.dialect
        lost = dialect.is_disconnect(error, None, None)
        if lost:
            connection.invalidate()
        wrapped: exc.StatementError = exc.DBAPIError.instance(
            sql,
            args,
            error,
            dialect.loaded_dbapi.Error,
            connection_invalidated=lost,
            dialect=dialect,
        )
        return wrapped

    def _run(
        self, connection: sa.Connection, params: Mapping[str, Any], events: bool, fetch: bool
    ) -> tuple[int, tuple[Any, ...] | None]:
        dialect = connection.dialect
        if events:
            for listener in connection.dispatch.before_execute:
                listener(connection, self.statement, (), params, {})
        compiled, args = self._bound(dialect, params)
        cursor = _cursor(connection)
        try:
            if events:
                for listener in connection.dispatch.before_cursor_execute:
                    listener(connection, cursor, compiled.sql, args, None, False)
            cursor.execute(compiled.sql, args)
            row = cursor.fetchone() if fetch else None
            if row is not None:
                results = compiled.results
                if results is None:
                    results = compiled.results = tuple(
                        (index, process)
                        for index, (column, description) in enumerate(
                            zip(self._columns, cursor.description, strict=True)
                        )
                        if (
                            process := column.type.dialect_impl(dialect).result_processor(
                                dialect, description[1]
                            )
                        )
                        is not None
                    )
                values = list(row)
                for index, process in results:
                    values[index] = process(values[index])
                row = tuple(values)
            return int(cursor.rowcount), row
        except dialect.loaded_dbapi.Error as error:
            raise self._wrapped(connection, error, compiled.sql, args) from error

    def execute(
        self, connection: sa.Connection, params: Mapping[str, Any], *, events: bool = False
    ) -> int:
        """Run it with ``params`` (bind names to values); the driver's row count."""
        return self._run(connection, params, events, fetch=False)[0]

    def first(
        self, connection: sa.Connection, params: Mapping[str, Any], *, events: bool = False
    ) -> tuple[Any, ...] | None:
        """Run it; its first row (processed), or None."""
        return self._run(connection, params, events, fetch=True)[1]
