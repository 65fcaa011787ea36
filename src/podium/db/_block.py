"""The per-process database block.

:func:`block_db_access` guards a worker process against accidents; it is not a
security boundary (that is that workers hold no database credentials). It stops
what goes through podium or SQLAlchemy:

* podium's factory (``Database.engine``, ``Database.session``, ...)
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

import sys
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool

from podium.exceptions import DBNotAllowed

if TYPE_CHECKING:
    from podium.db.engine import Database

#: podium's Database objects of this process: a block closes their idle
#: connections, a fork drops their pools in the child.
DATABASES: weakref.WeakSet[Database] = weakref.WeakSet()

_PACKAGE_DIRS = (
    str(Path(__file__).resolve().parent),
    str(Path(sa.__file__).resolve().parent),
)


@dataclass(frozen=True)
class _Block:
    service: str
    site: str


_block: _Block | None = None
_block_lock = threading.Lock()


def call_site() -> str:
    """``file:line (function)`` of the first frame outside podium.db and SQLAlchemy."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        resolved = str(Path(filename).resolve()) if not filename.startswith("<") else filename
        if not resolved.startswith(_PACKAGE_DIRS) and not resolved.endswith("contextlib.py"):
            return f"{filename}:{frame.f_lineno} (in {frame.f_code.co_name})"
        frame = frame.f_back  # type: ignore[assignment]
    return "<unknown>"


def refuse(what: str) -> None:
    block = _block
    if block is None:
        return
    raise DBNotAllowed(
        f"Database access is not allowed in service {block.service!r}: {what} at "
        f"{call_site()}; block_db_access() was called at {block.site}. Worker services "
        "reach the database only through the conductor."
    )


def _on_do_connect(*_args: Any) -> None:
    refuse("tried to open a database connection")


def _on_checkout(*_args: Any) -> None:
    refuse("tried to use a database connection")


def _on_statement(*_args: Any) -> None:
    refuse("tried to run a statement on a database connection")


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
        _block = _Block(service_name, call_site())
    # No idle connection of podium's stays open in a process that may not use it.
    for database in list(DATABASES):
        database.dispose()


def allow_db_access() -> None:
    """Undo :func:`block_db_access` (for tests)."""
    global _block
    with _block_lock:
        if _block is not None:
            for target, name, listener in _BLOCK_LISTENERS:
                event.remove(target, name, listener)
        _block = None
