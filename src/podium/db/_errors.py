"""SQLAlchemy's and the drivers' errors read once, at the database boundary.

:func:`translate_error` maps them onto podium's tree; the predicates say what
a failure was (a lost race, an unreachable server, a refusal for good) for the
retries of :meth:`~podium.db.engine.Database.run`.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import exc
from sqlalchemy.engine import URL

from podium._urls import mask_url
from podium.db._tls import hide_secrets
from podium.exceptions import DBConnectionError, DBDeadlock, DBError, DuplicateEntry


def translate_error(error: exc.StatementError, url: URL | None = None) -> DBError:
    """Map an SQLAlchemy/DBAPI error onto podium's tree (once, at this boundary)."""
    if not isinstance(error, exc.DBAPIError):
        # Raised before the statement reached the server: a value the column
        # type could not bind.
        return DBError(f"Invalid value for the database: {first_line(error.orig)}")
    if isinstance(error, exc.IntegrityError):
        duplicate = duplicate_entry_detail(error)
        if duplicate is not None:
            return DuplicateEntry(duplicate)
        return DBError(f"Integrity error: {first_line(error.orig)}")
    if lost_to_a_concurrent_transaction(error):
        return DBDeadlock(f"{type(error.orig).__name__}: {first_line(error.orig)}")
    if error.connection_invalidated or is_connect_failure(error):
        where = ""
        if url is not None:
            # Rendered with the password for mask_url to hide it with the secret options.
            where = f" at {mask_url(url.render_as_string(hide_password=False))}"
        reason = hide_secrets(first_line(error.orig), url)
        if tls_refused(error):
            return DBConnectionError(
                f"Cannot reach the database{where} over TLS (trying again will not help): {reason}"
            )
        return DBConnectionError(f"Cannot reach the database{where}: {reason}")
    return DBError(f"{type(error.orig).__name__}: {hide_secrets(first_line(error.orig), url)}")


def lost_to_a_concurrent_transaction(error: exc.DBAPIError) -> bool:
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


def first_line(value: object) -> str:
    text = str(value).strip()
    return text.splitlines()[0] if text else type(value).__name__


def is_connect_failure(error: exc.DBAPIError) -> bool:
    orig = error.orig
    # pymysql: 2003 can't connect, 2006 gone away, 2013 lost connection, 1045/1049
    # access denied / unknown database.
    args = getattr(orig, "args", ())
    # 2026: TLS asked for, and the server has none.
    if args and isinstance(args[0], int) and args[0] in (1044, 1045, 1049, 2003, 2006, 2013, 2026):
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


#: What the drivers (libpq, Python's ssl under PyMySQL) say when TLS cannot
#: work as configured: a server certificate of another authority or for
#: another host name, a server without TLS, a client certificate the server
#: does not trust, the client's own files. Not "SSL SYSCALL error" nor "SSL
#: connection has been closed unexpectedly": those are connections lost, which
#: a new one may cure.
_TLS_REFUSALS = (
    "certificate verify failed",
    "does not match host name",
    "server does not support ssl",
    "ssl is required but the server",
    "alert unknown ca",
    "alert bad certificate",
    "alert certificate required",
    "alert certificate unknown",
    "requires a valid client certificate",
    # libpq's reading of its files: a key others may read, a file that holds no
    # certificate, no root certificate where verify-full looks by default.
    "private key file",
    "certificate file",
)


def tls_refused(error: exc.DBAPIError) -> bool:
    """TLS with the server failed in a way trying again cannot change."""
    message = str(error.orig).lower()
    return any(text in message for text in _TLS_REFUSALS)


def refused_for_good(error: exc.DBAPIError) -> bool:
    """A refusal that trying again will not change: credentials, database name, TLS."""
    if tls_refused(error):
        return True
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
            "pg_hba.conf rejects connection",
            "unable to open database file",
        )
    )


def duplicate_entry_detail(error: exc.IntegrityError) -> str | None:
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
