"""Instances and their faults."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, false, or_, select, update
from sqlalchemy.orm import Session

from podium.cloud.db._compute_nodes import give_back
from podium.cloud.exceptions import UnexpectedTaskStateError
from podium.cloud.models import Instance, InstanceFault
from podium.context import RequestContext
from podium.db import Database
from podium.db.api import (
    create,
    get,
    get_one,
    returns_updates,
    soft_delete,
    update_row,
)
from podium.db.models import table_of
from podium.db.query import column_key, model_query, newest_first, update_values
from podium.db.types import utcnow
from podium.exceptions import DBError, NotFound

_INSTANCES = table_of(Instance)


INSTANCE_SORT_KEYS = (
    "created_at",
    "updated_at",
    "id",
    "uuid",
    "display_name",
    "vm_state",
    "power_state",
    "memory_mb",
    "vcpus",
    "root_gb",
)


def instance_create(db: Database, context: RequestContext, values: Mapping[str, Any]) -> Instance:
    """Insert an instance; a uuid is generated when ``values`` has none."""
    values = dict(values)
    if not values.get("uuid"):
        values["uuid"] = str(uuidlib.uuid4())
    return create(db, Instance, values)


def instance_get_by_uuid(db: Database, context: RequestContext, uuid: str) -> Instance:
    return get(db, context, Instance, uuid=uuid)


def instance_get_owner(db: Database, uuid: str, *, lock: bool = False) -> dict[str, Any]:
    """Where an instance runs and whose it is (``host``, ``project_id``), deleted or not.

    For the conductor's policy, before a method acts on the instance. ``lock``
    takes the row's write lock (PostgreSQL and MariaDB) until the transaction
    ends, so that what was checked is what the method then changes.
    """
    query = (
        select(_INSTANCES.c.host, _INSTANCES.c.project_id)
        .where(_INSTANCES.c.uuid == uuid)
        .order_by(_INSTANCES.c.deleted.asc())
        .limit(1)
    )
    if lock:
        query = query.with_for_update()

    def work(session: Session) -> dict[str, Any]:
        row = session.execute(query).first()
        if row is None:
            raise NotFound(f"Instance {uuid} could not be found")
        return {"host": row.host, "project_id": row.project_id}

    return db.run(work)


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
    base_query = model_query(Instance, context)
    for name, value in (filters or {}).items():
        column = Instance.__mapper__.columns[column_key(Instance, name)]
        if isinstance(value, list | tuple | set | frozenset):
            base_query = base_query.where(column.in_(list(value)))
        else:
            base_query = base_query.where(column.is_(None) if value is None else column == value)
    sort_column = _INSTANCES.c[sort_key]

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
            query = query.where(_after_marker(marker_row, sort_key, sort_dir))
        if sort_dir == "asc":
            query = query.order_by(
                sort_column.is_not(None), sort_column.asc(), _INSTANCES.c.id.asc()
            )
        else:
            query = query.order_by(
                sort_column.is_(None), sort_column.desc(), _INSTANCES.c.id.desc()
            )
        if limit is not None:
            query = query.limit(limit)
        return list(session.scalars(query))

    return db.run(work)


def _after_marker(
    marker_row: Instance, sort_key: str, sort_dir: Literal["asc", "desc"]
) -> ColumnElement[bool]:
    """The instances that come after ``marker_row`` in :func:`instance_get_all`'s order."""
    sort_column = _INSTANCES.c[sort_key]
    value = getattr(marker_row, sort_key)
    ahead = _INSTANCES.c.id > marker_row.id
    if sort_dir == "desc":
        ahead = _INSTANCES.c.id < marker_row.id
    # NULLs come first ascending and last descending (instance_get_all's ORDER
    # BY says so explicitly: backends disagree by default).
    tie: ColumnElement[bool]
    after: ColumnElement[bool]
    if value is None:
        tie = and_(sort_column.is_(None), ahead)
        after = sort_column.is_not(None) if sort_dir == "asc" else false()
    else:
        tie = and_(sort_column == value, ahead)
        after = (
            sort_column > value
            if sort_dir == "asc"
            else or_(sort_column < value, sort_column.is_(None))
        )
    return or_(after, tie)


def instance_get_all_by_host(db: Database, context: RequestContext, host: str) -> list[Instance]:
    return instance_get_all(db, context, filters={"host": host})


def instance_update(
    db: Database,
    context: RequestContext,
    uuid: str,
    values: Mapping[str, Any],
    expected_task_state: str | Sequence[str | None] | None = None,
    expected_vm_state: str | Sequence[str] | None = None,
) -> Instance:
    """Update a live instance; returns the updated row.

    With ``expected_task_state`` (a state, or a list of states where ``None``
    stands for "no task") and/or ``expected_vm_state``, the update is one
    atomic compare-and-swap: it applies only if the stored states are among
    them, else :class:`~podium.cloud.exceptions.UnexpectedTaskStateError` is
    raised and nothing changes. ``updated_at`` is set to now unless ``values``
    gives it.
    """
    changes = update_values(Instance, values, protected=("uuid",))
    changes.setdefault("updated_at", utcnow())
    expected: dict[str, list[Any]] = {}
    if expected_task_state is not None:
        expected["task_state"] = (
            [expected_task_state]
            if isinstance(expected_task_state, str)
            else list(expected_task_state)
        )
    if expected_vm_state is not None:
        expected["vm_state"] = (
            [expected_vm_state] if isinstance(expected_vm_state, str) else list(expected_vm_state)
        )

    def work(session: Session) -> Instance:
        row = update_row(session, Instance, changes, {"uuid": uuid}, expected)
        if row is None:
            current = session.execute(
                select(_INSTANCES.c.task_state, _INSTANCES.c.vm_state).where(
                    _INSTANCES.c.uuid == uuid, _INSTANCES.c.deleted == 0
                )
            ).first()
            if current is None:
                raise NotFound(f"No live instances row with uuid={uuid!r}")
            wanted = [f"{name} in {states!r}" for name, states in expected.items()]
            raise UnexpectedTaskStateError(
                f"Instance {uuid}: expected {' and '.join(wanted)}, found task_state "
                f"{current.task_state!r}, vm_state {current.vm_state!r}; not updated"
            )
        return row

    return db.run(work, single_statement=returns_updates(db))


def instance_destroy(
    db: Database,
    context: RequestContext,
    uuid: str,
    values: Mapping[str, Any] | None = None,
) -> Instance:
    """Soft-delete a live instance (after applying ``values``), giving its host's
    resources back in the same transaction; returns the row as deleted."""
    changes = update_values(Instance, values or {}, protected=("uuid",))

    def work(session: Session) -> Instance:
        row = get_one(session, context.elevated(read_deleted="no"), Instance, uuid=uuid)
        if changes:
            session.execute(
                update(Instance).where(_INSTANCES.c.id == row.id).values(**changes),
                execution_options={"synchronize_session": False},
            )
        # The row as the soft delete stored it, not the copy read above: a claim
        # or release may have committed in between, and the delete (which locks
        # the row) is what tells which host holds the instance now.
        session.expunge(row)
        deleted = soft_delete(session, Instance, id=row.id)
        if deleted.host is not None:
            give_back(session, deleted.host, deleted)
        return deleted

    return db.run(work)


def instance_record_guest_status(
    db: Database, context: RequestContext, uuid: str, status: str, sent_at: datetime
) -> bool:
    """Store a guest's status unless a newer report is already stored; whether it was."""
    # Never taken as later than now: a guest whose clock runs ahead must not
    # shut out the reports after its own.
    sent_at = min(sent_at, utcnow())
    statement = (
        update(Instance)
        .where(
            _INSTANCES.c.uuid == uuid,
            _INSTANCES.c.deleted == 0,
            or_(_INSTANCES.c.guest_status_at.is_(None), _INSTANCES.c.guest_status_at < sent_at),
        )
        .values(guest_status=status, guest_status_at=sent_at, updated_at=_INSTANCES.c.updated_at)
    )

    def work(session: Session) -> bool:
        stored = session.execute(statement, execution_options={"synchronize_session": False})
        if stored.rowcount == 1:  # type: ignore[attr-defined]
            return True
        get_one(session, context.elevated(read_deleted="no"), Instance, uuid=uuid)
        return False

    return db.run(work)


# -- faults --------------------------------------------------------------------


def instance_fault_create(
    db: Database, context: RequestContext, values: Mapping[str, Any]
) -> InstanceFault:
    values = dict(values)
    # The column holds 255 characters; the whole text stays in details.
    message = str(values.get("message", ""))
    if len(message) > 255:
        values.setdefault("details", message)
        values["message"] = message[:252] + "..."
    return create(db, InstanceFault, values)


def instance_fault_get_latest(
    db: Database, context: RequestContext, instance_uuids: Sequence[str]
) -> dict[str, InstanceFault]:
    """The newest fault of each instance that has one."""
    if not instance_uuids:
        return {}
    query = (
        model_query(InstanceFault, context, read_deleted="no")
        .where(InstanceFault.instance_uuid.in_(list(instance_uuids)))
        .order_by(InstanceFault.id.desc())
    )

    def work(session: Session) -> dict[str, InstanceFault]:
        latest: dict[str, InstanceFault] = {}
        for fault in session.scalars(query):
            latest.setdefault(fault.instance_uuid, fault)
        return latest

    return db.run(work)
