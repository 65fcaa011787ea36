"""Instances and the faults recorded against them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

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
    VersionedObjectRegistry,
    fields,
    remotable,
    remotable_classmethod,
)
from podium.objects.registry import version_tuple

from ._base import CloudObject, SoftDeletedObject, column_values, load_row, parse_sent_at
from ._flavors import Flavor


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
            get_database(), self._context, column_values(self.obj_get_changes())
        )
        load_row(self, row, self._context)

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
    # 1.3: added key_name; Flavor 1.1
    VERSION = "1.3"

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
        "key_name": fields.StringField(nullable=True),
    }
    obj_relationships = {
        "flavor": [("1.2", "1.0"), ("1.3", "1.1")],
        "fault": [("1.2", "1.0")],
    }

    def obj_make_compatible(self, primitive: dict[str, Any], target_version: str) -> None:
        super().obj_make_compatible(primitive, target_version)
        target = version_tuple(target_version)
        if target < (1, 3):
            primitive.pop("key_name", None)
        if target < (1, 2):
            for name in ("flavor", "fault", "guest_status", "guest_status_at"):
                primitive.pop(name, None)
        if target < (1, 1):
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
        load_row(self, row, self._context, skip=_INSTANCE_DERIVED)
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
        values = column_values(changes, skip=_INSTANCE_DERIVED)
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
    # 1.3: Instance 1.3
    VERSION = "1.3"

    fields = {"objects": fields.ListOfObjectsField("Instance")}
    obj_relationships = {
        "objects": [("1.0", "1.0"), ("1.1", "1.1"), ("1.2", "1.2"), ("1.3", "1.3")]
    }

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
