"""The DB API: one function per operation the control plane needs.

Every function takes ``(db, context, ...)``, runs in one transaction of its
own (through :meth:`Database.run`, so a connection lost before anything could
commit costs a retry, not a failure), and returns model rows
(:mod:`podium.db.models`), detached and fully loaded, so they can be read
after the call (``row.host`` or ``row["host"]``).

Reads honour ``context.read_deleted``: ``'no'`` (default) skips soft-deleted
rows, ``'yes'`` includes them, ``'only'`` returns only them. Updates and
deletes act on live rows only. A missing row raises
:class:`~podium.exceptions.NotFound` naming the table and key; a unique
constraint raises :class:`~podium.exceptions.DuplicateEntry`.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.orm import Session

from podium.context import RequestContext
from podium.db.engine import Database
from podium.db.models import Base, ComputeNode, Instance, Service
from podium.db.query import column_key, model_query, newest_first, update_values
from podium.db.types import utcnow
from podium.exceptions import DBError, NotFound, UnexpectedTaskStateError

__all__ = [
    "compute_node_create",
    "compute_node_destroy",
    "compute_node_get",
    "compute_node_get_all",
    "compute_node_get_by_host",
    "compute_node_update",
    "instance_create",
    "instance_destroy",
    "instance_get_all",
    "instance_get_all_by_host",
    "instance_get_by_uuid",
    "instance_update",
    "service_create",
    "service_destroy",
    "service_get",
    "service_get_all",
    "service_get_by_host_and_binary",
    "service_get_minimum_version",
    "service_update",
]

M = TypeVar("M", bound=Base)

INSTANCE_SORT_KEYS = (
    "created_at",
    "id",
    "uuid",
    "power_state",
    "memory_mb",
    "vcpus",
    "root_gb",
)


def _create(db: Database, model: type[M], values: Mapping[str, Any]) -> M:
    attributes = update_values(model, values)

    def work(session: Session) -> M:
        # A new row object each attempt: a rolled-back attempt leaves its own stale.
        row = model(**attributes)
        session.add(row)
        session.flush()
        return row

    return db.run(work)


def _get_one(session: Session, context: RequestContext, model: type[M], **keys: Any) -> M:
    query = model_query(model, context).filter_by(**keys).order_by(*newest_first(model))
    row = session.scalars(query.limit(1)).first()
    if row is None:
        described = ", ".join(f"{k}={v!r}" for k, v in keys.items())
        raise NotFound(f"No {model.__tablename__} row with {described}")
    return row


def _update_returning(
    session: Session,
    model: type[M],
    values: dict[str, Any],
    where: list[ColumnElement[bool]],
    identity: list[ColumnElement[bool]],
) -> M | None:
    """UPDATE the one row matching ``where``; returns it as stored, or None.

    One round trip with RETURNING (PostgreSQL, SQLite); MariaDB has no
    UPDATE ... RETURNING, so there the row is read back by ``identity`` (its
    key, which the update does not change) in the same transaction.
    """
    statement = update(model).where(*where).values(**values)
    options = {"synchronize_session": False}
    if session.get_bind().dialect.update_returning:
        return session.scalars(statement.returning(model), execution_options=options).first()
    if session.execute(statement, execution_options=options).rowcount == 0:  # type: ignore[attr-defined]
        return None
    return session.scalars(
        select(model).where(*identity), execution_options={"populate_existing": True}
    ).one()


def _returns_updates(db: Database) -> bool:
    """Whether an update is one ``UPDATE ... RETURNING`` statement on this backend."""
    return bool(db.engine.dialect.update_returning)


def _update_live(session: Session, model: type[M], values: dict[str, Any], **keys: Any) -> M:
    table = model.__table__
    identity = [table.c.deleted == 0, *(table.c[name] == value for name, value in keys.items())]
    row = _update_returning(session, model, values, identity, identity)
    if row is None:
        described = ", ".join(f"{k}={v!r}" for k, v in keys.items())
        raise NotFound(f"No live {model.__tablename__} row with {described}")
    return row


def _destroy(session: Session, model: type[M], **keys: Any) -> M:
    table = model.__table__
    row_id = session.scalar(
        select(table.c.id).where(table.c.deleted == 0, *(table.c[k] == v for k, v in keys.items()))
    )
    if row_id is None:
        described = ", ".join(f"{k}={v!r}" for k, v in keys.items())
        raise NotFound(f"No live {model.__tablename__} row with {described}")
    # Nova's soft delete: deleted takes the row's id, updated_at keeps its value.
    values = {"deleted": table.c.id, "deleted_at": utcnow(), "updated_at": table.c.updated_at}
    by_id = [table.c.id == row_id]
    row = _update_returning(session, model, values, [*by_id, table.c.deleted == 0], by_id)
    if row is None:  # soft-deleted by someone else since the SELECT
        described = ", ".join(f"{k}={v!r}" for k, v in keys.items())
        raise NotFound(f"No live {model.__tablename__} row with {described}")
    return row


# -- instances -----------------------------------------------------------------


def instance_create(db: Database, context: RequestContext, values: Mapping[str, Any]) -> Instance:
    """Insert an instance; a uuid is generated when ``values`` has none."""
    values = dict(values)
    if not values.get("uuid"):
        values["uuid"] = str(uuidlib.uuid4())
    return _create(db, Instance, values)


def instance_get_by_uuid(db: Database, context: RequestContext, uuid: str) -> Instance:
    return db.run(lambda session: _get_one(session, context, Instance, uuid=uuid))


def instance_get_all(
    db: Database,
    context: RequestContext,
    filters: Mapping[str, Any] | None = None,
    limit: int | None = None,
    marker: str | None = None,
    sort_key: str = "created_at",
    sort_dir: Literal["asc", "desc"] = "asc",
) -> list[Instance]:
    """Instances matching ``filters`` (column -> value, or a list/tuple for IN).

    Pages with ``limit`` and ``marker`` (the uuid of the last instance of the
    previous page); rows are ordered by ``sort_key`` then ``id``.
    """
    if sort_key not in INSTANCE_SORT_KEYS:
        raise DBError(f"sort_key must be one of {INSTANCE_SORT_KEYS}, not {sort_key!r}")
    if sort_dir not in ("asc", "desc"):
        raise DBError(f"sort_dir must be 'asc' or 'desc', not {sort_dir!r}")
    if limit is not None and limit < 0:
        raise DBError(f"limit must be >= 0, not {limit}")
    table = Instance.__table__
    base_query = model_query(Instance, context)
    for name, value in (filters or {}).items():
        column = Instance.__mapper__.columns[column_key(Instance, name)]
        if isinstance(value, list | tuple | set | frozenset):
            base_query = base_query.where(column.in_(list(value)))
        else:
            base_query = base_query.where(column.is_(None) if value is None else column == value)
    sort_column = table.c[sort_key]

    def work(session: Session) -> list[Instance]:
        query = base_query
        if marker is not None:
            marker_row = session.scalars(
                model_query(Instance, context)
                .filter_by(uuid=marker)
                .order_by(*newest_first(Instance))
            ).first()
            if marker_row is None:
                raise NotFound(f"Marker not found: no instances row with uuid={marker!r}")
            value = getattr(marker_row, sort_key)
            after = sort_column > value if sort_dir == "asc" else sort_column < value
            tie = table.c.id > marker_row.id if sort_dir == "asc" else table.c.id < marker_row.id
            query = query.where(or_(after, and_(sort_column == value, tie)))
        if sort_dir == "asc":
            query = query.order_by(sort_column.asc(), table.c.id.asc())
        else:
            query = query.order_by(sort_column.desc(), table.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        return list(session.scalars(query))

    return db.run(work)


def instance_get_all_by_host(db: Database, context: RequestContext, host: str) -> list[Instance]:
    return instance_get_all(db, context, filters={"host": host})


def instance_update(
    db: Database,
    context: RequestContext,
    uuid: str,
    values: Mapping[str, Any],
    expected_task_state: str | Sequence[str | None] | None = None,
) -> Instance:
    """Update a live instance; returns the updated row.

    With ``expected_task_state`` (a state, or a list of states where ``None``
    stands for "no task"), the update is one atomic compare-and-swap: it
    applies only if the stored ``task_state`` is one of them, else
    :class:`~podium.exceptions.UnexpectedTaskStateError` is raised and nothing
    changes. ``updated_at`` is set to now unless ``values`` gives it.
    """
    changes = update_values(Instance, values, protected=("uuid",))
    changes.setdefault("updated_at", utcnow())
    table = Instance.__table__
    where = [table.c.uuid == uuid, table.c.deleted == 0]
    expected: list[str | None] | None = None
    if expected_task_state is not None:
        expected = (
            [expected_task_state]
            if isinstance(expected_task_state, str)
            else list(expected_task_state)
        )
        states = [state for state in expected if state is not None]
        clauses = [table.c.task_state.in_(states)] if states else []
        if None in expected:
            clauses.append(table.c.task_state.is_(None))
        where.append(or_(*clauses))
    identity = [table.c.uuid == uuid, table.c.deleted == 0]

    def work(session: Session) -> Instance:
        row = _update_returning(session, Instance, changes, where, identity)
        if row is None:
            current = session.execute(select(table.c.task_state).where(*identity)).first()
            if current is None:
                raise NotFound(f"No live instances row with uuid={uuid!r}")
            raise UnexpectedTaskStateError(
                f"Instance {uuid}: expected task_state in {expected!r}, found "
                f"{current.task_state!r}; not updated"
            )
        return row

    return db.run(work, single_statement=_returns_updates(db))


def instance_destroy(db: Database, context: RequestContext, uuid: str) -> Instance:
    """Soft-delete a live instance; returns the row as deleted."""
    return db.run(lambda session: _destroy(session, Instance, uuid=uuid))


# -- services ------------------------------------------------------------------


def service_create(db: Database, context: RequestContext, values: Mapping[str, Any]) -> Service:
    return _create(db, Service, values)


def service_get(db: Database, context: RequestContext, service_id: int) -> Service:
    return db.run(lambda session: _get_one(session, context, Service, id=service_id))


def service_get_by_host_and_binary(
    db: Database, context: RequestContext, host: str, binary: str
) -> Service:
    return db.run(lambda session: _get_one(session, context, Service, host=host, binary=binary))


def service_get_all(
    db: Database, context: RequestContext, topic: str | None = None
) -> list[Service]:
    query = model_query(Service, context).order_by(Service.id)
    if topic is not None:
        query = query.where(Service.topic == topic)
    return db.run(lambda session: list(session.scalars(query)))


def service_get_minimum_version(
    db: Database, context: RequestContext, binaries: Sequence[str]
) -> dict[str, int | None]:
    """The lowest ``version`` among live, not forced-down services of each binary.

    What ``upgrade_levels = auto`` caps RPC clients to; ``None`` for a binary
    with no such service. Ignores ``read_deleted``: a deleted service runs nothing.
    """
    table = Service.__table__
    query = (
        select(table.c.binary, func.min(table.c.version))
        .where(table.c.deleted == 0, table.c.forced_down.is_(False))
        .where(table.c.binary.in_(list(binaries)))
        .group_by(table.c.binary)
    )
    found = db.run(
        lambda session: {binary: int(version) for binary, version in session.execute(query)}
    )
    return {binary: found.get(binary) for binary in binaries}


def service_update(
    db: Database, context: RequestContext, service_id: int, values: Mapping[str, Any]
) -> Service:
    changes = update_values(Service, values)
    return db.run(
        lambda session: _update_live(session, Service, changes, id=service_id),
        single_statement=_returns_updates(db),
    )


def service_destroy(db: Database, context: RequestContext, service_id: int) -> Service:
    return db.run(lambda session: _destroy(session, Service, id=service_id))


# -- compute nodes -------------------------------------------------------------


def compute_node_create(
    db: Database, context: RequestContext, values: Mapping[str, Any]
) -> ComputeNode:
    return _create(db, ComputeNode, values)


def compute_node_get(db: Database, context: RequestContext, compute_id: int) -> ComputeNode:
    return db.run(lambda session: _get_one(session, context, ComputeNode, id=compute_id))


def compute_node_get_by_host(db: Database, context: RequestContext, host: str) -> ComputeNode:
    return db.run(lambda session: _get_one(session, context, ComputeNode, host=host))


def compute_node_get_all(db: Database, context: RequestContext) -> list[ComputeNode]:
    query = model_query(ComputeNode, context).order_by(ComputeNode.id)
    return db.run(lambda session: list(session.scalars(query)))


def compute_node_update(
    db: Database, context: RequestContext, compute_id: int, values: Mapping[str, Any]
) -> ComputeNode:
    changes = update_values(ComputeNode, values)
    return db.run(
        lambda session: _update_live(session, ComputeNode, changes, id=compute_id),
        single_statement=_returns_updates(db),
    )


def compute_node_destroy(db: Database, context: RequestContext, compute_id: int) -> ComputeNode:
    return db.run(lambda session: _destroy(session, ComputeNode, id=compute_id))
