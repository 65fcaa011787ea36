"""Compute nodes: what each host offers, and what its instances hold of it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from podium.cloud.exceptions import InstanceInvalidState
from podium.cloud.models import ComputeNode, Instance
from podium.context import RequestContext
from podium.db import Database
from podium.db.api import (
    create,
    get,
    get_one,
    insert_row,
    returns_updates,
    soft_delete,
    update_live,
    update_row,
)
from podium.db.models import table_of
from podium.db.query import model_query, update_values
from podium.db.types import utcnow
from podium.exceptions import DBError, DuplicateEntry, NotFound

_INSTANCES = table_of(Instance)
_NODES = table_of(ComputeNode)


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


def give_back(session: Session, host: str, instance: Any) -> None:
    session.execute(
        update(ComputeNode)
        .where(_NODES.c.host == host, _NODES.c.deleted == 0)
        .values(**_usage_change(instance, -1), updated_at=utcnow()),
        execution_options={"synchronize_session": False},
    )


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

    def work(session: Session) -> ComputeNode:
        row = update_row(session, ComputeNode, values, {"host": host})
        if row is None:
            # The first report: the row is created in the same transaction (on a
            # conductor, one request with one record, never run twice).
            row = insert_row(session, ComputeNode, {"host": host, **totals})
        return row

    try:
        return db.run(work)
    except DuplicateEntry:
        # Two first reports raced (a restart that overlapped its predecessor).
        return db.run(work)


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
        give_back(session, host, row)
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
