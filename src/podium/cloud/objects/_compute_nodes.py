"""Compute nodes: the resources of a host, and their claims."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

from podium.cloud import db as cloud_db
from podium.context import RequestContext
from podium.db.current import get_database
from podium.exceptions import (
    ObjectFieldError,
)
from podium.objects import (
    ObjectListBase,
    VersionedObjectRegistry,
    fields,
    remotable_classmethod,
)

from ._base import CloudObject, SoftDeletedObject


@VersionedObjectRegistry.register
class ComputeNode(CloudObject, SoftDeletedObject):
    # 1.0: initial
    VERSION = "1.0"

    fields = {
        "id": fields.IntegerField(read_only=True),
        "host": fields.StringField(),
        "hypervisor_hostname": fields.StringField(nullable=True),
        "vcpus": fields.NonNegativeIntegerField(default=0),
        "memory_mb": fields.NonNegativeIntegerField(default=0),
        "disk_gb": fields.NonNegativeIntegerField(default=0),
        "vcpus_used": fields.NonNegativeIntegerField(default=0),
        "memory_mb_used": fields.NonNegativeIntegerField(default=0),
        "disk_gb_used": fields.NonNegativeIntegerField(default=0),
    }

    @remotable_classmethod
    def get_by_host(cls, context: RequestContext, host: str) -> ComputeNode:
        row = cloud_db.compute_node_get_by_host(get_database(), context, host)
        return cls._from_row(context, row)

    @remotable_classmethod
    def report(
        cls,
        context: RequestContext,
        host: str,
        vcpus: int,
        memory_mb: int,
        disk_gb: int,
        hypervisor_hostname: str | None = None,
    ) -> ComputeNode:
        """What the host's hypervisor offers (the row is created on the first report)."""
        totals: dict[str, Any] = {
            "vcpus": vcpus,
            "memory_mb": memory_mb,
            "disk_gb": disk_gb,
            "hypervisor_hostname": hypervisor_hostname or host,
        }
        for name in ("vcpus", "memory_mb", "disk_gb"):
            if not isinstance(totals[name], int) or totals[name] < 0:
                raise ObjectFieldError(f"{name} must be a non-negative integer")
        row = cloud_db.compute_node_report(get_database(), context, host, totals)
        return cls._from_row(context, row)

    @remotable_classmethod
    def claim(
        cls,
        context: RequestContext,
        host: str,
        instance_uuid: str,
        ratios: dict[str, float],
    ) -> bool:
        """Give the instance to ``host`` if its flavor still fits there (atomic)."""
        return cloud_db.compute_node_claim(get_database(), context, host, instance_uuid, ratios)

    @remotable_classmethod
    def release(cls, context: RequestContext, host: str, instance_uuid: str) -> bool:
        """Take the instance off ``host``, giving its resources back (atomic, idempotent)."""
        return cloud_db.compute_node_release(get_database(), context, host, instance_uuid)

    @remotable_classmethod
    def reconcile_usage(cls, context: RequestContext, host: str) -> ComputeNode:
        """Recount the used amounts from the live instances on ``host``."""
        row = cloud_db.compute_node_reconcile(get_database(), context, host)
        return cls._from_row(context, row)


@VersionedObjectRegistry.register
class ComputeNodeList(ObjectListBase[ComputeNode], CloudObject):
    VERSION = "1.0"

    fields = {"objects": fields.ListOfObjectsField("ComputeNode")}
    obj_relationships = {"objects": [("1.0", "1.0")]}

    @classmethod
    def _from_rows(cls, context: RequestContext, rows: Sequence[Any]) -> Self:
        return cls(context, objects=[ComputeNode._from_row(context, row) for row in rows])

    @remotable_classmethod
    def get_all(cls, context: RequestContext) -> ComputeNodeList:
        return cls._from_rows(context, cloud_db.compute_node_get_all(get_database(), context))
