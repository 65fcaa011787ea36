"""Points 1, 3, 4, 5, 6: the object base, registry, primitives, backports and lists."""

from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest

from podium.context import RequestContext
from podium.exceptions import (
    IncompatibleObjectVersion,
    ObjectActionError,
    ObjectAttributeNotSet,
    ObjectFieldError,
    ObjectFormatError,
    PodiumError,
    UnsupportedObjectError,
)
from podium.objects import (
    ComparableVersionedObject,
    ObjectListBase,
    VersionedObject,
    VersionedObjectRegistry,
    fields,
    obj_equal_prims,
    obj_tree_get_versions,
)

UTC = datetime.UTC
REG = VersionedObjectRegistry()


@REG.register
class Flavor(VersionedObject):
    VERSION = "1.1"
    fields = {
        "flavorid": fields.IntegerField(),
        "name": fields.StringField(),
        "swap": fields.IntegerField(default=0),  # added in 1.1
    }

    def obj_make_compatible(self, primitive: dict[str, Any], target_version: str) -> None:
        super().obj_make_compatible(primitive, target_version)
        if target_version == "1.0":
            primitive.pop("swap", None)


@REG.register
class Flavor10(VersionedObject):
    """The 1.0 class of Flavor, as an older service still has it."""

    VERSION = "1.0"
    fields = {"flavorid": fields.IntegerField(), "name": fields.StringField()}

    @classmethod
    def obj_name(cls) -> str:
        return "Flavor"


@REG.register
class Instance(VersionedObject):
    VERSION = "1.2"
    fields = {
        "id": fields.IntegerField(read_only=True),
        "uuid": fields.UUIDField(),
        "host": fields.StringField(nullable=True),
        "vcpus": fields.IntegerField(default=1),
        "tags": fields.ListOfStringsField(default=[]),
        "created_at": fields.DateTimeField(nullable=True),
        "flavor": fields.ObjectField("Flavor", nullable=True),
    }
    # Instance 1.1 added flavor (at Flavor 1.0); Instance 1.2 moved to Flavor 1.1.
    obj_relationships = {"flavor": [("1.1", "1.0"), ("1.2", "1.1")]}


@REG.register
class InstanceList(ObjectListBase[Instance]):
    VERSION = "1.1"
    fields = {"objects": fields.ListOfObjectsField("Instance")}
    child_versions = {"1.0": "1.1", "1.1": "1.2"}


UUID1 = "11111111-1111-1111-1111-111111111111"
UUID2 = "22222222-2222-2222-2222-222222222222"


def make_instance(**extra: Any) -> Instance:
    values: dict[str, Any] = {
        "id": 1,
        "uuid": UUID1,
        "host": "h1",
        "flavor": Flavor(flavorid=3, name="m1", swap=5),
    }
    values.update(extra)
    return Instance(RequestContext(), **values)


# -- 1. the object base -------------------------------------------------------


def test_name_version_fields_and_context() -> None:
    ctx = RequestContext()
    inst = Instance(ctx, id=1)
    assert Instance.obj_name() == "Instance"
    assert inst.VERSION == "1.2"
    assert inst._context is ctx
    assert inst.obj_context is ctx
    assert inst.obj_attr_is_set("id")
    assert not inst.obj_attr_is_set("host")
    assert "id" in inst and "host" not in inst
    with pytest.raises(ObjectAttributeNotSet, match="no field 'nope'"):
        inst.obj_attr_is_set("nope")


def test_unknown_constructor_argument_is_refused() -> None:
    with pytest.raises(ObjectFieldError, match="Instance has no field 'colour'"):
        Instance(colour="red")


def test_reading_an_unset_field_raises_never_none() -> None:
    inst = Instance()
    with pytest.raises(ObjectAttributeNotSet, match=r"Instance\.host is not set.*lazy"):
        _ = inst.host
    assert not hasattr(inst, "host")


def test_lazy_loading_hook() -> None:
    registry = VersionedObjectRegistry()

    @registry.register
    class Lazy(VersionedObject):
        fields = {"a": fields.IntegerField(), "b": fields.IntegerField()}
        loads: list[str] = []

        def obj_load_attr(self, attrname: str) -> None:
            self.loads.append(attrname)
            if attrname == "a":
                self.a = 42

    obj = Lazy()
    assert obj.a == 42
    assert obj.a == 42
    assert Lazy.loads == ["a"]
    with pytest.raises(ObjectAttributeNotSet, match=r"Lazy\.b is still unset"):
        _ = obj.b


def test_change_tracking() -> None:
    inst = make_instance()
    assert inst.obj_what_changed() == {"id", "uuid", "host", "flavor"}
    inst.obj_reset_changes(recursive=True)
    assert inst.obj_what_changed() == set()
    inst.host = "h2"
    assert inst.obj_get_changes() == {"host": "h2"}
    inst.obj_reset_changes(["host"])
    assert inst.obj_get_changes() == {}


def test_what_changed_includes_fields_whose_children_changed() -> None:
    inst = make_instance()
    inst.obj_reset_changes()
    assert inst.obj_what_changed() == {"flavor"}, "the child was built with changes"
    inst.flavor.obj_reset_changes()
    assert inst.obj_what_changed() == set()
    inst.flavor.name = "m2"
    assert inst.obj_what_changed() == {"flavor"}
    inst.obj_reset_changes()
    assert inst.obj_what_changed() == {"flavor"}, "a plain reset leaves the child's changes"
    inst.obj_reset_changes(recursive=True)
    assert inst.obj_what_changed() == set()
    assert inst.flavor.obj_what_changed() == set()


def test_reset_recursive_limited_to_fields() -> None:
    inst = make_instance()
    inst.obj_reset_changes(["host"], recursive=True)
    assert "flavor" in inst.obj_what_changed()
    inst.obj_reset_changes(["flavor"], recursive=True)
    assert inst.flavor.obj_what_changed() == set()


def test_clone_is_deep_and_keeps_changes_and_context() -> None:
    inst = make_instance(tags=["a"])
    inst.obj_reset_changes(["uuid"])
    clone = inst.obj_clone()
    assert clone is not inst
    assert clone._context is inst._context
    assert clone.obj_what_changed() == inst.obj_what_changed()
    assert clone.flavor is not inst.flavor
    clone.tags.append("b")
    clone.flavor.name = "other"
    assert inst.tags == ["a"]
    assert inst.flavor.name == "m1"
    assert copy.deepcopy(inst).obj_to_primitive() == inst.obj_to_primitive()


def test_set_defaults() -> None:
    inst = Instance()
    inst.obj_set_defaults("vcpus")
    assert inst.vcpus == 1
    assert not inst.obj_attr_is_set("tags")
    inst.vcpus = 4
    inst.obj_set_defaults()
    assert inst.vcpus == 4
    assert inst.tags == []
    first = Instance()
    first.obj_set_defaults("tags")
    first.tags.append("x")
    second = Instance()
    second.obj_set_defaults("tags")
    assert second.tags == [], "defaults are copied, never shared"
    with pytest.raises(ObjectActionError, match=r"Instance\.host has no default"):
        inst.obj_set_defaults("host")


def test_delete_field() -> None:
    inst = make_instance()
    del inst.host
    assert not inst.obj_attr_is_set("host")
    with pytest.raises(ObjectAttributeNotSet):
        del inst.host


def test_equality_helpers() -> None:
    a, b = make_instance(), make_instance()
    assert a != b, "plain objects compare by identity, as in oslo"
    assert obj_equal_prims(a, b)
    b.host = "other"
    assert not obj_equal_prims(a, b)
    assert obj_equal_prims(a, b, ignore=["host"])

    registry = VersionedObjectRegistry()

    @registry.register
    class Point(ComparableVersionedObject, VersionedObject):
        fields = {"x": fields.IntegerField()}

    assert Point(x=1) == Point(x=1)
    assert Point(x=1) != Point(x=2)


def test_repr_shows_values_and_unset_marker() -> None:
    text = repr(Instance(id=1, flavor=Flavor(flavorid=2, name="m")))
    assert text.startswith("Instance(")
    assert "id=1" in text and "host=<?>" in text and "flavor=Flavor" in text


def test_bad_field_declarations_are_refused() -> None:
    with pytest.raises(TypeError, match="not a Field"):

        class Bad(VersionedObject):
            fields = {"x": int}  # type: ignore[dict-item]

    with pytest.raises(TypeError, match="cannot be a field name"):

        class Clash(VersionedObject):
            fields = {"obj_name": fields.StringField()}


def test_fields_are_inherited() -> None:
    class Base(VersionedObject):
        fields = {"a": fields.IntegerField()}

    class Sub(Base):
        fields = {"b": fields.IntegerField()}

    assert set(Sub.fields) == {"a", "b"}
    assert Sub(a=1, b=2).obj_to_primitive()["podium_object.data"] == {"a": 1, "b": 2}


# -- 3. the registry ------------------------------------------------------------


def test_registry_picks_exact_then_newest_compatible() -> None:
    assert REG.obj_class_from_name("Flavor", "1.1") is Flavor
    assert REG.obj_class_from_name("Flavor", "1.0") is Flavor10
    registry = VersionedObjectRegistry()
    registry.register(Flavor)
    assert registry.obj_class_from_name("Flavor", "1.0") is Flavor, "1.1 reads 1.0"
    with pytest.raises(IncompatibleObjectVersion, match=r"newest known is 1\.1") as info:
        registry.obj_class_from_name("Flavor", "1.2")
    assert info.value.supported == "1.1"
    with pytest.raises(IncompatibleObjectVersion):
        registry.obj_class_from_name("Flavor", "2.0")
    with pytest.raises(UnsupportedObjectError, match="unregistered"):
        registry.obj_class_from_name("Nope", "1.0")
    with pytest.raises(ObjectFormatError, match="malformed"):
        registry.obj_class_from_name("Flavor", "one")


def test_registry_keeps_every_version_newest_first() -> None:
    assert [c.VERSION for c in REG.obj_classes()["Flavor"]] == ["1.1", "1.0"]


def test_reregistering_a_version_replaces_it() -> None:
    registry = VersionedObjectRegistry()

    @registry.register
    class Thing(VersionedObject):
        pass

    first = Thing

    @registry.register  # type: ignore[no-redef]
    class Thing(VersionedObject):
        pass

    assert registry.obj_classes()["Thing"] == [Thing]
    assert registry.obj_classes()["Thing"][0] is not first


def test_registries_are_separate_and_the_class_form_uses_the_default() -> None:
    from podium.objects import default_registry
    from podium.objects.fixture import isolated_default_registry

    with isolated_default_registry() as isolated:
        _check_separate_registries()
    assert "PodiumTestOnlyDefault" in isolated
    assert "PodiumTestOnlyDefault" not in default_registry(), "nothing leaked"


def _check_separate_registries() -> None:
    from podium.objects import default_registry

    local = VersionedObjectRegistry()

    @local.register
    class OnlyLocal(VersionedObject):
        pass

    assert "OnlyLocal" in local
    assert "OnlyLocal" not in default_registry()

    @VersionedObjectRegistry.register
    class PodiumTestOnlyDefault(VersionedObject):
        pass

    assert "PodiumTestOnlyDefault" in default_registry()
    assert "PodiumTestOnlyDefault" not in local
    assert VersionedObjectRegistry.obj_classes()["PodiumTestOnlyDefault"] == [PodiumTestOnlyDefault]


def test_register_if_and_hook() -> None:
    calls: list[tuple[str, int]] = []

    class Hooked(VersionedObjectRegistry):
        def registration_hook(self, cls: type[VersionedObject], index: int) -> None:
            calls.append((cls.VERSION, index))

    registry = Hooked()

    @registry.register_if(False)
    class Skipped(VersionedObject):
        pass

    @registry.register_if(True)
    class Kept(VersionedObject):
        VERSION = "1.1"

    assert "Skipped" not in registry
    assert calls == [("1.1", 0)]
    with pytest.raises(TypeError):
        registry.register(int)  # type: ignore[type-var]


def test_old_and_new_instance_side_by_side() -> None:
    old, new = VersionedObjectRegistry(), VersionedObjectRegistry()

    @old.register
    class Server(VersionedObject):
        VERSION = "1.0"
        fields = {"name": fields.StringField()}

    OldServer = Server

    @new.register  # type: ignore[no-redef]
    class Server(VersionedObject):
        VERSION = "1.1"
        fields = {"name": fields.StringField(), "locked": fields.BooleanField(default=False)}

        def obj_make_compatible(self, primitive: dict[str, Any], target_version: str) -> None:
            if target_version == "1.0":
                primitive.pop("locked", None)

    NewServer = Server
    newer = NewServer(name="a", locked=True)
    with pytest.raises(IncompatibleObjectVersion):
        VersionedObject.obj_from_primitive(newer.obj_to_primitive(), registry=old)
    back = VersionedObject.obj_from_primitive(newer.obj_to_primitive("1.0"), registry=old)
    assert type(back) is OldServer and back.name == "a"
    # The new side reads the old primitive with its newer class.
    forward = VersionedObject.obj_from_primitive(
        OldServer(name="b").obj_to_primitive(), registry=new
    )
    assert type(forward) is NewServer and forward.VERSION == "1.0" and forward.name == "b"
    # A class remembers its registry: no need to pass it.
    assert type(OldServer.obj_from_primitive(newer.obj_to_primitive("1.0"))) is OldServer


# -- 4. primitives ----------------------------------------------------------------


def test_primitive_format() -> None:
    inst = make_instance(created_at=datetime.datetime(2020, 1, 1, tzinfo=UTC))
    inst.obj_reset_changes(["id", "uuid", "created_at"])
    primitive = inst.obj_to_primitive()
    assert primitive == {
        "podium_object.name": "Instance",
        "podium_object.namespace": "podium",
        "podium_object.version": "1.2",
        "podium_object.data": {
            "id": 1,
            "uuid": UUID1,
            "host": "h1",
            "created_at": "2020-01-01T00:00:00Z",
            "flavor": {
                "podium_object.name": "Flavor",
                "podium_object.namespace": "podium",
                "podium_object.version": "1.1",
                "podium_object.data": {"flavorid": 3, "name": "m1", "swap": 5},
                "podium_object.changes": ["flavorid", "name", "swap"],
            },
        },
        "podium_object.changes": ["host", "flavor"],
    }


def test_from_primitive_restores_values_changes_context() -> None:
    inst = make_instance()
    inst.obj_reset_changes(["id"])
    ctx = RequestContext()
    back = VersionedObject.obj_from_primitive(inst.obj_to_primitive(), ctx, REG)
    assert isinstance(back, Instance)
    assert back._context is ctx
    assert back.flavor._context is ctx
    assert back.obj_what_changed() == inst.obj_what_changed()
    assert back.flavor.obj_what_changed() == inst.flavor.obj_what_changed()
    assert back.obj_to_primitive() == inst.obj_to_primitive()


def test_namespaces_are_per_base_class() -> None:
    class OsloStyle(VersionedObject):
        OBJ_SERIAL_NAMESPACE = "versioned_object"
        OBJ_PROJECT_NAMESPACE = "versionedobjects"

    registry = VersionedObjectRegistry()

    @registry.register
    class Gadget(OsloStyle):
        fields = {"n": fields.IntegerField()}

    primitive = Gadget(n=1).obj_to_primitive()
    assert primitive == {
        "versioned_object.name": "Gadget",
        "versioned_object.namespace": "versionedobjects",
        "versioned_object.version": "1.0",
        "versioned_object.data": {"n": 1},
        "versioned_object.changes": ["n"],
    }
    assert OsloStyle.obj_from_primitive(primitive, registry=registry).n == 1
    # A podium reader refuses it: wrong keys; a podium-keyed primitive with the
    # oslo project namespace is refused as unsupported.
    with pytest.raises(ObjectFormatError):
        VersionedObject.obj_from_primitive(primitive, registry=registry)
    wrong_ns = {
        "podium_object.name": "Gadget",
        "podium_object.namespace": "versionedobjects",
        "podium_object.version": "1.0",
        "podium_object.data": {},
    }
    with pytest.raises(UnsupportedObjectError, match="namespace"):
        VersionedObject.obj_from_primitive(wrong_ns, registry=registry)


GOOD_PRIMITIVE = {
    "podium_object.name": "Flavor",
    "podium_object.namespace": "podium",
    "podium_object.version": "1.1",
    "podium_object.data": {"flavorid": 1, "name": "m"},
}


def _mutated(**changes: Any) -> Any:
    primitive: dict[str, Any] = dict(GOOD_PRIMITIVE)
    for key, value in changes.items():
        full = f"podium_object.{key}"
        if value is KeyError:
            del primitive[full]
        else:
            primitive[full] = value
    return primitive


@pytest.mark.parametrize(
    ("primitive", "error", "match"),
    [
        (None, ObjectFormatError, "must be a dict"),
        ([1, 2], ObjectFormatError, "must be a dict"),
        ("text", ObjectFormatError, "must be a dict"),
        (_mutated(name=KeyError), ObjectFormatError, "podium_object.name"),
        (_mutated(namespace=KeyError), ObjectFormatError, "podium_object.namespace"),
        (_mutated(version=KeyError), ObjectFormatError, "podium_object.version"),
        (_mutated(data=KeyError), ObjectFormatError, "podium_object.data"),
        (_mutated(namespace="nova"), UnsupportedObjectError, "namespace 'nova'"),
        (_mutated(name="Unknown"), UnsupportedObjectError, "unregistered object type 'Unknown'"),
        (_mutated(name=["Flavor"]), ObjectFormatError, "must be strings"),
        (_mutated(name={"a": 1}), ObjectFormatError, "must be strings"),
        (_mutated(version=1.1), ObjectFormatError, "must be strings"),
        (_mutated(version="1.x"), ObjectFormatError, "malformed"),
        (_mutated(version="1.9"), IncompatibleObjectVersion, "1.9 of Flavor"),
        (_mutated(version="2.0"), IncompatibleObjectVersion, "2.0 of Flavor"),
        (_mutated(data=[1]), ObjectFormatError, "must be a dict"),
        (_mutated(data={"flavorid": "x", "name": "m"}), ObjectFieldError, r"Flavor\.flavorid"),
        (_mutated(data={"flavorid": None, "name": "m"}), ObjectFieldError, r"Flavor\.flavorid"),
        (_mutated(data={"flavorid": {"a": 1}, "name": "m"}), ObjectFieldError, r"Flavor\.flavorid"),
        (_mutated(changes="name"), ObjectFormatError, "changes"),
        (_mutated(changes=[["name"]]), ObjectFormatError, "changes"),
        (_mutated(changes={"name": 1}), ObjectFormatError, "changes"),
    ],
)
def test_bad_primitives_raise_podium_errors(
    primitive: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        VersionedObject.obj_from_primitive(primitive, registry=REG)


def test_bad_nested_primitive_is_a_podium_error() -> None:
    primitive = make_instance().obj_to_primitive()
    primitive["podium_object.data"]["flavor"]["podium_object.name"] = "Instance"
    with pytest.raises(ObjectFieldError, match="Flavor"):
        VersionedObject.obj_from_primitive(primitive, registry=REG)
    primitive["podium_object.data"]["flavor"] = {"podium_object.name": "Flavor"}
    with pytest.raises(ObjectFormatError):
        VersionedObject.obj_from_primitive(primitive, registry=REG)
    primitive["podium_object.data"]["flavor"] = 17
    with pytest.raises(ObjectFieldError, match=r"Instance\.flavor"):
        VersionedObject.obj_from_primitive(primitive, registry=REG)


def test_unknown_data_keys_are_ignored_and_changes_filtered() -> None:
    primitive = _mutated(data={"flavorid": 1, "name": "m", "future": 1}, changes=["name", "future"])
    obj = VersionedObject.obj_from_primitive(primitive, registry=REG)
    assert obj.obj_what_changed() == {"name"}


def test_every_podium_error_is_a_podium_error() -> None:
    for value in ({}, {"podium_object.name": 1}, 3):
        with pytest.raises(PodiumError):
            VersionedObject.obj_from_primitive(value, registry=REG)  # type: ignore[arg-type]


# -- 5. backports ------------------------------------------------------------------


def test_obj_make_compatible_per_class() -> None:
    flavor = Flavor(flavorid=1, name="m", swap=2)
    primitive = flavor.obj_to_primitive("1.0")
    assert primitive["podium_object.version"] == "1.0"
    assert "swap" not in primitive["podium_object.data"]
    assert primitive["podium_object.changes"] == ["flavorid", "name"], (
        "no change for a dropped field"
    )
    assert flavor.obj_to_primitive()["podium_object.data"]["swap"] == 2, "the object is untouched"


def test_target_newer_than_the_object_is_refused() -> None:
    with pytest.raises(IncompatibleObjectVersion):
        Flavor(flavorid=1, name="m").obj_to_primitive("1.5")


def test_child_backported_by_obj_relationships() -> None:
    inst = make_instance()
    primitive = inst.obj_to_primitive("1.1")
    child = primitive["podium_object.data"]["flavor"]
    assert child["podium_object.version"] == "1.0"
    assert "swap" not in child["podium_object.data"]
    # Before Instance 1.1 there was no flavor at all.
    assert "flavor" not in inst.obj_to_primitive("1.0")["podium_object.data"]
    # And 1.2 keeps the child as it is.
    assert (
        inst.obj_to_primitive("1.2")["podium_object.data"]["flavor"]["podium_object.version"]
        == "1.1"
    )


def test_child_backported_by_version_manifest() -> None:
    inst = make_instance()
    primitive = inst.obj_to_primitive(version_manifest={"Instance": "1.2", "Flavor": "1.0"})
    assert primitive["podium_object.version"] == "1.2"
    child = primitive["podium_object.data"]["flavor"]
    assert child["podium_object.version"] == "1.0"
    assert "swap" not in child["podium_object.data"]
    # A manifest that does not name the child leaves it alone.
    primitive = inst.obj_to_primitive(version_manifest={"Instance": "1.2"})
    assert primitive["podium_object.data"]["flavor"]["podium_object.version"] == "1.1"
    # The old service reads the backported child with its 1.0 class.
    back = VersionedObject.obj_from_primitive(
        inst.obj_to_primitive(version_manifest={"Instance": "1.2", "Flavor": "1.0"}), registry=REG
    )
    assert type(back.flavor) is Flavor10


def test_missing_relationship_rule_is_a_clear_error() -> None:
    registry = VersionedObjectRegistry()

    @registry.register
    class Holder(VersionedObject):
        VERSION = "1.1"
        fields = {"flavor": fields.ObjectField("Flavor")}

    holder = Holder(flavor=Flavor(flavorid=1, name="m"))
    with pytest.raises(ObjectActionError, match=r"Holder.*'flavor'.*obj_relationships"):
        holder.obj_to_primitive("1.0")


def test_child_never_claims_a_version_newer_than_it_is() -> None:
    inst = make_instance()
    primitive = inst.obj_to_primitive(version_manifest={"Instance": "1.2", "Flavor": "1.7"})
    assert primitive["podium_object.data"]["flavor"]["podium_object.version"] == "1.1"


def test_obj_tree_get_versions() -> None:
    assert obj_tree_get_versions("InstanceList", REG) == {
        "InstanceList": "1.1",
        "Instance": "1.2",
        "Flavor": "1.1",
    }
    registry = VersionedObjectRegistry()

    @registry.register
    class Orphan(VersionedObject):
        fields = {"ghost": fields.ObjectField("Ghost")}

    with pytest.raises(UnsupportedObjectError, match="Ghost"):
        obj_tree_get_versions("Orphan", registry)
    with pytest.raises(UnsupportedObjectError):
        obj_tree_get_versions("Nope", registry)


# -- 6. lists ------------------------------------------------------------------------


def make_list() -> InstanceList:
    return InstanceList(
        RequestContext(), objects=[make_instance(), make_instance(id=2, uuid=UUID2, host="h2")]
    )


def test_list_behaviour() -> None:
    items = make_list()
    assert len(items) == 2
    assert items[0].id == 1
    assert [i.id for i in items] == [1, 2]
    assert items[1] in items
    assert items.index(items[1]) == 1
    assert items.count(items[0]) == 1
    sliced = items[1:]
    assert isinstance(sliced, InstanceList) and [i.id for i in sliced] == [2]
    assert sliced._context is items._context
    items.sort(key=lambda i: -i.id)
    assert [i.id for i in items] == [2, 1]
    both = items + sliced
    assert [i.id for i in both] == [2, 1, 2]
    assert not InstanceList()
    assert InstanceList().obj_what_changed() == set()


def test_list_change_tracking_follows_children() -> None:
    items = make_list()
    items.obj_reset_changes(recursive=True)
    assert items.obj_what_changed() == set()
    items[0].host = "moved"
    assert items.obj_what_changed() == {"objects"}


def test_list_roundtrip() -> None:
    items = make_list()
    back = VersionedObject.obj_from_primitive(items.obj_to_primitive(), registry=REG)
    assert isinstance(back, InstanceList)
    assert [i.uuid for i in back] == [UUID1, UUID2]
    assert back.obj_to_primitive() == items.obj_to_primitive()


def test_list_children_follow_child_versions() -> None:
    items = make_list()
    primitive = items.obj_to_primitive("1.0")
    children = primitive["podium_object.data"]["objects"]
    assert {c["podium_object.version"] for c in children} == {"1.1"}
    # Instance 1.1 backports its own child in turn.
    assert {c["podium_object.data"]["flavor"]["podium_object.version"] for c in children} == {"1.0"}


def test_list_children_follow_the_manifest() -> None:
    items = make_list()
    manifest = {"InstanceList": "1.1", "Instance": "1.1", "Flavor": "1.0"}
    children = items.obj_to_primitive(version_manifest=manifest)["podium_object.data"]["objects"]
    assert [c["podium_object.version"] for c in children] == ["1.1", "1.1"]


def test_list_without_rules_backports_children_to_1_0_like_oslo() -> None:
    registry = VersionedObjectRegistry()

    @registry.register
    class Plain(VersionedObject):
        VERSION = "1.3"

    @registry.register
    class PlainList(ObjectListBase[Plain]):
        VERSION = "1.1"
        fields = {"objects": fields.ListOfObjectsField("Plain")}

    primitive = PlainList(objects=[Plain()]).obj_to_primitive("1.0")
    assert primitive["podium_object.data"]["objects"][0]["podium_object.version"] == "1.0"


def test_adding_lists_of_different_classes_is_refused() -> None:
    registry = VersionedObjectRegistry()

    @registry.register
    class OtherList(ObjectListBase[Instance]):
        fields = {"objects": fields.ListOfObjectsField("Instance")}

    with pytest.raises(TypeError, match="same class"):  # oslo's error, as Python's lists'
        make_list() + OtherList()  # type: ignore[operator]


# -- porting helpers -------------------------------------------------------------------


def test_shallow_copy_does_not_share_the_change_set() -> None:
    inst = make_instance()
    other = copy.copy(inst)
    other.host = "elsewhere"
    other.obj_reset_changes()
    assert inst.obj_what_changed() >= {"host", "uuid"}
    assert inst.host == "h1"


def test_dict_compat_and_timestamped_mixins() -> None:
    from podium.objects import TimestampedObject, VersionedObjectDictCompat

    registry = VersionedObjectRegistry()

    @registry.register
    class Row(VersionedObjectDictCompat, TimestampedObject, VersionedObject):
        fields = {"name": fields.StringField(), "size": fields.IntegerField(nullable=True)}

    assert set(Row.fields) == {"created_at", "updated_at", "name", "size"}
    row = Row(name="a")
    assert row["name"] == "a"
    row["size"] = "3"
    assert row.size == 3
    assert dict(row.items()) == {"name": "a", "size": 3}
    assert row.keys() == ["name", "size"] and row.values() == ["a", 3]
    assert row.get("created_at", None) is None
    with pytest.raises(ObjectAttributeNotSet):
        row.get("created_at")
    row.update({"created_at": datetime.datetime(2020, 1, 1, tzinfo=UTC)})
    assert row.created_at.year == 2020
    with pytest.raises(ObjectAttributeNotSet):
        row["colour"] = "red"
    with pytest.raises(ObjectAttributeNotSet):
        row.get("colour")


def test_obj_make_list() -> None:
    from podium.objects import obj_make_list

    registry = VersionedObjectRegistry()

    @registry.register
    class Item(VersionedObject):
        fields = {"id": fields.IntegerField()}

        @staticmethod
        def _from_db_object(context: Any, obj: Item, row: dict[str, Any], bonus: int = 0) -> Item:
            obj.id = row["id"] + bonus
            obj._context = context
            obj.obj_reset_changes()
            return obj

    @registry.register
    class ItemList(ObjectListBase[Item]):
        fields = {"objects": fields.ListOfObjectsField("Item")}

    ctx = RequestContext()
    items = obj_make_list(ctx, ItemList(), Item, [{"id": 1}, {"id": 2}], bonus=10)
    assert [i.id for i in items] == [11, 12]
    assert items._context is ctx and items.obj_what_changed() == set()
    with pytest.raises(ObjectActionError, match="_from_db_object"):
        obj_make_list(ctx, ItemList(), Flavor, [{}])
