"""The declarative base every application's tables derive from, with soft delete.

Applications declare their tables on :class:`Base` (one shared MetaData, so
one migration runner and one archiver see them all). A table with
:class:`SoftDeleteMixin` has ``created_at``, ``updated_at``, ``deleted_at`` and
``deleted``. ``deleted`` is 0 on a live row and the row's own ``id`` once
soft-deleted (Nova's trick): unique constraints include ``deleted``, so any
number of deleted twins can sit next to the one live row a constraint protects.

Each soft-delete table has a ``shadow_<name>`` twin (same columns, no unique
constraints, built by :func:`shadow_table`) that :mod:`podium.db.archive`
moves old soft-deleted rows into; the application's migration creates it.

Rows are plain mapped objects; ``row["column"]`` and ``row.get("column")``
also work (Nova's DB objects are read that way), and a column named
``metadata`` is declared as the attribute ``metadata_`` (``metadata`` is
reserved by SQLAlchemy's declarative base).

The framework's own tables here are request records (:class:`ConductorInbox`,
:class:`RPCDedup`), not domain data.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, Column, Integer, LargeBinary, MetaData, String, Table
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from podium.db.types import UTCDateTime, utcnow
from podium.exceptions import DBError

__all__ = [
    "SHADOW_PREFIX",
    "Base",
    "ConductorInbox",
    "RPCDedup",
    "SoftDeleteMixin",
    "TimestampMixin",
    "is_soft_delete",
    "shadow_table",
    "shadow_tables",
    "table_of",
]

SHADOW_PREFIX = "shadow_"

# Deterministic constraint names on every backend, so later migrations can
# drop or alter them by name. Unique constraints are named explicitly in
# Nova's style (uniq_<table>0<col>0<col>).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}

    _column_keys: ClassVar[dict[str, str]]

    @classmethod
    def _key_for(cls, name: str) -> str:
        keys = cls.__dict__.get("_column_keys")
        if keys is None:
            keys = {column.name: key for key, column in cls.__mapper__.columns.items()}
            cls._column_keys = keys
        return str(keys.get(name, name))

    def __getitem__(self, name: str) -> Any:
        try:
            return getattr(self, self._key_for(name))
        except AttributeError:
            raise KeyError(name) from None

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, self._key_for(name), default)

    def to_dict(self) -> dict[str, Any]:
        """Column name -> value (``metadata``, not ``metadata_``)."""
        return {column.name: getattr(self, key) for key, column in self.__mapper__.columns.items()}

    def __repr__(self) -> str:
        ident = getattr(self, "uuid", None) or getattr(self, "id", None)
        return f"<{type(self).__name__} {ident} deleted={getattr(self, 'deleted', None)}>"


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(onupdate=utcnow)


class SoftDeleteMixin(TimestampMixin):
    """Timestamps plus ``deleted_at`` / ``deleted`` (0, or the row's id once deleted)."""

    deleted_at: Mapped[datetime | None]
    deleted: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


#: A stored reply: up to the 16 MiB an RPC message may carry (MySQL's BLOB
#: stops at 64 KiB).
REPLY_TYPE = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")


class ConductorInbox(Base):
    """Requests whose writes the conductor committed, with the reply it sent.

    The row is inserted in the same transaction as the request's writes, so a
    redelivered or retried request finds it and is answered from ``reply``
    instead of being applied again (:mod:`podium.db.inbox`). Framework
    bookkeeping, not domain data: no soft delete, no shadow table; rows older
    than the retention are deleted (``podium db prune-inbox``).
    """

    __tablename__ = "conductor_inbox"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    method: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    reply: Mapped[bytes | None] = mapped_column(REPLY_TYPE)


class RPCDedup(Base):
    """Request ids claimed or finished by RPC servers sharing a database de-dup store.

    ``owner`` holds the claim until ``expires_at`` (renewed while the handler
    runs); once done, ``done`` is true and ``reply`` keeps a call's reply
    (:class:`podium.db.dedup.DatabaseDedupStore`).
    """

    __tablename__ = "rpc_dedup"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(255))
    done: Mapped[bool] = mapped_column(default=False)
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    reply: Mapped[bytes | None] = mapped_column(REPLY_TYPE)


def table_of(model: type[Base]) -> Table:
    """The Core table of a model (typed as a Table, which it always is here)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


def is_soft_delete(table: Table) -> bool:
    """Whether ``table`` keeps soft-deleted rows (and so has a shadow twin)."""
    return (
        not table.name.startswith(SHADOW_PREFIX)
        and "deleted" in table.c
        and "deleted_at" in table.c
        and "id" in table.c
    )


# Two threads archiving at once would otherwise both declare the shadow table,
# and MetaData refuses the second.
_SHADOW_LOCK = threading.Lock()


def shadow_table(name: str) -> Table:
    """The shadow twin of the live soft-delete table ``name``, built on first use.

    Same columns (``id`` included, without autoincrement: ids come from the
    live table), no unique constraint or index: a key may have been deleted
    many times. Built into ``Base.metadata`` so that the schema check compares
    it with what the migration created.
    """
    shadow_name = SHADOW_PREFIX + name
    existing = Base.metadata.tables.get(shadow_name)
    if existing is not None:
        return existing
    with _SHADOW_LOCK:
        existing = Base.metadata.tables.get(shadow_name)
        if existing is not None:
            return existing
        return _make_shadow(name, shadow_name)


def _make_shadow(name: str, shadow_name: str) -> Table:
    table = Base.metadata.tables.get(name)
    if table is None or not is_soft_delete(table):
        raise DBError(f"{name!r} is no soft-delete table of Base.metadata: it has no shadow")
    columns = [
        Column(
            column.name,
            column.type,
            primary_key=column.primary_key,
            nullable=column.nullable,
            autoincrement=False,
        )
        for column in table.columns
    ]
    return Table(shadow_name, Base.metadata, *columns)


def shadow_tables() -> list[Table]:
    """The shadow twin of every soft-delete table declared so far (built now)."""
    live = [table for table in Base.metadata.sorted_tables if is_soft_delete(table)]
    return [shadow_table(table.name) for table in live]
