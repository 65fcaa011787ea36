"""Versioned objects of the reference control plane, backed by ``podium.db``.

The same ``instance.save()`` runs the SQL on a conductor (or a ``use_local``
process) and becomes an RPC on a worker whose indirection API is set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar

from podium.context import ReadDeleted, RequestContext
from podium.db import Database
from podium.db import api as db_api
from podium.db.current import get_database
from podium.db.models import Instance as InstanceRow
from podium.exceptions import (
    DuplicateEntry,
    NotFound,
    ObjectActionError,
    PodiumError,
    UnexpectedTaskStateError,
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
_INSTANCE_ATTRIBUTE = {"metadata": "metadata_"}


class CloudObject(VersionedObject):
    """Base of the reference app's objects: where a worker sets the indirection API."""


class SoftDeletedObject(TimestampedObject):
    """Mixin: the columns every podium.db table has (timestamps and soft delete)."""

    fields: ClassVar[dict[str, fields.Field[Any]]] = {
        **TimestampedObject.fields,
        "deleted_at": fields.DateTimeField(nullable=True),
        "deleted": fields.BooleanField(default=False),
    }


def _load_from_row(obj: VersionedObject, row: Any, context: RequestContext) -> None:
    for name in obj.fields:
        value = getattr(row, _INSTANCE_ATTRIBUTE.get(name, name))
        if name == "deleted":
            value = bool(value)
        setattr(obj, name, value)
    obj._context = context
    obj.obj_reset_changes()


@VersionedObjectRegistry.register
class Instance(CloudObject, SoftDeletedObject):
    # 1.0: initial
    # 1.1: added node
    VERSION = "1.1"

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
    }

    def obj_make_compatible(self, primitive: dict[str, Any], target_version: str) -> None:
        super().obj_make_compatible(primitive, target_version)
        if target_version == "1.0":
            primitive.pop("node", None)

    @classmethod
    def _from_row(cls, context: RequestContext, row: InstanceRow) -> Instance:
        instance = cls(context)
        _load_from_row(instance, row, context)
        return instance

    @remotable_classmethod
    def get_by_uuid(cls, context: RequestContext, uuid: str) -> Instance:
        return cls._from_row(context, db_api.instance_get_by_uuid(get_database(), context, uuid))

    # The bus delivers at least once: a conductor that dies after committing
    # but before acking has its request run again by another. Each write below
    # therefore treats "the row already is what was asked" as success.

    @remotable
    def create(self) -> None:
        if self.obj_attr_is_set("id"):
            raise ObjectActionError(f"Instance {self.uuid} is already created (id {self.id})")
        values = self._column_values(self.obj_get_changes())
        database = get_database()
        try:
            row = db_api.instance_create(database, self._context, values)
        except DuplicateEntry as error:
            row = self._already_stored(error, values, database)
        _load_from_row(self, row, self._context)

    @remotable
    def save(self, expected_task_state: str | list[str | None] | None = None) -> None:
        changes = self.obj_get_changes()
        changes.pop("id", None)
        if not changes:
            return
        values = self._column_values(changes)
        database = get_database()
        try:
            row = db_api.instance_update(
                database,
                self._context,
                self.uuid,
                values,
                expected_task_state=expected_task_state,
            )
        except UnexpectedTaskStateError as error:
            row = self._already_stored(error, values, database)
        _load_from_row(self, row, self._context)

    @remotable
    def destroy(self) -> None:
        database = get_database()
        try:
            row = db_api.instance_destroy(database, self._context, self.uuid)
        except NotFound as error:
            row = self._already_stored(error, {}, database, read_deleted="only")
        _load_from_row(self, row, self._context)

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
            row = db_api.instance_get_by_uuid(database, context, self.uuid)
        except NotFound:
            raise error from None
        if not all(getattr(row, column) == value for column, value in values.items()):
            raise error
        return row

    @remotable
    def refresh(self) -> None:
        row = db_api.instance_get_by_uuid(get_database(), self._context, self.uuid)
        _load_from_row(self, row, self._context)

    @staticmethod
    def _column_values(changes: Mapping[str, Any]) -> dict[str, Any]:
        values = {_INSTANCE_ATTRIBUTE.get(k, k): v for k, v in changes.items()}
        for stamp in ("created_at", "updated_at", "deleted_at", "deleted"):
            values.pop(stamp, None)
        return values


@VersionedObjectRegistry.register
class InstanceList(ObjectListBase[Instance], CloudObject):
    # 1.0: initial, Instance <= 1.0
    # 1.1: Instance 1.1
    VERSION = "1.1"

    fields = {"objects": fields.ListOfObjectsField("Instance")}
    obj_relationships = {"objects": [("1.0", "1.0"), ("1.1", "1.1")]}

    @classmethod
    def _from_rows(cls, context: RequestContext, rows: list[InstanceRow]) -> InstanceList:
        return cls(context, objects=[Instance._from_row(context, row) for row in rows])

    @remotable_classmethod
    def get_all(
        cls,
        context: RequestContext,
        filters: dict[str, Any] | None = None,
        limit: int | None = None,
        marker: str | None = None,
    ) -> InstanceList:
        rows = db_api.instance_get_all(
            get_database(), context, filters=filters, limit=limit, marker=marker
        )
        return cls._from_rows(context, rows)

    @remotable_classmethod
    def get_by_host(cls, context: RequestContext, host: str) -> InstanceList:
        return cls._from_rows(
            context, db_api.instance_get_all_by_host(get_database(), context, host)
        )
