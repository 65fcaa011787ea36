"""Which database the object code in this process (or this call) works on.

Object methods such as ``Instance.save`` run on the conductor and need a
:class:`Database`; rather than a module global that tests must monkeypatch,
the conductor binds its database around each dispatched call with
:func:`use_database`, and a process that runs objects locally (``use_local``)
sets a process-wide default with :func:`set_default_database`.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

from podium.db.engine import Database

_bound: contextvars.ContextVar[Database | None] = contextvars.ContextVar(
    "podium_database", default=None
)
_default: Database | None = None


def set_default_database(database: Database | None) -> None:
    global _default
    _default = database


def get_database() -> Database:
    """The database bound to this call, else the process default, else one from the env."""
    global _default
    bound = _bound.get()
    if bound is not None:
        return bound
    if _default is None:
        _default = Database()
    return _default


@contextmanager
def use_database(database: Database) -> Iterator[Database]:
    token = _bound.set(database)
    try:
        yield database
    finally:
        _bound.reset(token)
