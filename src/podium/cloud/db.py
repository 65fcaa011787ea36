"""The reference cloud's DB functions: one per operation, each one transaction.

They follow podium.db's conventions: ``(db, context, ...)``, reads honour
``context.read_deleted``, rows come back detached and loaded, a missing row is
:class:`~podium.exceptions.NotFound`, a unique clash
:class:`~podium.exceptions.DuplicateEntry`.

Resource accounting keeps one invariant: a compute node's ``*_used`` columns
are the sum over the live instances whose ``host`` is that node. Every change
to either side (claim, release, destroy) is one transaction that changes both.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, bindparam, case, false, func, or_, select, update
from sqlalchemy.orm import Session

from podium.cloud.exceptions import InstanceInvalidState, UnexpectedTaskStateError
from podium.cloud.models import ComputeNode, Flavor, Instance, InstanceFault, Service
from podium.context import RequestContext
from podium.db import Database
from podium.db.api import (
    PreparedUpdate,
    create,
    get,
    get_one,
    returns_updates,
    soft_delete,
    update_live,
    update_row,
)
from podium.db.models import table_of
from podium.db.query import column_key, model_query, newest_first, update_values
from podium.db.types import utcnow
from podium.exceptions import DBError, DuplicateEntry, NotFound

__all__ = [
    "INSTANCE_SORT_KEYS",
    "compute_node_claim",
    "compute_node_create",
    "compute_node_destroy",
    "compute_node_get",
    "compute_node_get_all",
    "compute_node_get_by_host",
    "compute_node_reconcile",
    "compute_node_release",
    "compute_node_report",
    "compute_node_update",
    "flavor_create",
    "flavor_destroy",
    "flavor_get_all",
    "flavor_get_by_flavor_id",
    "instance_create",
    "instance_destroy",
    "instance_fault_create",
    "instance_fault_get_latest",
    "instance_get_all",
    "instance_get_all_by_host",
    "instance_get_by_uuid",
    "instance_record_guest_status",
    "instance_update",
    "service_create",
    "service_destroy",
    "service_get",
    "service_get_all",
    "service_get_by_host_and_binary",
    "service_get_minimum_version",
    "service_report",
    "service_update",
]

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

_INSTANCES = table_of(Instance)
_NODES = table_of(ComputeNode)
_SERVICES = table_of(Service)


# -- instances -----------------------------------------------------------------


def instance_create(db: Database, context: RequestContext, values: Mapping[str, Any]) -> Instance:
    """Insert an instance; a uuid is generated when ``values`` has none."""
    values = dict(values)
    if not values.get("uuid"):
        values["uuid"] = str(uuidlib.uuid4())
    return create(db, Instance, values)


def instance_get_by_uuid(db: Database, context: RequestContext, uuid: str) -> Instance:
    return get(db, context, Instance, uuid=uuid)


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


def _usage_change(row: Any, sign: int) -> dict[str, Any]:
    """SET clauses adding (sign 1) or giving back (sign -1) what instance ``row`` holds."""
    amounts = {"vcpus": row.vcpus, "memory_mb": row.memory_mb, "disk_gb": row.root_gb}
    values: dict[str, Any] = {}
    for resource, amount in amounts.items():
        used = _NODES.c[f"{resource}_used"]
        if sign > 0:
            values[f"{resource}_used"] = used + amount
        else:
            # Never below zero, even if a reconcile ran in between.
            values[f"{resource}_used"] = case((used >= amount, used - amount), else_=0)
    return values


def _give_back(session: Session, host: str, instance: Any) -> None:
    session.execute(
        update(ComputeNode)
        .where(_NODES.c.host == host, _NODES.c.deleted == 0)
        .values(**_usage_change(instance, -1), updated_at=utcnow()),
        execution_options={"synchronize_session": False},
    )


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
            _give_back(session, deleted.host, deleted)
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


# -- flavors -------------------------------------------------------------------


def flavor_create(db: Database, context: RequestContext, values: Mapping[str, Any]) -> Flavor:
    return create(db, Flavor, values)


def flavor_get_by_flavor_id(db: Database, context: RequestContext, flavorid: str) -> Flavor:
    return get(db, context, Flavor, flavorid=flavorid)


def flavor_get_all(db: Database, context: RequestContext) -> list[Flavor]:
    query = model_query(Flavor, context).order_by(Flavor.memory_mb, Flavor.flavorid)
    return db.run(lambda session: list(session.scalars(query)))


def flavor_destroy(db: Database, context: RequestContext, flavorid: str) -> Flavor:
    return db.run(lambda session: soft_delete(session, Flavor, flavorid=flavorid))


# -- services ------------------------------------------------------------------


def service_create(db: Database, context: RequestContext, values: Mapping[str, Any]) -> Service:
    return create(db, Service, values)


def service_get(db: Database, context: RequestContext, service_id: int) -> Service:
    return get(db, context, Service, id=service_id)


def service_get_by_host_and_binary(
    db: Database, context: RequestContext, host: str, binary: str
) -> Service:
    return get(db, context, Service, host=host, binary=binary)


def service_get_all(
    db: Database,
    context: RequestContext,
    topic: str | None = None,
    binary: str | None = None,
) -> list[Service]:
    query = model_query(Service, context).order_by(Service.id)
    if topic is not None:
        query = query.where(Service.topic == topic)
    if binary is not None:
        query = query.where(Service.binary == binary)
    return db.run(lambda session: list(session.scalars(query)))


def service_get_minimum_version(
    db: Database, context: RequestContext, binaries: Sequence[str]
) -> dict[str, int | None]:
    """The lowest ``version`` among live, not forced-down services of each binary.

    What ``upgrade_levels = auto`` caps RPC clients to; ``None`` for a binary
    with no such service. Ignores ``read_deleted``: a deleted service runs nothing.
    """
    query = (
        select(_SERVICES.c.binary, func.min(_SERVICES.c.version))
        .where(_SERVICES.c.deleted == 0, _SERVICES.c.forced_down.is_(False))
        .where(_SERVICES.c.binary.in_(list(binaries)))
        .group_by(_SERVICES.c.binary)
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
        lambda session: update_live(session, Service, changes, id=service_id),
        single_statement=returns_updates(db),
    )


def service_destroy(db: Database, context: RequestContext, service_id: int) -> Service:
    return db.run(lambda session: soft_delete(session, Service, id=service_id))


def _service_report_statement() -> PreparedUpdate[Service]:
    """A heartbeat's UPDATE, built once: every service reports every few seconds."""
    columns = _SERVICES.c
    by_key = [
        columns.host == bindparam("host", type_=columns.host.type),
        columns.binary == bindparam("binary", type_=columns.binary.type),
        columns.deleted == 0,
    ]
    sent = bindparam("sent", type_=columns.last_report_sent_at.type)
    now = bindparam("now", type_=columns.last_seen_up.type)
    newer = or_(columns.last_report_sent_at.is_(None), columns.last_report_sent_at < sent)
    statement = (
        update(_SERVICES)
        .where(*by_key, newer)
        .values(
            report_count=columns.report_count + 1,
            last_seen_up=now,
            last_report_sent_at=sent,
            topic=bindparam("topic", type_=columns.topic.type),
            version=bindparam("version", type_=columns.version.type),
            updated_at=now,
        )
    )
    return PreparedUpdate(Service, statement, by_key)


_SERVICE_REPORT = _service_report_statement()


def service_report(
    db: Database,
    context: RequestContext,
    host: str,
    binary: str,
    topic: str | None,
    version: int,
    sent_at: datetime,
) -> tuple[Service, bool]:
    """A heartbeat: the service's row, and whether this report was newer than the stored one.

    The first report creates the row. A report sent before the newest one
    stored (delivered late, or replayed) changes nothing. ``last_seen_up`` is
    the time the report was stored, by this clock; the send time (from the
    sender's clock, and never taken as later than now, so a sender whose clock
    runs ahead cannot shut out the reports after it) only orders the reports.
    """
    now = utcnow()
    sent = min(sent_at, now)
    params = {"host": host, "binary": binary, "sent": sent, "now": now}
    params.update(topic=topic, version=version)
    live = context.elevated(read_deleted="no")

    def work(session: Session) -> tuple[Service, bool]:
        row = _SERVICE_REPORT.run(session, params)
        if row is not None:
            return row, True
        return get_one(session, live, Service, host=host, binary=binary), False

    try:
        return db.run(work)
    except NotFound:
        pass
    try:
        first = {"host": host, "binary": binary, "topic": topic, "version": version}
        stamps = {"last_seen_up": now, "last_report_sent_at": sent}
        return create(db, Service, {**first, "report_count": 1, **stamps}), True
    except DuplicateEntry:
        # Two first reports raced (a restart that overlapped its predecessor).
        return db.run(work)


# -- compute nodes -------------------------------------------------------------


def compute_node_create(
    db: Database, context: RequestContext, values: Mapping[str, Any]
) -> ComputeNode:
    return create(db, ComputeNode, values)


def compute_node_get(db: Database, context: RequestContext, compute_id: int) -> ComputeNode:
    return get(db, context, ComputeNode, id=compute_id)


def compute_node_get_by_host(db: Database, context: RequestContext, host: str) -> ComputeNode:
    return get(db, context, ComputeNode, host=host)


def compute_node_get_all(db: Database, context: RequestContext) -> list[ComputeNode]:
    query = model_query(ComputeNode, context).order_by(ComputeNode.id)
    return db.run(lambda session: list(session.scalars(query)))


def compute_node_update(
    db: Database, context: RequestContext, compute_id: int, values: Mapping[str, Any]
) -> ComputeNode:
    changes = update_values(ComputeNode, values)
    return db.run(
        lambda session: update_live(session, ComputeNode, changes, id=compute_id),
        single_statement=returns_updates(db),
    )


def compute_node_destroy(db: Database, context: RequestContext, compute_id: int) -> ComputeNode:
    return db.run(lambda session: soft_delete(session, ComputeNode, id=compute_id))


_TOTALS = ("vcpus", "memory_mb", "disk_gb", "hypervisor_hostname")


def compute_node_report(
    db: Database, context: RequestContext, host: str, totals: Mapping[str, Any]
) -> ComputeNode:
    """Store what a host's hypervisor offers (creating its row); never the used amounts."""
    unknown = set(totals) - set(_TOTALS)
    if unknown:
        raise DBError(f"a compute node reports only {_TOTALS}, not {sorted(unknown)}")
    values = {**totals, "updated_at": utcnow()}
    try:
        return db.run(lambda session: update_live(session, ComputeNode, values, host=host))
    except NotFound:
        pass
    try:
        return create(db, ComputeNode, {"host": host, **totals})
    except DuplicateEntry:
        return db.run(lambda session: update_live(session, ComputeNode, values, host=host))


def compute_node_claim(
    db: Database,
    context: RequestContext,
    host: str,
    instance_uuid: str,
    ratios: Mapping[str, float],
) -> bool:
    """Give the instance to ``host`` if it still fits there; whether it did.

    One transaction: a conditional UPDATE adds the instance's flavor to the
    host's used amounts only while ``used + wanted <= total * ratio`` (the row
    lock makes concurrent claims queue and re-check), and the instance's
    ``host``/``node`` are set. A claim already held by this host is a success
    (a replayed request); one held by another host is an error.
    """
    ratio = {name: float(ratios.get(name, 1.0)) for name in ("cpu", "ram", "disk")}

    def work(session: Session) -> bool:
        row = get_one(session, context.elevated(read_deleted="no"), Instance, uuid=instance_uuid)
        if row.host == host:
            return True
        if row.host is not None:
            raise InstanceInvalidState(
                f"Instance {instance_uuid} is claimed by host {row.host!r}; release it first"
            )
        # The instance row first, then the node's: every transaction that
        # changes both (destroy, release) locks them in this order, so two of
        # them never wait on each other.
        assigned = session.execute(
            update(Instance)
            .where(
                _INSTANCES.c.id == row.id, _INSTANCES.c.host.is_(None), _INSTANCES.c.deleted == 0
            )
            .values(host=host, node=host, updated_at=utcnow()),
            execution_options={"synchronize_session": False},
        )
        if assigned.rowcount != 1:  # type: ignore[attr-defined]
            # Deleted, or claimed, since our read.
            now = session.execute(
                select(_INSTANCES.c.host, _INSTANCES.c.deleted).where(_INSTANCES.c.id == row.id)
            ).one()
            if now.deleted:
                raise NotFound(f"No live instances row with uuid={instance_uuid!r}")
            if now.host == host:
                return True
            raise InstanceInvalidState(f"Instance {instance_uuid} was claimed by {now.host!r}")
        if not _take_room(session, host, row, ratio):
            raise _NoRoom  # rolls the assignment back with the transaction
        return True

    try:
        return db.run(work)
    except _NoRoom:
        return False


def _take_room(session: Session, host: str, instance: Any, ratio: Mapping[str, float]) -> bool:
    """Add what ``instance`` holds to ``host``'s used amounts if it fits there; whether it did."""
    wanted = {"vcpus": instance.vcpus, "memory_mb": instance.memory_mb, "disk_gb": instance.root_gb}
    columns = {"vcpus": "cpu", "memory_mb": "ram", "disk_gb": "disk"}
    fits = [
        _NODES.c[f"{name}_used"] + wanted[name] <= _NODES.c[name] * ratio[resource]
        for name, resource in columns.items()
    ]
    claimed = session.execute(
        update(ComputeNode)
        .where(_NODES.c.host == host, _NODES.c.deleted == 0, *fits)
        .values(**_usage_change(instance, 1), updated_at=utcnow()),
        execution_options={"synchronize_session": False},
    )
    return bool(claimed.rowcount == 1)  # type: ignore[attr-defined]


class _NoRoom(Exception):
    """The claimed host has no room left: undo the claim's transaction."""


def compute_node_release(
    db: Database, context: RequestContext, host: str, instance_uuid: str
) -> bool:
    """Take the instance off ``host`` and give its resources back; False if it was not there."""

    def work(session: Session) -> bool:
        row = get_one(session, context.elevated(read_deleted="no"), Instance, uuid=instance_uuid)
        if row.host != host:
            return False
        released = session.execute(
            update(Instance)
            .where(_INSTANCES.c.id == row.id, _INSTANCES.c.host == host, _INSTANCES.c.deleted == 0)
            .values(host=None, node=None, updated_at=utcnow()),
            execution_options={"synchronize_session": False},
        )
        if released.rowcount != 1:  # type: ignore[attr-defined]
            return False  # a concurrent release or destroy gave the room back already
        _give_back(session, host, row)
        return True

    return db.run(work)


def compute_node_reconcile(db: Database, context: RequestContext, host: str) -> ComputeNode:
    """Recount a host's used amounts from the live instances on it.

    The node's row is locked before the instances are summed: a claim that
    committed is in the sum, and one in flight (which locks the instance, then
    the node) waits for the recount and adds itself after it.
    """
    on_host = [_INSTANCES.c.host == host, _INSTANCES.c.deleted == 0]
    sums = select(
        func.coalesce(func.sum(_INSTANCES.c.vcpus), 0),
        func.coalesce(func.sum(_INSTANCES.c.memory_mb), 0),
        func.coalesce(func.sum(_INSTANCES.c.root_gb), 0),
    ).where(*on_host)

    def work(session: Session) -> ComputeNode:
        locked = session.execute(
            select(_NODES.c.id)
            .where(_NODES.c.host == host, _NODES.c.deleted == 0)
            .with_for_update()
        ).first()
        if locked is None:
            raise NotFound(f"No live compute_nodes row with host={host!r}")
        vcpus, memory_mb, disk_gb = session.execute(sums).one()
        values = {
            "vcpus_used": int(vcpus),
            "memory_mb_used": int(memory_mb),
            "disk_gb_used": int(disk_gb),
            "updated_at": utcnow(),
        }
        return update_live(session, ComputeNode, values, id=locked.id)

    return db.run(work)
