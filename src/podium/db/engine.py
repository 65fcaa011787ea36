"""Engines by URL, sessions in one transaction, and the per-process DB block.

``Database`` is the one place podium turns a URL into an SQLAlchemy engine.
The engine is built on first use, never in ``__init__``: a worker service may
hold a ``Database`` it must never open, and :func:`block_db_access` has to be
able to stop it.

Why the block is enforced twice:

* at podium's factory (:meth:`Database.engine`, :meth:`Database.session`), so
  podium code fails before any engine exists, with the caller's line;
* through class-level SQLAlchemy events on :class:`sqlalchemy.engine.Engine`
  (``do_connect`` before a DBAPI connection is opened, ``engine_connect`` when
  a pooled one is handed out). Patching ``sqlalchemy.create_engine`` would miss
  modules that imported the function before the block, and engines created
  earlier; the events reach every engine in the process, however made, and
  open no socket.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from podium._urls import mask_url
from podium.exceptions import (
    DBConnectionError,
    DBError,
    DBNotAllowed,
    DuplicateEntry,
    InvalidDatabaseURL,
)

__all__ = ["Database", "allow_db_access", "block_db_access", "default_url"]

DATABASE_URL_ENV = "PODIUM_DATABASE_URL"
SQLITE_BUSY_TIMEOUT_MS = 30_000

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


def _on_engine_connect(*_args: Any) -> None:
    _refuse("tried to use a database connection")


def block_db_access(service_name: str) -> None:
    """Forbid every database engine, session and connection in this process.

    Worker services call it at start-up; afterwards any attempt raises
    :class:`~podium.exceptions.DBNotAllowed` naming ``service_name`` and the
    line that tried.
    """
    global _block
    with _block_lock:
        if _block is None:
            event.listen(Engine, "do_connect", _on_do_connect)
            event.listen(Engine, "engine_connect", _on_engine_connect)
        _block = _Block(service_name, _call_site())


def allow_db_access() -> None:
    """Undo :func:`block_db_access` (for tests)."""
    global _block
    with _block_lock:
        if _block is not None:
            event.remove(Engine, "do_connect", _on_do_connect)
            event.remove(Engine, "engine_connect", _on_engine_connect)
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
        raise InvalidDatabaseURL(
            f"Unsupported database {backend!r} in {_mask_password(parsed)!r}; use "
            "sqlite:///PATH, postgresql+psycopg://... or mysql+pymysql://..."
        )
    if backend in ("mysql", "mariadb") and "charset" not in parsed.query:
        # MySQL's "utf8" is 3 bytes per character; anything outside the BMP
        # (emoji in a display name) would be refused or mangled.
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed


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


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """Pessimistic disconnect handling, but only for connections that sat idle.

    SQLAlchemy's ``pool_pre_ping`` pays a round trip on every checkout: under
    load that was a quarter of a conductor's time. A connection used seconds
    ago is alive unless the server restarted in between; that rare case fails
    one statement, which invalidates the whole pool (SQLAlchemy's disconnect
    handling), so the next statements reconnect.
    """
    checked_in = record.info.get("podium_checked_in")
    if checked_in is None or time.monotonic() - checked_in < IDLE_PING_SECONDS:
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
            raise InvalidDatabaseURL(
                "An in-memory SQLite database is private to one connection; give a file: "
                "sqlite:///path/to/podium.sqlite"
            )
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs["pool_recycle"] = 3600
        # An unreachable host must fail in seconds, not the OS's minutes.
        kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (exc.ArgumentError, exc.NoSuchModuleError, ImportError) as error:
        raise InvalidDatabaseURL(
            f"Invalid database URL {parsed.render_as_string()!r}: {error}"
        ) from None
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_on_connect)
    else:
        event.listen(engine, "checkin", _stamp_checkin)
        event.listen(engine, "checkout", _ping_if_idle)
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
    if error.connection_invalidated or _is_connect_failure(error):
        where = f" at {url.render_as_string()}" if url is not None else ""
        return DBConnectionError(f"Cannot reach the database{where}: {_first_line(error.orig)}")
    return DBError(f"{type(error.orig).__name__}: {_first_line(error.orig)}")


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
    return "connection" in message and ("refused" in message or "failed" in message)


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
    empty connection pools.
    """

    def __init__(self, url: str | None = None, *, pool_size: int | None = None) -> None:
        self._url_text = url or default_url()
        self._pool_size = pool_size
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
