# Release acacia (the one before this code's), as it shipped: only its imports of the
# modules that changed since point into this directory. Do not edit it to follow later
# changes; a release that shipped does not change.
"""Versioned objects of the reference cloud, backed by :mod:`podium.cloud.db`.

The same ``instance.save()`` runs the SQL on a conductor (or a ``use_local``
process) and becomes an RPC on a worker whose indirection API is set: every
read and write below is remotable, so computes, schedulers and the API, which
hold no database credentials, use exactly this code.

Times that travel as method arguments (a heartbeat's send time) are ISO 8601
strings: what the wire carries for a datetime field too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

from podium.cloud import db as cloud_db
from podium.cloud.models import Instance as InstanceRow
from podium.cloud.models import InstanceFault as InstanceFaultRow
from podium.context import ReadDeleted, RequestContext
from podium.db import Database
from podium.db.current import get_database
from podium.exceptions import (
    DuplicateEntry,
    NotFound,
    ObjectActionError,
    ObjectFieldError,
    PodiumError,
)
from podium.objects import (
    ObjectListBase,
    TimestampedObject,
    VersionedObject,
    VersionedObjectRegistry,
    fields,
    remotable,
    remotable_classmethod,
)

#: Fields whose model attribute has another name.
_ATTRIBUTE = {"metadata": "metadata_"}
#: Columns the database keeps itself; an object never writes them.
_BOOKKEEPING = ("id", "created_at", "updated_at", "deleted_at", "deleted")


class CloudObject(VersionedObject):
    """Base of the cloud's objects: where a worker sets the indirection API."""

    @classmethod
    def _from_row(cls, context: RequestContext, row: Any) -> Self:
        """The object of a row of its table, with no changes pending."""
        obj = cls(context)
        _load(obj, row, context)
        return obj


class SoftDeletedObject(TimestampedObject):
    """Mixin: the columns every podium.db table has (timestamps and soft delete)."""

    fields: ClassVar[dict[str, fields.Field[Any]]] = {
        **TimestampedObject.fields,
        "deleted_at": fields.DateTimeField(nullable=True),
        "deleted": fields.BooleanField(default=False),
    }


def _load(
    obj: VersionedObject, row: Any, context: RequestContext, skip: tuple[str, ...] = ()
) -> None:
    for name in obj.fields:
        if name in skip:
            continue
        value = getattr(row, _ATTRIBUTE.get(name, name))
        if name == "deleted":
            value = bool(value)
        setattr(obj, name, value)
    obj._context = context
    obj.obj_reset_changes()


def _column_values(changes: Mapping[str, Any], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        _ATTRIBUTE.get(name, name): value
        for name, value in changes.items()
        if name not in _BOOKKEEPING and name not in skip
    }


def parse_sent_at(sent_at: str) -> datetime:
    """A send time from a message: ISO 8601, naive meaning UTC."""
    try:
        moment = datetime.fromisoformat(sent_at)
    except (TypeError, ValueError):
        raise ObjectFieldError(f"sent_at must be an ISO 8601 time, not {sent_at!r:.60}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# -- flavors -------------------------------------------------------------------


@VersionedObjectRegistry.register
class Flavor(CloudObject, SoftDeletedObject):
    # 1.0: initial
    VERSION = "1.0"

    fields = {
        "id": fields.IntegerField(read_only=True),
        "flavorid": fields.StringField(),
        "name": fields.StringField(),
        "vcpus": fields.NonNegativeIntegerField(),
        "memory_mb": fields.NonNegativeIntegerField(),
        "disk_gb": fields.NonNegativeIntegerField(),
        "is_public": fields.BooleanField(default=True),
    }

    def snapshot(self) -> dict[str, Any]:
        """What an instance keeps of its flavor."""
        return {
            name: getattr(self, name)
            for name in ("flavorid", "name", "vcpus", "memory_mb", "disk_gb")
        }

    @classmethod
    def from_snapshot(cls, context: RequestContext, snapshot: Mapping[str, Any]) -> Flavor:
        flavor = cls(context, **{name: snapshot[name] for name in snapshot if name in cls.fields})
        flavor.obj_reset_changes()
        return flavor

    @remotable_classmethod
    def get_by_flavor_id(cls, context: RequestContext, flavorid: str) -> Flavor:
        return cls._from_row(
            context, cloud_db.flavor_get_by_flavor_id(get_database(), context, flavorid)
        )

    @remotable
    def create(self) -> None:
        if self.obj_attr_is_set("id"):
            raise ObjectActionError(f"Flavor {self.flavorid} is already created")
        row = cloud_db.flavor_create(
            get_database(), self._context, _column_values(self.obj_get_changes())
        )
        _load(self, row, self._context)

    @remotable
    def destroy(self) -> None:
        row = cloud_db.flavor_destroy(get_database(), self._context, self.flavorid)
        _load(self, row, self._context)


@VersionedObjectRegistry.register
class FlavorList(ObjectListBase[Flavor], CloudObject):
    VERSION = "1.0"

    fields = {"objects": fields.ListOfObjectsField("Flavor")}
    obj_relationships = {"objects": [("1.0", "1.0")]}

    @classmethod
    def _from_rows(cls, context: RequestContext, rows: Sequence[Any]) -> Self:
        return cls(context, objects=[Flavor._from_row(context, row) for row in rows])

    @remotable_classmethod
    def get_all(cls, context: RequestContext) -> FlavorList:
        return cls._from_rows(context, cloud_db.flavor_get_all(get_database(), context))


# -- faults --------------------------------------------------------------------


@VersionedObjectRegistry.register
class InstanceFault(CloudObject, SoftDeletedObject):
    # 1.0: initial
    VERSION = "1.0"

    fields = {
        "id": fields.IntegerField(read_only=True),
        "instance_uuid": fields.UUIDField(),
        "code": fields.IntegerField(default=500),
        "message": fields.StringField(),
        "details": fields.StringField(nullable=True),
        "host": fields.StringField(nullable=True),
    }

    @remotable
    def create(self) -> None:
        if self.obj_attr_is_set("id"):
            raise ObjectActionError(f"Fault {self.id} is already created")
        row = cloud_db.instance_fault_create(
            get_database(), self._context, _column_values(self.obj_get_changes())
        )
        _load(self, row, self._context)

    @remotable_classmethod
    def get_latest_for_instance(
        cls, context: RequestContext, instance_uuid: str
    ) -> InstanceFault | None:
        found = cloud_db.instance_fault_get_latest(get_database(), context, [instance_uuid])
        row = found.get(instance_uuid)
        return None if row is None else cls._from_row(context, row)


# -- instances -----------------------------------------------------------------

#: Instance fields that are not columns of its own: ``flavor`` is stored as a
#: snapshot, ``fault`` is read from instance_faults.
_INSTANCE_DERIVED = ("flavor", "fault")


@VersionedObjectRegistry.register
class Instance(CloudObject, SoftDeletedObject):
    # 1.0: initial
    # 1.1: added node
    # 1.2: added flavor, fault, guest_status, guest_status_at
    VERSION = "1.2"

    fields = {
        "id": fields.IntegerField(read_only=True),
        "uuid": fields.UUIDField(),
        "hostname": fields.StringField(nullable=True),
        "display_name": fields.StringField(nullable=True),
        "project_id": fields.StringField(nullable=True),
        "user_id": fields.StringField(nullable=True),
        "host": fields.StringField(nullable=True),
        "node": fields.StringField(nullable=True),
        "vm_state": fields.StringField(nullable=True),
        "task_state": fields.StringField(nullable=True),
        "power_state": fields.IntegerField(default=0),
        "memory_mb": fields.NonNegativeIntegerField(default=0),
        "vcpus": fields.NonNegativeIntegerField(default=0),
        "root_gb": fields.NonNegativeIntegerField(default=0),
        "image_ref": fields.StringField(nullable=True),
        "launched_at": fields.DateTimeField(nullable=True),
        "terminated_at": fields.DateTimeField(nullable=True),
        "metadata": fields.DictOfNullableStringsField(default={}),
        "flavor": fields.ObjectField("Flavor", nullable=True),
        "fault": fields.ObjectField("InstanceFault", nullable=True),
        "guest_status": fields.StringField(nullable=True),
        "guest_status_at": fields.DateTimeField(nullable=True),
    }
    obj_relationships = {"flavor": [("1.2", "1.0")], "fault": [("1.2", "1.0")]}

    def obj_make_compatible(self, primitive: dict[str, Any], target_version: str) -> None:
        super().obj_make_compatible(primitive, target_version)
        if target_version in ("1.0", "1.1"):
            for name in ("flavor", "fault", "guest_status", "guest_status_at"):
                primitive.pop(name, None)
        if target_version == "1.0":
            primitive.pop("node", None)

    @classmethod
    def _from_row(
        cls,
        context: RequestContext,
        row: InstanceRow,
        fault: InstanceFaultRow | None = None,
    ) -> Instance:
        instance = cls(context)
        instance._load_row(row, fault)
        instance._context = context
        instance.obj_reset_changes()
        return instance

    def _load_row(self, row: InstanceRow, fault: InstanceFaultRow | None = None) -> None:
        _load(self, row, self._context, skip=_INSTANCE_DERIVED)
        snapshot = row.flavor
        self.flavor = None if snapshot is None else Flavor.from_snapshot(self._context, snapshot)
        self.fault = None if fault is None else InstanceFault._from_row(self._context, fault)
        self.obj_reset_changes()

    def _load_fresh(self, row: InstanceRow) -> None:
        fault = None
        if row.vm_state == "error":
            fault = cloud_db.instance_fault_get_latest(
                get_database(), self._context, [row.uuid]
            ).get(row.uuid)
        self._load_row(row, fault)

    @classmethod
    def _fresh(cls, context: RequestContext, row: InstanceRow) -> Instance:
        instance = cls(context)
        instance._load_fresh(row)
        return instance

    @remotable_classmethod
    def get_by_uuid(cls, context: RequestContext, uuid: str) -> Instance:
        return cls._fresh(context, cloud_db.instance_get_by_uuid(get_database(), context, uuid))

    def _values(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        values = _column_values(changes, skip=_INSTANCE_DERIVED)
        if "flavor" in changes:
            values["flavor"] = None if self.flavor is None else self.flavor.snapshot()
        return values

    # A create or destroy run again by hand (not through the bus, whose
    # duplicates the conductor's inbox answers) treats "the row already is what
    # was asked" as success.

    @remotable
    def create(self) -> None:
        if self.obj_attr_is_set("id"):
            raise ObjectActionError(f"Instance {self.uuid} is already created (id {self.id})")
        values = self._values(self.obj_get_changes())
        database = get_database()
        try:
            row = cloud_db.instance_create(database, self._context, values)
        except DuplicateEntry as error:
            row = self._already_stored(error, values, database)
        self._load_fresh(row)

    @remotable
    def save(
        self,
        expected_task_state: str | list[str | None] | None = None,
        expected_vm_state: str | list[str] | None = None,
    ) -> None:
        """Store the changed fields; with an expected state, only if the row is in it.

        A compare-and-swap that finds another state raises
        UnexpectedTaskStateError even when the row already holds these values:
        another writer got there first (two builders of one instance, two
        actions at once), and only one may go on. A redelivered request is
        answered by the conductor's inbox before it gets here.
        """
        changes = self.obj_get_changes()
        changes.pop("id", None)
        changes.pop("fault", None)
        if not changes:
            return
        row = cloud_db.instance_update(
            get_database(),
            self._context,
            self.uuid,
            self._values(changes),
            expected_task_state=expected_task_state,
            expected_vm_state=expected_vm_state,
        )
        self._load_fresh(row)

    @remotable
    def destroy(self) -> None:
        """Soft-delete, giving the host's resources back; set fields are stored first."""
        changes = self.obj_get_changes()
        changes.pop("uuid", None)  # the key, not a change
        values = self._values(changes)
        database = get_database()
        try:
            row = cloud_db.instance_destroy(database, self._context, self.uuid, values)
        except NotFound as error:
            row = self._already_stored(error, values, database, read_deleted="only")
        self._load_fresh(row)

    def _already_stored(
        self,
        error: PodiumError,
        values: Mapping[str, Any],
        database: Database,
        read_deleted: ReadDeleted = "no",
    ) -> InstanceRow:
        """The stored row if it already holds ``values`` (a replayed request), else ``error``."""
        context = replace(self._context, read_deleted=read_deleted)
        try:
            row = cloud_db.instance_get_by_uuid(database, context, self.uuid)
        except NotFound:
            raise error from None
        if not all(row.get(column) == value for column, value in values.items()):
            raise error
        return row

    @remotable
    def refresh(self) -> None:
        self._load_fresh(cloud_db.instance_get_by_uuid(get_database(), self._context, self.uuid))

    @remotable_classmethod
    def record_guest_status(
        cls, context: RequestContext, uuid: str, status: str, sent_at: str
    ) -> bool:
        """Store a guest agent's report unless a newer one is stored; whether it was."""
        return cloud_db.instance_record_guest_status(
            get_database(), context, uuid, status, parse_sent_at(sent_at)
        )


@VersionedObjectRegistry.register
class InstanceList(ObjectListBase[Instance], CloudObject):
    # 1.0: initial, Instance <= 1.0
    # 1.1: Instance 1.1
    # 1.2: Instance 1.2
    VERSION = "1.2"

    fields = {"objects": fields.ListOfObjectsField("Instance")}
    obj_relationships = {"objects": [("1.0", "1.0"), ("1.1", "1.1"), ("1.2", "1.2")]}

    @classmethod
    def _from_rows(cls, context: RequestContext, rows: list[InstanceRow]) -> InstanceList:
        in_error = [row.uuid for row in rows if row.vm_state == "error"]
        faults = cloud_db.instance_fault_get_latest(get_database(), context, in_error)
        return cls(
            context,
            objects=[Instance._from_row(context, row, faults.get(row.uuid)) for row in rows],
        )

    @remotable_classmethod
    def get_all(
        cls,
        context: RequestContext,
        filters: dict[str, Any] | None = None,
        limit: int | None = None,
        marker: str | None = None,
        sort_key: str = "created_at",
        sort_dir: str = "asc",
    ) -> InstanceList:
        if sort_dir not in ("asc", "desc"):
            raise ObjectFieldError(f"sort_dir must be 'asc' or 'desc', not {sort_dir!r:.40}")
        rows = cloud_db.instance_get_all(
            get_database(),
            context,
            filters=filters,
            limit=limit,
            marker=marker,
            sort_key=sort_key,
            sort_dir="asc" if sort_dir == "asc" else "desc",
        )
        return cls._from_rows(context, rows)

    @remotable_classmethod
    def get_by_host(cls, context: RequestContext, host: str) -> InstanceList:
        return cls._from_rows(
            context, cloud_db.instance_get_all_by_host(get_database(), context, host)
        )


# -- compute nodes -------------------------------------------------------------


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


# -- services ------------------------------------------------------------------


@VersionedObjectRegistry.register
class Service(CloudObject, SoftDeletedObject):
    # 1.0: initial
    VERSION = "1.0"

    fields = {
        "id": fields.IntegerField(read_only=True),
        "host": fields.StringField(),
        "binary": fields.StringField(),
        "topic": fields.StringField(nullable=True),
        "report_count": fields.NonNegativeIntegerField(default=0),
        "last_seen_up": fields.DateTimeField(nullable=True),
        "disabled": fields.BooleanField(default=False),
        "disabled_reason": fields.StringField(nullable=True),
        "version": fields.NonNegativeIntegerField(default=0),
        "forced_down": fields.BooleanField(default=False),
    }

    def is_up(self, service_down_time: float, now: datetime | None = None) -> bool:
        """Whether its last heartbeat is younger than ``service_down_time`` seconds."""
        if self.forced_down or self.last_seen_up is None:
            return False
        elapsed = (now or datetime.now(UTC)) - self.last_seen_up
        return bool(elapsed.total_seconds() <= service_down_time)

    @remotable_classmethod
    def report(
        cls,
        context: RequestContext,
        host: str,
        binary: str,
        topic: str | None,
        version: int,
        sent_at: str,
    ) -> Service:
        """A heartbeat sent at ``sent_at``; an older one than stored changes nothing."""
        row, _newer = cloud_db.service_report(
            get_database(), context, host, binary, topic, version, parse_sent_at(sent_at)
        )
        return cls._from_row(context, row)

    @remotable_classmethod
    def get_by_id(cls, context: RequestContext, service_id: int) -> Service:
        return cls._from_row(context, cloud_db.service_get(get_database(), context, service_id))

    @remotable_classmethod
    def get_by_host_and_binary(cls, context: RequestContext, host: str, binary: str) -> Service:
        row = cloud_db.service_get_by_host_and_binary(get_database(), context, host, binary)
        return cls._from_row(context, row)

    @remotable
    def save(self) -> None:
        changes = _column_values(self.obj_get_changes())
        if not changes:
            return
        row = cloud_db.service_update(get_database(), self._context, self.id, changes)
        _load(self, row, self._context)


@VersionedObjectRegistry.register
class ServiceList(ObjectListBase[Service], CloudObject):
    VERSION = "1.0"

    fields = {"objects": fields.ListOfObjectsField("Service")}
    obj_relationships = {"objects": [("1.0", "1.0")]}

    @classmethod
    def _from_rows(cls, context: RequestContext, rows: Sequence[Any]) -> Self:
        return cls(context, objects=[Service._from_row(context, row) for row in rows])

    @remotable_classmethod
    def get_all(cls, context: RequestContext, binary: str | None = None) -> ServiceList:
        rows = cloud_db.service_get_all(get_database(), context, binary=binary)
        return cls._from_rows(context, rows)
