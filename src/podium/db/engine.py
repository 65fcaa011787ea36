"""Engines by URL, sessions in one transaction, retries, and the per-process DB block.

``Database`` is the one place podium turns a URL into an SQLAlchemy engine.
The engine is built on first use, never in ``__init__``: a worker service may
hold a ``Database`` it must never open, and :func:`block_db_access` has to be
able to stop it (what the block stops: :mod:`podium.db._block`).
"""

from __future__ import annotations

import contextvars
import logging
import os
import random
import select
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, Engine
from sqlalchemy.orm import Session, sessionmaker

from podium.db._block import DATABASES, allow_db_access, block_db_access, refuse
from podium.db._drivers import POLL_EVENTS, socket_fd, sqlite_on_connect
from podium.db._drivers import SQLITE_BUSY_TIMEOUT_MS as SQLITE_BUSY_TIMEOUT_MS
from podium.db._errors import first_line, refused_for_good, tls_refused
from podium.db._errors import translate_error as translate_error
from podium.db._statement import DriverStatement
from podium.db._tls import tls_connect_args
from podium.db._url import DATABASE_URL_ENV as DATABASE_URL_ENV
from podium.db._url import (
    IN_MEMORY_SQLITE,
    check_url,
    default_url,
    driver_error,
    mask_password,
    parse_url,
)
from podium.exceptions import DBConnectionError, DBDeadlock, InvalidDatabaseURL

__all__ = [
    "Database",
    "DriverStatement",
    "allow_db_access",
    "block_db_access",
    "check_url",
    "default_url",
]

# Shown and documented under this module, their public home.
for _public in (DriverStatement, allow_db_access, block_db_access, check_url, default_url):
    _public.__module__ = __name__

LOG = logging.getLogger(__name__)

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


#: A pooled connection idle longer than this is checked (one round trip)
#: before it is handed out; a busier one is trusted.
IDLE_PING_SECONDS = 10.0


def _stamp_checkin(_dbapi_connection: Any, record: Any) -> None:
    record.info["podium_checked_in"] = time.monotonic()


def _server_hung_up(dbapi_connection: Any) -> bool:
    """Whether the server has spoken, unasked, on this idle connection.

    Between two statements the server owes the client nothing, so anything to
    read means it is closing the connection: PostgreSQL sends "terminating
    connection" before its backend exits, MariaDB's KILL ends the stream. One
    ``poll()`` that does not wait: no round trip. (A notice sent to an idle
    connection would be a false alarm; it costs one reconnect.)
    """
    fd = socket_fd(dbapi_connection)
    if fd is None:
        return False
    if fd < 0:
        return True
    poller = select.poll()
    poller.register(fd, POLL_EVENTS)
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
    refuse("tried to create a database engine")
    parsed = url if isinstance(url, URL) else parse_url(url)
    backend = parsed.get_backend_name()
    kwargs: dict[str, Any] = {}
    if pool_size is not None and backend != "sqlite":
        kwargs["pool_size"] = pool_size
        kwargs["max_overflow"] = pool_size
    if backend == "sqlite":
        database = parsed.database
        if not database or database == ":memory:":
            raise InvalidDatabaseURL(IN_MEMORY_SQLITE)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs["pool_recycle"] = 3600
        parsed, tls_args = tls_connect_args(parsed)
        # An unreachable host must fail in seconds, not the OS's minutes.
        kwargs["connect_args"] = {"connect_timeout": 10, **tls_args}
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (exc.NoSuchModuleError, ImportError) as error:
        raise driver_error(parsed, error) from None
    except exc.ArgumentError as error:
        raise InvalidDatabaseURL(
            f"Invalid database URL {mask_password(parsed)!r}: {first_line(error)}"
        ) from None
    if backend == "sqlite":
        event.listen(engine, "connect", sqlite_on_connect)
    else:
        event.listen(engine, "checkin", _stamp_checkin)
        event.listen(engine, "checkout", _check_pooled)
    event.listen(engine, "before_cursor_execute", _before_statement)
    event.listen(engine, "commit", _before_commit)
    return engine


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
        raise _lost_before_sending(
            f"Cannot reach the database at {mask_password(connection.engine.url)}: "
            f"the server closed the connection before {what} was sent"
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
    if tls_refused(cause):  # a TLS alert may arrive as a lost connection
        return False
    return cause.connection_invalidated or not refused_for_good(cause)


def _retry_delay(attempt: int, max_delay: float) -> float:
    """Doubling pauses, capped; the jitter keeps the threads and processes that lost
    the server together from all coming back at once."""
    ceiling = min(max_delay, _RETRY_FIRST_DELAY * 2.0 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def _after_fork_in_child() -> None:
    # A forked child (e.g. a conductor that forks workers) must not share the
    # parent's pooled sockets: two processes on one connection corrupt the
    # protocol stream. Drop the pools without closing the parent's sockets.
    for database in list(DATABASES):
        engine = database._engine
        if engine is not None:
            engine.dispose(close=False)
    # The lock may have been held by another thread at fork time.
    for database in list(DATABASES):
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
        DATABASES.add(self)

    def __repr__(self) -> str:
        return f"Database({self.safe_url!r})"

    @property
    def url(self) -> URL:
        """The parsed URL (raises InvalidDatabaseURL if it is not usable)."""
        return parse_url(self._url_text)

    @property
    def safe_url(self) -> str:
        """The URL with any password masked, for messages and logs."""
        try:
            return mask_password(self.url)
        except InvalidDatabaseURL:
            return "<invalid URL>"

    @property
    def backend(self) -> str:
        """``sqlite``, ``postgresql`` or ``mysql`` (MariaDB counts as mysql)."""
        name = self.url.get_backend_name()
        return "mysql" if name == "mariadb" else name

    @property
    def engine(self) -> Engine:
        refuse("tried to open the database engine")
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
        refuse("tried to open a database session")
        self.engine  # noqa: B018 - builds the engine and the session factories
        factory = self._autocommit_sessionmaker if single_statement else self._sessionmaker
        assert factory is not None
        try:
            with factory() as session, session.begin():
                yield session
        except exc.StatementError as error:
            raise translate_error(error, self.url) from error
        except Exception as error:
            wrapped = self._wrapdriver_error(error)
            if wrapped is None:
                raise
            raise translate_error(wrapped, self.url) from wrapped

    def _wrapdriver_error(self, error: Exception) -> exc.StatementError | None:
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
                delay = self._pause_before_retry(error, unit, attempt)
                attempt += 1
            finally:
                _unit.reset(token)
            time.sleep(delay)

    def _pause_before_retry(self, error: DBConnectionError, unit: _Unit, attempt: int) -> float:
        """How long to wait before ``attempt + 1`` of a unit that lost its connection;
        raises if it must not run again."""
        if unit.sent is not None:
            raise DBConnectionError(
                f"{error} (lost after {unit.sent} was sent: whether it committed is "
                "unknown, so it was not tried again)"
            ) from error
        if not _transient(error):
            raise error
        if attempt >= self._retry_attempts:
            if attempt == 1:
                raise error
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
        return delay

    @contextmanager
    def connection(self) -> Iterator[sa.Connection]:
        """A Core connection in one transaction (for DDL and migrations)."""
        refuse("tried to open a database connection")
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
