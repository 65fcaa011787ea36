"""What podium knows of each driver's connections.

SQLite's are set up with foreign keys on, WAL and a busy timeout; the socket
under a PostgreSQL (psycopg) or MariaDB (PyMySQL) one tells, without a round
trip, whether the server has closed it.
"""

from __future__ import annotations

import select
import sqlite3
import time
from typing import Any

SQLITE_BUSY_TIMEOUT_MS = 30_000


def sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
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


POLL_EVENTS = select.POLLIN | select.POLLPRI | getattr(select, "POLLRDHUP", 0)


def socket_fd(dbapi_connection: Any) -> int | None:
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
