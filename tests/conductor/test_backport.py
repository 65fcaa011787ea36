"""A worker one release behind: it knows Instance 1.0 (no ``node``) only."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from podium.cloud.objects import Instance
from podium.conductor import ConductorAPI, ConductorService
from podium.context import RequestContext
from podium.db import Database
from podium.db.current import use_database
from podium.exceptions import IncompatibleObjectVersion
from podium.objects import (
    ObjectListBase,
    VersionedObject,
    VersionedObjectRegistry,
    VersionedObjectSerializer,
    fields,
    remotable,
    remotable_classmethod,
)
from podium.rpc import Transport


def _old_release() -> tuple[VersionedObjectRegistry, type[VersionedObject], type[Any]]:
    """The object classes as an older service ships them, in their own registry."""
    old = VersionedObjectRegistry()

    class OldCloudObject(VersionedObject):
        pass

    # Instance 1.0: today's fields but those added since (1.1 node; 1.2 flavor,
    # fault, guest_status, guest_status_at).
    new_fields = dict(Instance.fields)
    for added in ("node", "flavor", "fault", "guest_status", "guest_status_at"):
        del new_fields[added]

    class Instance_(OldCloudObject):
        VERSION = "1.0"
        fields = new_fields

        @classmethod
        def obj_name(cls) -> str:
            return "Instance"

        @remotable_classmethod
        def get_by_uuid(cls, context: RequestContext, uuid: str) -> Any:
            raise AssertionError("an old worker never runs this locally")

        @remotable
        def save(self) -> None:
            raise AssertionError("an old worker never runs this locally")

    class InstanceList_(ObjectListBase[Instance_], OldCloudObject):
        VERSION = "1.0"
        fields = {"objects": fields.ListOfObjectsField("Instance")}
        obj_relationships = {"objects": [("1.0", "1.0")]}

        @classmethod
        def obj_name(cls) -> str:
            return "InstanceList"

        @remotable_classmethod
        def get_all(cls, context: RequestContext) -> Any:
            raise AssertionError("an old worker never runs this locally")

    old.register_class(Instance_)
    old.register_class(InstanceList_)
    return old, OldCloudObject, Instance_


@pytest.fixture
def old_worker(transport: Transport, conductor: ConductorService) -> tuple[ConductorAPI, type[Any]]:
    old, base, instance_cls = _old_release()
    api = ConductorAPI(transport, registry=old, timeout=10)
    base.indirection_api = api
    return api, instance_cls


def test_class_methods_answer_at_the_callers_version(
    old_worker: tuple[ConductorAPI, type[Any]], database: Database, ctx: RequestContext
) -> None:
    api, old_instance = old_worker
    new = Instance(ctx, uuid=str(uuid.uuid4()), hostname="vm", node="node-7")
    with use_database(database):
        new.create()  # as a newer service would have

    got = old_instance.get_by_uuid(ctx, new.uuid)
    assert type(got) is old_instance and got.VERSION == "1.0"
    assert got.hostname == "vm" and "node" not in got.fields

    old_list = api.serializer.registry.obj_class_from_name("InstanceList", "1.0")
    assert [type(i) for i in old_list.get_all(ctx)] == [old_instance]

    got.hostname = "renamed"
    got.save()
    with use_database(database):
        stored = Instance.get_by_uuid(ctx, new.uuid)
    assert (stored.hostname, stored.node) == ("renamed", "node-7")


def test_newer_object_received_unasked_is_backported_by_the_conductor(
    old_worker: tuple[ConductorAPI, type[Any]], ctx: RequestContext
) -> None:
    api, old_instance = old_worker
    newer = Instance(ctx, uuid=str(uuid.uuid4()), hostname="vm", node="node-7")
    primitive = newer.obj_to_primitive()
    assert primitive["podium_object.version"] == Instance.VERSION

    without_conductor = VersionedObjectSerializer(registry=api.serializer.registry)
    with pytest.raises(IncompatibleObjectVersion):
        without_conductor.deserialize_entity(ctx, primitive)

    got = api.serializer.deserialize_entity(ctx, {"instances": [primitive]})["instances"][0]
    assert type(got) is old_instance and got.VERSION == "1.0"
    assert got.uuid == newer.uuid and "node" not in got.fields
