"""SQLAlchemy models of the reference control plane, with soft delete.

Every table has ``created_at``, ``updated_at``, ``deleted_at`` and ``deleted``.
``deleted`` is 0 on a live row and the row's own ``id`` once soft-deleted
(Nova's trick): unique constraints include ``deleted``, so any number of
deleted twins can sit next to the one live row a constraint protects.

Each table has a ``shadow_<name>`` twin (same columns, no unique constraints)
that :mod:`podium.db.archive` moves old soft-deleted rows into.

Rows are plain mapped objects; ``row["column"]`` and ``row.get("column")``
also work (Nova's DB objects are read that way), and the column named
``metadata`` in ``instances`` is the attribute ``metadata_`` (``metadata`` is
reserved by SQLAlchemy's declarative base).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from podium.db.types import UTCDateTime, utcnow

__all__ = [
    "MODELS",
    "SHADOW_PREFIX",
    "Base",
    "ComputeNode",
    "ConductorInbox",
    "Instance",
    "RPCDedup",
    "Service",
    "SoftDeleteMixin",
    "TimestampMixin",
    "shadow_table",
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


class Service(SoftDeleteMixin, Base):
    __tablename__ = "services"
    __table_args__ = (
        UniqueConstraint("host", "binary", "deleted", name="uniq_services0host0binary0deleted"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    binary: Mapped[str] = mapped_column(String(255))
    topic: Mapped[str | None] = mapped_column(String(255))
    report_count: Mapped[int] = mapped_column(default=0)
    disabled: Mapped[bool] = mapped_column(default=False)
    disabled_reason: Mapped[str | None] = mapped_column(String(255))
    last_seen_up: Mapped[datetime | None]
    # The object/RPC version this service runs; the lowest live value is what
    # "upgrade_levels = auto" caps RPC clients to.
    version: Mapped[int] = mapped_column(default=0)
    forced_down: Mapped[bool] = mapped_column(default=False)


class ComputeNode(SoftDeleteMixin, Base):
    __tablename__ = "compute_nodes"
    __table_args__ = (
        UniqueConstraint("host", "deleted", name="uniq_compute_nodes0host0deleted"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    hypervisor_hostname: Mapped[str | None] = mapped_column(String(255))
    vcpus: Mapped[int] = mapped_column(default=0)
    memory_mb: Mapped[int] = mapped_column(default=0)
    local_gb: Mapped[int] = mapped_column(default=0)
    vcpus_used: Mapped[int] = mapped_column(default=0)
    memory_mb_used: Mapped[int] = mapped_column(default=0)
    local_gb_used: Mapped[int] = mapped_column(default=0)


class Instance(SoftDeleteMixin, Base):
    __tablename__ = "instances"
    __table_args__ = (
        UniqueConstraint("uuid", "deleted", name="uniq_instances0uuid0deleted"),
        Index("ix_instances_host_deleted", "host", "deleted"),
        Index("ix_instances_project_id_deleted", "project_id", "deleted"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36))
    hostname: Mapped[str | None] = mapped_column(String(255))
    display_name: Mapped[str | None] = mapped_column(String(255))
    project_id: Mapped[str | None] = mapped_column(String(255))
    user_id: Mapped[str | None] = mapped_column(String(255))
    host: Mapped[str | None] = mapped_column(String(255))
    node: Mapped[str | None] = mapped_column(String(255))
    vm_state: Mapped[str | None] = mapped_column(String(255))
    task_state: Mapped[str | None] = mapped_column(String(255))
    power_state: Mapped[int] = mapped_column(default=0)
    memory_mb: Mapped[int] = mapped_column(default=0)
    vcpus: Mapped[int] = mapped_column(default=0)
    root_gb: Mapped[int] = mapped_column(default=0)
    image_ref: Mapped[str | None] = mapped_column(String(255))
    launched_at: Mapped[datetime | None]
    terminated_at: Mapped[datetime | None]
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)


MODELS: tuple[type[Base], ...] = (Service, ComputeNode, Instance)

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


def _make_shadow(table: Table) -> Table:
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
    return Table(SHADOW_PREFIX + table.name, Base.metadata, *columns)


def table_of(model: type[Base]) -> Table:
    """The Core table of a model (typed as a Table, which it always is here)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


_SHADOWS: dict[str, Table] = {
    model.__tablename__: _make_shadow(table_of(model)) for model in MODELS
}


def shadow_table(name: str) -> Table:
    """The shadow twin of the live table ``name``."""
    return _SHADOWS[name]
