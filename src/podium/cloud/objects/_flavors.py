"""Flavors: the sizes an instance is built with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Self

from podium.cloud import db as cloud_db
from podium.context import RequestContext
from podium.db.current import get_database
from podium.exceptions import (
    ObjectActionError,
)
from podium.objects import (
    ObjectListBase,
    VersionedObjectRegistry,
    fields,
    remotable,
    remotable_classmethod,
)
from podium.objects.registry import version_tuple

from ._base import CloudObject, SoftDeletedObject, column_values, load_row


@VersionedObjectRegistry.register
class Flavor(CloudObject, SoftDeletedObject):
    # 1.0: initial
    # 1.1: added description
    VERSION = "1.1"

    fields = {
        "id": fields.IntegerField(read_only=True),
        "flavorid": fields.StringField(),
        "name": fields.StringField(),
        "vcpus": fields.NonNegativeIntegerField(),
        "memory_mb": fields.NonNegativeIntegerField(),
        "disk_gb": fields.NonNegativeIntegerField(),
        "is_public": fields.BooleanField(default=True),
        "description": fields.StringField(nullable=True),
    }

    def obj_make_compatible(self, primitive: dict[str, Any], target_version: str) -> None:
        super().obj_make_compatible(primitive, target_version)
        if version_tuple(target_version) < (1, 1):
            primitive.pop("description", None)

    def snapshot(self) -> dict[str, Any]:
        """What an instance keeps of its flavor."""
        return {
            name: getattr(self, name)
            for name in ("flavorid", "name", "vcpus", "memory_mb", "disk_gb", "description")
            if self.obj_attr_is_set(name)
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
            get_database(), self._context, column_values(self.obj_get_changes())
        )
        load_row(self, row, self._context)

    @remotable
    def destroy(self) -> None:
        row = cloud_db.flavor_destroy(get_database(), self._context, self.flavorid)
        load_row(self, row, self._context)


@VersionedObjectRegistry.register
class FlavorList(ObjectListBase[Flavor], CloudObject):
    # 1.0: initial
    # 1.1: Flavor 1.1
    VERSION = "1.1"

    fields = {"objects": fields.ListOfObjectsField("Flavor")}
    obj_relationships = {"objects": [("1.0", "1.0"), ("1.1", "1.1")]}

    @classmethod
    def _from_rows(cls, context: RequestContext, rows: Sequence[Any]) -> Self:
        return cls(context, objects=[Flavor._from_row(context, row) for row in rows])

    @remotable_classmethod
    def get_all(cls, context: RequestContext) -> FlavorList:
        return cls._from_rows(context, cloud_db.flavor_get_all(get_database(), context))
