"""Interop with the real oslo.versionedobjects, both ways, in oslo's wire format.

A podium class hierarchy whose base sets ``OBJ_SERIAL_NAMESPACE =
'versioned_object'`` and ``OBJ_PROJECT_NAMESPACE = 'versionedobjects'`` talks
to oslo classes of the same names and fields. Every hop goes through JSON.
"""

from __future__ import annotations

import datetime
import json
import warnings
from typing import Any

import pytest

from podium.context import RequestContext
from podium.objects import (
    ObjectListBase,
    VersionedObject,
    VersionedObjectRegistry,
    VersionedObjectSerializer,
    fields,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from oslo_versionedobjects import base as obase
    from oslo_versionedobjects import fields as ofields

pytestmark = pytest.mark.interop

UTC = datetime.UTC
WHEN = datetime.datetime(2026, 11, 26, 1, 2, 3, tzinfo=UTC)
UUID1 = "6f1c2b7e-9a9d-4a4e-8d3c-0d0f5b1e2a11"


# -- podium side ------------------------------------------------------------------


class OsloWire(VersionedObject):
    """Base class that speaks oslo.versionedobjects' wire format."""

    OBJ_SERIAL_NAMESPACE = "versioned_object"
    OBJ_PROJECT_NAMESPACE = "versionedobjects"


class OsloWireSerializer(VersionedObjectSerializer):
    OBJ_BASE_CLASS = OsloWire


PNEW = VersionedObjectRegistry()  # podium with Flavor 1.1
POLD = VersionedObjectRegistry()  # podium that only knows Flavor 1.0


def podium_flavor_fields(swap: bool) -> dict[str, fields.Field[Any]]:
    result: dict[str, fields.Field[Any]] = {
        "flavorid": fields.IntegerField(),
        "name": fields.StringField(),
    }
    if swap:
        result["swap"] = fields.IntegerField(default=0)
    return result


@PNEW.register
class IopFlavor(OsloWire):
    VERSION = "1.1"
    fields = podium_flavor_fields(swap=True)

    def obj_make_compatible(self, primitive: dict[str, Any], target_version: str) -> None:
        super().obj_make_compatible(primitive, target_version)
        if target_version == "1.0":
            primitive.pop("swap", None)


PodiumFlavor11 = IopFlavor


@POLD.register  # type: ignore[no-redef]
class IopFlavor(OsloWire):
    VERSION = "1.0"
    fields = podium_flavor_fields(swap=False)


PodiumFlavor10 = IopFlavor

INSTANCE_FIELDS: dict[str, fields.Field[Any]] = {
    "id": fields.IntegerField(),
    "uuid": fields.UUIDField(),
    "host": fields.StringField(nullable=True),
    "vcpus": fields.IntegerField(default=1),
    "ratio": fields.FloatField(),
    "locked": fields.BooleanField(),
    "created_at": fields.DateTimeField(),
    "deleted_at": fields.DateTimeField(nullable=True),
    "tags": fields.ListOfStringsField(),
    "ports": fields.SetOfIntegersField(),
    "meta": fields.DictOfStringsField(),
    "state": fields.EnumField(["building", "active"]),
    "ip": fields.IPAddressField(),
    "net": fields.IPNetworkField(),
    "flavor": fields.ObjectField("IopFlavor", nullable=True),
}


def podium_instance_class(registry: VersionedObjectRegistry) -> type[VersionedObject]:
    @registry.register
    class IopInstance(OsloWire):
        VERSION = "1.2"
        fields = INSTANCE_FIELDS
        obj_relationships = {"flavor": [("1.0", "1.0"), ("1.2", "1.1")]}

    @registry.register
    class IopInstanceList(ObjectListBase[Any], OsloWire):
        fields = {"objects": fields.ListOfObjectsField("IopInstance")}

    return IopInstance


PodiumInstance = podium_instance_class(PNEW)
PodiumOldInstance = podium_instance_class(POLD)


# -- oslo side (its global registry; both Flavor versions, as oslo keeps them) ---


def oslo_flavor_fields(swap: bool) -> dict[str, Any]:
    result = {"flavorid": ofields.IntegerField(), "name": ofields.StringField()}
    if swap:
        result["swap"] = ofields.IntegerField(default=0)
    return result


@obase.VersionedObjectRegistry.register
class OsloFlavor10(obase.VersionedObject):
    VERSION = "1.0"
    fields = oslo_flavor_fields(swap=False)

    @classmethod
    def obj_name(cls) -> str:
        return "IopFlavor"


@obase.VersionedObjectRegistry.register
class OsloFlavor11(obase.VersionedObject):
    VERSION = "1.1"
    fields = oslo_flavor_fields(swap=True)

    @classmethod
    def obj_name(cls) -> str:
        return "IopFlavor"

    def obj_make_compatible(self, primitive: dict[str, Any], target_version: str) -> None:
        super().obj_make_compatible(primitive, target_version)
        if target_version == "1.0":
            primitive.pop("swap", None)


@obase.VersionedObjectRegistry.register
class OsloInstance(obase.VersionedObject):
    VERSION = "1.2"
    fields = {
        "id": ofields.IntegerField(),
        "uuid": ofields.UUIDField(),
        "host": ofields.StringField(nullable=True),
        "vcpus": ofields.IntegerField(default=1),
        "ratio": ofields.FloatField(),
        "locked": ofields.BooleanField(),
        "created_at": ofields.DateTimeField(),
        "deleted_at": ofields.DateTimeField(nullable=True),
        "tags": ofields.ListOfStringsField(),
        "ports": ofields.SetOfIntegersField(),
        "meta": ofields.DictOfStringsField(),
        "state": ofields.EnumField(["building", "active"]),
        "ip": ofields.IPAddressField(),
        "net": ofields.IPNetworkField(),
        "flavor": ofields.ObjectField("IopFlavor", nullable=True),
    }
    obj_relationships = {"flavor": [("1.0", "1.0"), ("1.2", "1.1")]}

    @classmethod
    def obj_name(cls) -> str:
        return "IopInstance"


@obase.VersionedObjectRegistry.register
class OsloInstanceList(obase.ObjectListBase, obase.VersionedObject):
    fields = {"objects": ofields.ListOfObjectsField("IopInstance")}

    @classmethod
    def obj_name(cls) -> str:
        return "IopInstanceList"


def values(**extra: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "id": 7,
        "uuid": UUID1,
        "host": None,
        "ratio": 1.5,
        "locked": True,
        "created_at": WHEN,
        "deleted_at": None,
        "tags": ["a", "b"],
        "ports": {22, 80},
        "meta": {"k": "v"},
        "state": "active",
        "ip": "10.0.0.1",
        "net": "10.0.0.0/24",
    }
    result.update(extra)
    return result


def wire(primitive: Any) -> Any:
    """Through JSON, as on the bus (oslo.messaging uses the stdlib json)."""
    return json.loads(json.dumps(primitive))


def plain(value: Any) -> Any:
    """A comparable form of a field value on either side (netaddr vs ipaddress)."""
    if type(value).__module__.startswith(("netaddr", "ipaddress")):
        return str(value)
    return value


def assert_same(podium_obj: Any, oslo_obj: Any) -> None:
    assert podium_obj.obj_name() == oslo_obj.obj_name()
    assert podium_obj.VERSION == oslo_obj.VERSION
    for name in podium_obj.fields:
        assert podium_obj.obj_attr_is_set(name) == oslo_obj.obj_attr_is_set(name), name
        if not podium_obj.obj_attr_is_set(name):
            continue
        mine, theirs = getattr(podium_obj, name), getattr(oslo_obj, name)
        if hasattr(mine, "obj_name"):
            assert_same(mine, theirs)
        else:
            assert plain(mine) == plain(theirs), name
    assert podium_obj.obj_what_changed() == oslo_obj.obj_what_changed()


def normalised(primitive: Any) -> Any:
    """Order-free form: change lists and set fields compared as sets."""
    if isinstance(primitive, dict):
        return {
            key: (
                frozenset(value)
                if key.endswith(".changes") or key == "ports"
                else normalised(value)
            )
            for key, value in primitive.items()
        }
    if isinstance(primitive, list):
        return [normalised(item) for item in primitive]
    return primitive


# -- the tests ---------------------------------------------------------------------------


def test_podium_primitive_deserializes_in_oslo() -> None:
    obj = PodiumInstance(**values(flavor=PodiumFlavor11(flavorid=1, name="m1", swap=2)))
    obj.obj_reset_changes(["id", "ratio"])
    obj.flavor.obj_reset_changes(["flavorid"])
    theirs = obase.VersionedObject.obj_from_primitive(wire(obj.obj_to_primitive()))
    assert isinstance(theirs, OsloInstance)
    assert isinstance(theirs.flavor, OsloFlavor11)
    assert_same(obj, theirs)
    # And oslo writes back exactly what podium wrote (up to set ordering).
    assert normalised(wire(theirs.obj_to_primitive())) == normalised(wire(obj.obj_to_primitive()))


def test_oslo_primitive_deserializes_in_podium() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # oslo's UUIDField may warn; not our concern here
        theirs = OsloInstance(**values(host="h", flavor=OsloFlavor11(flavorid=2, name="m2")))
    theirs.obj_reset_changes(["tags"])
    ctx = RequestContext()
    mine = OsloWire.obj_from_primitive(wire(theirs.obj_to_primitive()), ctx, registry=PNEW)
    assert isinstance(mine, PodiumInstance)
    assert mine._context is ctx
    assert_same(mine, theirs)
    assert normalised(wire(mine.obj_to_primitive())) == normalised(wire(theirs.obj_to_primitive()))


def test_lists_of_objects_both_ways() -> None:
    ours = PNEW.newest("IopInstanceList")(
        objects=[PodiumInstance(**values(id=i, flavor=None)) for i in range(3)]
    )
    theirs = obase.VersionedObject.obj_from_primitive(wire(ours.obj_to_primitive()))
    assert isinstance(theirs, OsloInstanceList)
    assert [o.id for o in theirs] == [0, 1, 2]
    back = OsloWire.obj_from_primitive(wire(theirs.obj_to_primitive()), registry=PNEW)
    assert [o.id for o in back] == [0, 1, 2]
    assert back.obj_what_changed() == theirs.obj_what_changed()


def test_podium_backports_a_child_for_an_older_oslo_reader() -> None:
    obj = PodiumInstance(**values(flavor=PodiumFlavor11(flavorid=1, name="m1", swap=9)))
    manifest = {"IopInstance": "1.2", "IopFlavor": "1.0"}
    theirs = obase.VersionedObject.obj_from_primitive(
        wire(obj.obj_to_primitive(version_manifest=manifest))
    )
    assert isinstance(theirs.flavor, OsloFlavor10)
    assert "swap" not in theirs.flavor.fields
    assert theirs.flavor.name == "m1"
    # The same through obj_relationships: Instance 1.0 pairs with Flavor 1.0.
    primitive = wire(obj.obj_to_primitive("1.0"))
    flavor = primitive["versioned_object.data"]["flavor"]
    assert flavor["versioned_object.version"] == "1.0"
    assert "swap" not in flavor["versioned_object.data"]
    theirs_10 = obase.VersionedObject.obj_from_primitive(primitive)
    assert isinstance(theirs_10.flavor, OsloFlavor10)


def test_oslo_backports_a_child_for_an_older_podium_reader() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = OsloInstance(**values(flavor=OsloFlavor11(flavorid=4, name="m4", swap=1)))
    manifest = {"IopInstance": "1.2", "IopFlavor": "1.0"}
    primitive = wire(theirs.obj_to_primitive(version_manifest=manifest))
    mine = OsloWire.obj_from_primitive(primitive, registry=POLD)
    assert isinstance(mine, PodiumOldInstance)
    assert isinstance(mine.flavor, PodiumFlavor10)
    assert mine.flavor.flavorid == 4
    # Without the backport the old podium reader refuses the newer child clearly.
    from podium.exceptions import IncompatibleObjectVersion

    with pytest.raises(IncompatibleObjectVersion):
        OsloWire.obj_from_primitive(wire(theirs.obj_to_primitive()), registry=POLD)


class OsloConductor:
    """An indirection API whose server side is oslo.versionedobjects itself."""

    def __init__(self) -> None:
        self.calls: list[dict[str, str]] = []

    def object_backport_versions(
        self, context: Any, objinst: dict[str, Any], object_versions: dict[str, str]
    ) -> Any:
        self.calls.append(object_versions)
        obj = obase.VersionedObject.obj_from_primitive(wire(objinst))
        return wire(
            obj.obj_to_primitive(
                target_version=object_versions[obj.obj_name()], version_manifest=object_versions
            )
        )

    def object_action(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("not used")

    def object_class_action_versions(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("not used")


def test_podium_serializer_gets_a_backport_from_an_oslo_conductor() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = OsloFlavor11(flavorid=5, name="m5", swap=3)
    conductor = OsloConductor()
    serializer = OsloWireSerializer(registry=POLD, indirection_api=conductor)
    result = serializer.deserialize_entity(
        RequestContext(), {"flavor": wire(theirs.obj_to_primitive())}
    )
    assert isinstance(result["flavor"], PodiumFlavor10)
    assert result["flavor"].name == "m5"
    assert conductor.calls == [{"IopFlavor": "1.0"}]


def test_oslo_serializer_reads_what_the_podium_serializer_wrote() -> None:
    obj = PodiumInstance(**values(flavor=PodiumFlavor11(flavorid=1, name="m1")))
    ours = OsloWireSerializer(registry=PNEW)
    payload = wire(ours.serialize_entity(None, {"instances": [obj], "count": 1}))
    theirs = obase.VersionedObjectSerializer().deserialize_entity(None, payload)
    assert isinstance(theirs["instances"][0], OsloInstance)
    assert_same(obj, theirs["instances"][0])
    back = ours.deserialize_entity(
        None, wire(obase.VersionedObjectSerializer().serialize_entity(None, theirs))
    )
    assert_same(back["instances"][0], theirs["instances"][0])
