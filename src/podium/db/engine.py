"""Engines by URL, sessions in one transaction, retries, and the per-process DB block.

``Database`` is the one place podium turns a URL into an SQLAlchemy engine.
The engine is built on first use, never in ``__init__``: a worker service may
hold a ``Database`` it must never open, and :func:`block_db_access` has to be
able to stop it.

:func:`block_db_access` guards a worker process against accidents; it is not a
security boundary (that is that workers hold no database credentials). It stops
what goes through podium or SQLAlchemy:

* podium's factory (:meth:`Database.engine`, :meth:`Database.session`, ...)
  refuses before any engine exists, naming the caller's line;
* class-level SQLAlchemy events refuse for every engine, made by podium or
  not, before the block or after: ``do_connect`` (a new DBAPI connection), the
  pool's ``checkout`` (a pooled one: ``Engine.connect``, a Session,
  ``raw_connection()``) and ``before_cursor_execute`` (a statement on a
  connection checked out before the block). Patching
  ``sqlalchemy.create_engine`` would miss modules that imported it earlier and
  engines that already exist;
* the idle pooled connections of podium's engines are closed.

A DBAPI driver called directly (``psycopg.connect``, ``pymysql.connect``,
``sqlite3.connect``) and a DBAPI connection taken before the block are not
stopped: wrapping the drivers would miss ``from psycopg import connect`` done
earlier, and sqlite3 serves other libraries' local files.
"""

from __future__ import annotations

import contextvars
import logging
import os
import random
import select
import sqlite3
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import Pool

from podium._urls import mask_url
from podium.exceptions import (
    DBConnectionError,
    DBDeadlock,
    DBError,
    DBNotAllowed,
    DuplicateEntry,
    InvalidDatabaseURL,
)

__all__ = [
    "Database",
    "DriverStatement",
    "allow_db_access",
    "block_db_access",
    "check_url",
    "default_url",
]

LOG = logging.getLogger(__name__)

DATABASE_URL_ENV = "PODIUM_DATABASE_URL"
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: How many times, and for how many seconds after the first try began,
#: Database.run starts again a transaction the database rolled back in favour
#: of a concurrent one.
DEADLOCK_RETRIES = 20
DEADLOCK_RETRY_SECONDS = 30.0

#: How many times :meth:`Database.run` tries a unit of work that lost its
#: connection before anything of it could commit, and the longest pause
#: between two tries (the pauses double from 0.1 s).
RETRY_ATTEMPTS = 5
RETRY_MAX_DELAY = 2.0
_RETRY_FIRST_DELAY = 0.1

T = TypeVar("T")

_PACKAGE_DIRS = (
    str(Path(__file__).resolve().parent),
    str(Path(sa.__file__).resolve().parent),
)


def default_url() -> str:
    """``$PODIUM_DATABASE_URL``, else a SQLite file in the current directory."""
    return os.environ.get(DATABASE_URL_ENV) or f"sqlite:///{Path.cwd() / 'podium.sqlite'}"


# -- block_db_access -----------------------------------------------------------


@dataclass(frozen=True)
class _Block:
    service: str
    site: str


_block: _Block | None = None
_block_lock = threading.Lock()


def _call_site() -> str:
    """``file:line (function)`` of the first frame outside podium.db and SQLAlchemy."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        resolved = str(Path(filename).resolve()) if not filename.startswith("<") else filename
        if not resolved.startswith(_PACKAGE_DIRS) and not resolved.endswith("contextlib.py"):
            return f"{filename}:{frame.f_lineno} (in {frame.f_code.co_name})"
        frame = frame.f_back  # type: ignore[assignment]
    return "<unknown>"


def _refuse(what: str) -> None:
    block = _block
    if block is None:
        return
    raise DBNotAllowed(
        f"Database access is not allowed in service {block.service!r}: {what} at "
        f"{_call_site()}; block_db_access() was called at {block.site}. Worker services "
        "reach the database only through the conductor."
    )


def _on_do_connect(*_args: Any) -> None:
    _refuse("tried to open a database connection")


def _on_checkout(*_args: Any) -> None:
    _refuse("tried to use a database connection")


def _on_statement(*_args: Any) -> None:
    _refuse("tried to run a statement on a database connection")


# (target, event, listener): the class-level events the block adds and removes.
_BLOCK_LISTENERS: tuple[tuple[Any, str, Callable[..., None]], ...] = (
    (Engine, "do_connect", _on_do_connect),
    (Pool, "checkout", _on_checkout),
    (Engine, "before_cursor_execute", _on_statement),
)


def block_db_access(service_name: str) -> None:
    """Forbid database access through podium and SQLAlchemy in this process.

    Worker services call it at start-up; afterwards any attempt raises
    :class:`~podium.exceptions.DBNotAllowed` naming ``service_name`` and the
    line that tried. A guard against accidents, not a security boundary: a
    DBAPI driver called directly is not stopped (see the module docstring).
    """
    global _block
    with _block_lock:
        if _block is None:
            for target, name, listener in _BLOCK_LISTENERS:
                event.listen(target, name, listener)
        _block = _Block(service_name, _call_site())
    # No idle connection of podium's stays open in a process that may not use it.
    for database in list(_databases):
        database.dispose()


def allow_db_access() -> None:
    """Undo :func:`block_db_access` (for tests)."""
    global _block
    with _block_lock:
        if _block is not None:
            for target, name, listener in _BLOCK_LISTENERS:
                event.remove(target, name, listener)
        _block = None


# -- engines -------------------------------------------------------------------


def _mask_password(url: URL) -> str:
    """``url`` as text with its password masked by podium's one masking function."""
    # Rendered with the password (percent-encoded, so the text reads back one
    # way only) and masked from there, rather than by SQLAlchemy's own rule.
    return mask_url(url.render_as_string(hide_password=False))


def _parse_url(url: str) -> URL:
    # No message here quotes ``url``: what could not be read may be its password.
    try:
        parsed = make_url(url)
    except exc.ArgumentError:
        raise InvalidDatabaseURL(
            "Invalid database URL: it does not read as "
            "dialect+driver://user:password@host:port/database"
        ) from None
    except ValueError:  # make_url's only one: int() of the port
        raise InvalidDatabaseURL("Invalid database URL: its port is not a number") from None
    backend = parsed.get_backend_name()
    rest = url.partition("://")[2]
    # SQLAlchemy ends the password at its first '@', so an unencoded '@' in a
    # password moves the rest of it into the host, database or options (where
    # messages show it); a '/' in a user name hides the credentials the same
    # way. SQLite URLs carry no credentials, and their paths may hold an '@'.
    if backend != "sqlite" and "@" in rest:
        after_password = rest.partition(":")[2] if parsed.password is not None else ""
        if parsed.username is None or after_password.count("@") > 1:
            raise InvalidDatabaseURL(
                "Invalid database URL: an '@' besides the one that ends the user name and "
                "password; write an '@' in a password, database name or option as %40 "
                "(and a '/' in a user name as %2F)"
            )
    if backend not in ("sqlite", "postgresql", "mysql", "mariadb"):
        hint = _DRIVER_HINTS.get(backend)
        raise InvalidDatabaseURL(
            f"Unsupported database {backend!r} in {_mask_password(parsed)!r}; "
            + (
                f"did you mean {hint}://?"
                if hint
                else "use sqlite:///PATH, postgresql+psycopg://... or mysql+pymysql://..."
            )
        )
    if backend in ("mysql", "mariadb") and "charset" not in parsed.query:
        # MySQL's "utf8" is 3 bytes per character; anything outside the BMP
        # (emoji in a display name) would be refused or mangled.
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed


#: The URL scheme to use for a dialect written without podium's driver (or misspelt).
_DRIVER_HINTS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}


def _driver_error(parsed: URL, error: Exception) -> InvalidDatabaseURL:
    """A driver that is not installed (or not known), and which one to use instead."""
    hint = _DRIVER_HINTS.get(parsed.drivername) if "+" not in parsed.drivername else None
    if isinstance(error, ImportError):
        reason = f"its driver is not installed ({error})"
    else:
        reason = f"no such driver ({_first_line(error)})"
    advice = f"; use {hint}://..." if hint else ""
    return InvalidDatabaseURL(f"Invalid database URL {_mask_password(parsed)!r}: {reason}{advice}")


def check_url(url: str) -> URL:
    """``url`` parsed, its driver importable; InvalidDatabaseURL says why not. Opens nothing."""
    parsed = _parse_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise InvalidDatabaseURL(_IN_MEMORY_SQLITE)
    try:
        parsed.get_dialect().import_dbapi()
    except (exc.NoSuchModuleError, ImportError) as error:
        raise _driver_error(parsed, error) from None
    return parsed


_IN_MEMORY_SQLITE = (
    "An in-memory SQLite database is private to one connection; give a file: "
    "sqlite:///path/to/podium.sqlite"
)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # WAL lets readers proceed while one writer commits: threads of one
        # process (the embedded deployment) share the file without "locked".
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    """``PRAGMA journal_mode=WAL``, waiting out a writer that holds the file.

    The mode is stored in the file, but switching a new file needs a lock
    that a writer on another connection (a first ``podium db sync``) may
    hold, and SQLite then answers "database is locked" at once, without its
    busy handler. Wait for that writer as the busy timeout would.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    pause = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


#: A pooled connection idle longer than this is checked (one round trip)
#: before it is handed out; a busier one is trusted.
IDLE_PING_SECONDS = 10.0


def _stamp_checkin(_dbapi_connection: Any, record: Any) -> None:
    record.info["podium_checked_in"] = time.monotonic()


_POLL_EVENTS = select.POLLIN | select.POLLPRI | getattr(select, "POLLRDHUP", 0)


def _socket_fd(dbapi_connection: Any) -> int | None:
    """The connection's socket (-1: already closed), or None if it has none (SQLite)."""
    pgconn = getattr(dbapi_connection, "pgconn", None)  # psycopg 3
    if pgconn is not None:
        try:
            return int(pgconn.socket)
        except Exception:  # psycopg refuses to give the socket of a broken connection
            return -1
    if hasattr(dbapi_connection, "_sock"):  # PyMySQL
        sock = dbapi_connection._sock
        return -1 if sock is None else int(sock.fileno())
    return None


def _server_hung_up(dbapi_connection: Any) -> bool:
    """Whether the server has spoken, unasked, on this idle connection.

    Between two statements the server owes the client nothing, so anything to
    read means it is closing the connection: PostgreSQL sends "terminating
    connection" before its backend exits, MariaDB's KILL ends the stream. One
    ``poll()`` that does not wait: no round trip. (A notice sent to an idle
    connection would be a false alarm; it costs one reconnect.)
    """
    fd = _socket_fd(dbapi_connection)
    if fd is None:
        return False
    if fd < 0:
        return True
    poller = select.poll()
    poller.register(fd, _POLL_EVENTS)
    return bool(poller.poll(0))


def _check_pooled(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """Replace a pooled connection the server closed, before it is handed out.

    SQLAlchemy's ``pool_pre_ping`` pays a round trip on every checkout: under
    load that was a quarter of a conductor's time. Instead, a connection the
    server closed while it sat in the pool (an admin's ``pg_terminate_backend``,
    a restart, a failover) is recognised for free by :func:`_server_hung_up`,
    and only one idle for a while is pinged, for the silent deaths the socket
    cannot show (a peer host that vanished). A fresh connection (no check-in
    stamp) was just opened and is trusted.
    """
    checked_in = record.info.get("podium_checked_in")
    if checked_in is None:
        return
    if _server_hung_up(dbapi_connection):
        # The pool discards this connection and opens a new one in its place.
        raise exc.DisconnectionError("the server closed this pooled connection")
    if time.monotonic() - checked_in < IDLE_PING_SECONDS:
        return
    try:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            cursor.close()
        dbapi_connection.rollback()
    except Exception as error:
        # The pool discards this connection and retries with a new one.
        raise exc.DisconnectionError(f"idle pooled connection is dead: {error}") from error


def create_engine(url: str | URL, pool_size: int | None = None) -> Engine:
    """podium's one engine factory (honours :func:`block_db_access`).

    ``pool_size``: connections kept open; give at least the number of threads
    that use the database at once (a conductor's workers), or every burst opens
    and closes overflow connections, which costs a server process each on
    PostgreSQL.
    """
    _refuse("tried to create a database engine")
    parsed = url if isinstance(url, URL) else _parse_url(url)
    backend = parsed.get_backend_name()
    kwargs: dict[str, Any] = {}
    if pool_size is not None and backend != "sqlite":
        kwargs["pool_size"] = pool_size
        kwargs["max_overflow"] = pool_size
    if backend == "sqlite":
        database = parsed.database
        if not database or database == ":memory:":
            raise InvalidDatabaseURL(_IN_MEMORY_SQLITE)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs["pool_recycle"] = 3600
        # An unreachable host must fail in seconds, not the OS's minutes.
        kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (exc.NoSuchModuleError, ImportError) as error:
        raise _driver_error(parsed, error) from None
    except exc.ArgumentError as error:
        raise InvalidDatabaseURL(
            f"Invalid database URL {_mask_password(parsed)!r}: {_first_line(error)}"
        ) from None
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_on_connect)
    else:
        event.listen(engine, "checkin", _stamp_checkin)
        event.listen(engine, "checkout", _check_pooled)
    event.listen(engine, "before_cursor_execute", _before_statement)
    event.listen(engine, "commit", _before_commit)
    return engine


def translate_error(error: exc.StatementError, url: URL | None = None) -> DBError:
    """Map an SQLAlchemy/DBAPI error onto podium's tree (once, at this boundary)."""
    if not isinstance(error, exc.DBAPIError):
        # Raised before the statement reached the server: a value the column
        # type could not bind.
        return DBError(f"Invalid value for the database: {_first_line(error.orig)}")
    if isinstance(error, exc.IntegrityError):
        duplicate = _duplicate_entry_detail(error)
        if duplicate is not None:
            return DuplicateEntry(duplicate)
        return DBError(f"Integrity error: {_first_line(error.orig)}")
    if _lost_to_a_concurrent_transaction(error):
        return DBDeadlock(f"{type(error.orig).__name__}: {_first_line(error.orig)}")
    if error.connection_invalidated or _is_connect_failure(error):
        where = f" at {url.render_as_string()}" if url is not None else ""
        return DBConnectionError(f"Cannot reach the database{where}: {_first_line(error.orig)}")
    return DBError(f"{type(error.orig).__name__}: {_first_line(error.orig)}")


def _lost_to_a_concurrent_transaction(error: exc.DBAPIError) -> bool:
    """The database rolled the transaction back so that a concurrent one could go on."""
    orig = error.orig
    if isinstance(orig, sqlite3.OperationalError):
        # In WAL mode a transaction that has read cannot start writing while
        # another connection writes (SQLITE_BUSY, at once: waiting would leave
        # it a stale snapshot) nor once another has committed since its read
        # (SQLITE_BUSY_SNAPSHOT): either way it must start again. The same text
        # after the busy timeout ran out is caught by the retries' time budget.
        return "database is locked" in str(orig)
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate in ("40001", "40P01"):  # PostgreSQL: serialization failure, deadlock
        return True
    args: tuple[Any, ...] = getattr(orig, "args", ())
    # MySQL/MariaDB: 1213 deadlock, 1205 lock wait timeout.
    return bool(args) and isinstance(args[0], int) and args[0] in (1205, 1213)


def _first_line(value: object) -> str:
    text = str(value).strip()
    return text.splitlines()[0] if text else type(value).__name__


def _is_connect_failure(error: exc.DBAPIError) -> bool:
    orig = error.orig
    # pymysql: 2003 can't connect, 2006 gone away, 2013 lost connection, 1045/1049
    # access denied / unknown database.
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and args[0] in (1044, 1045, 1049, 2003, 2006, 2013):
        return True
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate[:2] in ("08", "28", "3D"):
        return True
    message = str(orig).lower()
    if any(text in message for text in _UNREACHABLE):
        return True
    return "connection" in message and ("refused" in message or "failed" in message)


#: What the drivers say of a host name that does not resolve, and SQLite of a
#: file it cannot open or create (a missing directory, no permission).
_UNREACHABLE = (
    "failed to resolve host",
    "could not translate host name",
    "name or service not known",
    "temporary failure in name resolution",
    "unable to open database file",
)


def _refused_for_good(error: exc.DBAPIError) -> bool:
    """A refusal that trying again will not change: credentials, database name."""
    orig = error.orig
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and args[0] in (1044, 1045, 1049):
        return True
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate[:2] in ("28", "3D"):
        return True
    # psycopg gives no SQLSTATE for a failed connection attempt, only the text.
    message = str(orig).lower()
    return any(
        text in message
        for text in (
            "authentication failed",
            "does not exist",
            "no pg_hba.conf entry",
            "unable to open database file",
        )
    )


def _duplicate_entry_detail(error: exc.IntegrityError) -> str | None:
    orig = error.orig
    message = str(orig)
    sqlstate = getattr(orig, "sqlstate", None)
    args = getattr(orig, "args", ())
    if "UNIQUE constraint failed:" in message:  # SQLite names table.column pairs
        columns = message.split("UNIQUE constraint failed:", 1)[1].strip()
        return f"Duplicate entry: {columns} already exists"
    if sqlstate == "23505":  # PostgreSQL
        diag = getattr(orig, "diag", None)
        constraint = getattr(diag, "constraint_name", None) or "?"
        detail = getattr(diag, "message_detail", None) or ""
        table = getattr(diag, "table_name", None) or "?"
        return f"Duplicate entry in {table} (constraint {constraint}): {detail}".rstrip(": ")
    if args and args[0] == 1062:  # MySQL/MariaDB
        return f"Duplicate entry: {args[1] if len(args) > 1 else message}"
    return None


# -- lost connections ------------------------------------------------------------
#
# Database.run() runs a unit of work (one transaction) again when it lost its
# connection before anything of it could have committed, and never otherwise.
#
# * Nothing of a transaction commits before COMMIT reaches the server: a
#   server whose client vanishes rolls the transaction back. So a lost
#   connection on connect, on the checkout check, on BEGIN, or on any
#   statement before COMMIT leaves nothing behind, and the whole unit runs
#   again (sending only the failed statement again would not do: the
#   transaction it belonged to is gone).
# * Once COMMIT is handed to the driver the outcome is unknown: the server may
#   have committed and died before answering. Such a failure is never retried;
#   the caller gets DBConnectionError saying the outcome is unknown.
# * In autocommit (``single_statement=True``) every statement commits by
#   itself, so the point of no return is the first statement handed to the
#   driver.
#
# Just before the point of no return, _server_hung_up() looks at the socket
# (free): a connection the server closed meanwhile is given up there, with
# nothing sent, and the unit runs again. Only the time the COMMIT (or the
# autocommit statement) spends in flight is left unknowable.


def _lost_before_sending(message: str) -> DBConnectionError:
    """The server had closed the connection before podium sent what would commit.

    A plain DBConnectionError, marked: a class of its own would reach a remote
    caller as a RemoteError, since only podium.exceptions crosses the wire.
    """
    error = DBConnectionError(message)
    error.lost_before_sending = True  # type: ignore[attr-defined]
    return error


@dataclass
class _Unit:
    """One attempt of :meth:`Database.run`: what it has handed to the driver."""

    sent: str | None = None  # what passed the point of no return, once it has


_unit: contextvars.ContextVar[_Unit | None] = contextvars.ContextVar("podium_db_unit", default=None)


def _is_autocommit(connection: sa.Connection) -> bool:
    return connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT"


def _last_look(connection: sa.Connection, what: str) -> None:
    """Give up a connection the server closed before ``what`` is sent; else note it is sent."""
    if _server_hung_up(connection.connection.dbapi_connection):
        connection.invalidate()
        url = connection.engine.url.render_as_string(hide_password=True)
        raise _lost_before_sending(
            f"Cannot reach the database at {url}: the server closed the connection before "
            f"{what} was sent"
        )
    unit = _unit.get()
    if unit is not None and unit.sent is None:
        unit.sent = what


def _before_statement(connection: sa.Connection, *_args: Any) -> None:
    if _is_autocommit(connection):
        _last_look(connection, "an autocommit statement")


def _before_commit(connection: sa.Connection) -> None:
    # In autocommit the statements have committed already; this COMMIT is a no-op.
    if not _is_autocommit(connection):
        _last_look(connection, "COMMIT")


def _transient(error: DBConnectionError) -> bool:
    """Whether a new connection may succeed: the old one was lost or refused, not
    refused for good (bad credentials, unknown database)."""
    if getattr(error, "lost_before_sending", False):
        return True
    cause = error.__cause__
    if not isinstance(cause, exc.DBAPIError):
        return False
    return cause.connection_invalidated or not _refused_for_good(cause)


def _retry_delay(attempt: int, max_delay: float) -> float:
    """Doubling pauses, capped; the jitter keeps the threads and processes that lost
    the server together from all coming back at once."""
    ceiling = min(max_delay, _RETRY_FIRST_DELAY * 2.0 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


@dataclass
class _Compiled:
    """A statement as one dialect's driver takes it."""

    sql: str
    names: tuple[str, ...]  # the statement's bind names
    order: tuple[str, ...] | None  # bind names in order, for a positional paramstyle
    fixed: dict[str, Any]  # binds the statement gives a value of its own (deleted = 0)
    processors: dict[str, Callable[[Any], Any]]
    results: list[Callable[[Any], Any] | None] | None = None  # per column, from the first rows


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
        dbapi_connection = connection.connection.dbapi_connection
        assert dbapi_connection is not None
        cursor = dbapi_connection.cursor()
        try:
            if events:
                for listener in connection.dispatch.before_cursor_execute:
                    listener(connection, cursor, compiled.sql, args, None, False)
            cursor.execute(compiled.sql, args)
            row = cursor.fetchone() if fetch else None
            if row is not None:
                results = compiled.results
                if results is None:
                    results = compiled.results = [
                        column.type.dialect_impl(dialect).result_processor(dialect, described[1])
                        for column, described in zip(self._columns, cursor.description, strict=True)
                    ]
                row = tuple(
                    value if process is None else process(value)
                    for process, value in zip(results, row, strict=True)
                )
            return int(cursor.rowcount), row
        except dialect.loaded_dbapi.Error as error:
            raise self._wrapped(connection, error, compiled.sql, args) from error
        finally:
            cursor.close()

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


_databases: weakref.WeakSet[Database] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A forked child (e.g. a conductor that forks workers) must not share the
    # parent's pooled sockets: two processes on one connection corrupt the
    # protocol stream. Drop the pools without closing the parent's sockets.
    for database in list(_databases):
        engine = database._engine
        if engine is not None:
            engine.dispose(close=False)
    # The lock may have been held by another thread at fork time.
    for database in list(_databases):
        database._lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


class Database:
    """A database reached by URL; the engine is created lazily, on first use.

    Safe to share between threads; after ``os.fork()`` the child starts with
    empty connection pools. ``retry_attempts`` and ``retry_max_delay`` bound
    how :meth:`run` tries again a unit of work that lost its connection.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        pool_size: int | None = None,
        retry_attempts: int = RETRY_ATTEMPTS,
        retry_max_delay: float = RETRY_MAX_DELAY,
    ) -> None:
        if retry_attempts < 1:
            raise ValueError(f"retry_attempts must be at least 1, not {retry_attempts}")
        if retry_max_delay < 0:
            raise ValueError(f"retry_max_delay must not be negative, not {retry_max_delay}")
        self._url_text = url or default_url()
        self._pool_size = pool_size
        self._retry_attempts = retry_attempts
        self._retry_max_delay = retry_max_delay
        self._engine: Engine | None = None
        self._sessionmaker: sessionmaker[Session] | None = None
        self._autocommit_sessionmaker: sessionmaker[Session] | None = None
        self._lock = threading.Lock()
        _databases.add(self)

    def __repr__(self) -> str:
        return f"Database({self.safe_url!r})"

    @property
    def url(self) -> URL:
        """The parsed URL (raises InvalidDatabaseURL if it is not usable)."""
        return _parse_url(self._url_text)

    @property
    def safe_url(self) -> str:
        """The URL with any password masked, for messages and logs."""
        try:
            return _mask_password(self.url)
        except InvalidDatabaseURL:
            return "<invalid URL>"

    @property
    def backend(self) -> str:
        """``sqlite``, ``postgresql`` or ``mysql`` (MariaDB counts as mysql)."""
        name = self.url.get_backend_name()
        return "mysql" if name == "mariadb" else name

    @property
    def engine(self) -> Engine:
        _refuse("tried to open the database engine")
        engine = self._engine
        if engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = create_engine(self.url, pool_size=self._pool_size)
                    self._sessionmaker = sessionmaker(
                        bind=self._engine, expire_on_commit=False, autoflush=True
                    )
                    self._autocommit_sessionmaker = sessionmaker(
                        bind=self._engine.execution_options(isolation_level="AUTOCOMMIT"),
                        expire_on_commit=False,
                        autoflush=True,
                    )
                engine = self._engine
        return engine

    @contextmanager
    def session(self, *, single_statement: bool = False) -> Iterator[Session]:
        """One session in one transaction: commit on success, rollback on error.

        Rows returned by queries stay readable after the block (attributes are
        not expired on commit). SQLAlchemy/DBAPI errors leave as podium
        :class:`~podium.exceptions.DBError` subclasses.

        ``single_statement=True`` is for a block that writes with exactly one
        statement (an ``UPDATE ... RETURNING``): the statement is atomic on its
        own, so it runs in autocommit and saves the BEGIN and COMMIT round trips,
        a third of a conductor's ``save()`` on PostgreSQL.
        """
        _refuse("tried to open a database session")
        self.engine  # noqa: B018 - builds the engine and the session factories
        factory = self._autocommit_sessionmaker if single_statement else self._sessionmaker
        assert factory is not None
        try:
            with factory() as session, session.begin():
                yield session
        except exc.StatementError as error:
            raise translate_error(error, self.url) from error
        except Exception as error:
            wrapped = self._wrap_driver_error(error)
            if wrapped is None:
                raise
            raise translate_error(wrapped, self.url) from wrapped

    def _wrap_driver_error(self, error: Exception) -> exc.StatementError | None:
        """A driver error that SQLAlchemy let through unwrapped, wrapped as it would.

        Switching a new MariaDB connection to autocommit is a round trip that
        SQLAlchemy makes outside its error handling, so a connection lost there
        arrives as the driver's own exception.
        """
        dialect = self.engine.dialect
        if not isinstance(error, dialect.loaded_dbapi.Error):
            return None
        return exc.DBAPIError.instance(
            None,
            None,
            error,
            dialect.loaded_dbapi.Error,
            connection_invalidated=dialect.is_disconnect(error, None, None),
            dialect=dialect,
        )

    def run(self, work: Callable[[Session], T], *, single_statement: bool = False) -> T:
        """``work(session)`` in one transaction, as :meth:`session`; returns its result.

        If the connection is lost before anything of the transaction could
        have committed (on connect, BEGIN, or any statement before COMMIT), the
        whole transaction runs again on a new connection, up to
        ``retry_attempts`` times with doubling pauses, each retry logged once
        at WARNING. A connection lost once COMMIT (in autocommit: the
        statement) was sent is not retried: the outcome is unknown, and
        :class:`~podium.exceptions.DBConnectionError` says so.

        A transaction the database rolled back in favour of a concurrent one
        (:class:`~podium.exceptions.DBDeadlock`) runs again too, after a short
        random pause, up to ``DEADLOCK_RETRIES`` times within
        ``DEADLOCK_RETRY_SECONDS`` of the first try: nothing of it committed.

        ``work`` may therefore run more than once: it must act only through
        the session, and nothing in it may commit by itself (MariaDB's DDL does).
        """
        attempt = 1
        conflicts = 0
        began = time.monotonic()
        while True:
            unit = _Unit()
            token = _unit.set(unit)
            try:
                with self.session(single_statement=single_statement) as session:
                    return work(session)
            except DBDeadlock:
                conflicts += 1
                if (
                    conflicts > DEADLOCK_RETRIES
                    or time.monotonic() - began > DEADLOCK_RETRY_SECONDS
                ):
                    raise
                # Random, so that the transactions that collided do not collide again.
                delay = random.uniform(0, min(0.005 * 2**conflicts, 0.5))
                LOG.debug("transaction rolled back for a concurrent one; again (%d)", conflicts)
            except DBConnectionError as error:
                if unit.sent is not None:
                    raise DBConnectionError(
                        f"{error} (lost after {unit.sent} was sent: whether it committed is "
                        "unknown, so it was not tried again)"
                    ) from error
                if not _transient(error):
                    raise
                if attempt >= self._retry_attempts:
                    if attempt == 1:
                        raise
                    raise DBConnectionError(f"{error} (tried {attempt} times)") from error
                delay = _retry_delay(attempt, self._retry_max_delay)
                LOG.warning(
                    "Database connection failed before the transaction could commit (%s); "
                    "trying again in %.2f s (attempt %d of %d)",
                    error,
                    delay,
                    attempt + 1,
                    self._retry_attempts,
                )
                attempt += 1
            finally:
                _unit.reset(token)
            time.sleep(delay)

    @contextmanager
    def connection(self) -> Iterator[sa.Connection]:
        """A Core connection in one transaction (for DDL and migrations)."""
        _refuse("tried to open a database connection")
        try:
            with self.engine.begin() as connection:
                yield connection
        except exc.StatementError as error:
            raise translate_error(error, self.url) from error

    def dispose(self) -> None:
        """Close pooled connections; the next use builds a new engine."""
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
            self._engine = None
            self._sessionmaker = None
            self._autocommit_sessionmaker = None
