"""oslo.versionedobjects' remaining field classes, JSON schemas, exceptions and
the wire-namespace switch, each checked against oslo's on the same inputs."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest

from podium import exceptions as exc
from podium.exceptions import ObjectFieldError
from podium.objects import (
    VersionedObject,
    VersionedObjectRegistry,
    fields,
    set_wire_namespace,
)
from podium.objects.fixture import isolated_default_registry

with warnings.catch_warnings():
    # oslo's base imports oslo.messaging, which warns about eventlet.
    warnings.simplefilter("ignore")
    from oslo_versionedobjects import base as oslo_base
    from oslo_versionedobjects import exception as oslo_exc
    from oslo_versionedobjects import fields as oslo_fields

STATES = ["ACTIVE", "PENDING", "ERROR", "DELETED"]
TRANSITIONS = {
    "ACTIVE": {"PENDING", "ERROR", "DELETED"},
    "PENDING": {"ACTIVE", "ERROR"},
    "ERROR": {"PENDING"},
    "DELETED": set(),
}


class PodiumStatus(fields.StateMachine):
    ALLOWED_TRANSITIONS = TRANSITIONS

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(STATES, **kwargs)


class OsloStatus(oslo_fields.StateMachine):
    ALLOWED_TRANSITIONS = TRANSITIONS  # type: ignore[assignment]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(STATES, **kwargs)


class PodiumMachine(VersionedObject):
    # Before the fields dict, which hides the fields module in the class body.
    pins = fields.DictProxyField("pins_field")
    fields = {"status": PodiumStatus(), "pins_field": fields.DictOfIntegersField(nullable=True)}


class OsloMachine(oslo_base.VersionedObject):
    pins = oslo_fields.DictProxyField("pins_field")
    fields = {"status": OsloStatus(), "pins_field": oslo_fields.DictOfIntegersField(nullable=True)}


@contextlib.contextmanager
def oslo_registered(*classes: type) -> Iterator[None]:
    """Register in oslo's global registry (where oslo builds the field properties) for a block."""
    registry = oslo_base.VersionedObjectRegistry()
    saved = {name: list(versions) for name, versions in registry._obj_classes.items()}
    try:
        for cls in classes:
            oslo_base.VersionedObjectRegistry.register(cls)
        yield
    finally:
        registry._obj_classes.clear()
        registry._obj_classes.update(saved)


def _outcome(obj: Any, value: Any) -> str:
    try:
        obj.status = value
    except ValueError:
        return "refused"
    return str(obj.status)


@pytest.mark.parametrize(
    "path",
    [
        ["ACTIVE", "PENDING", "ERROR", "PENDING", "ACTIVE", "DELETED"],
        ["ERROR", "ACTIVE"],  # ERROR may only go to PENDING
        ["DELETED", "ACTIVE"],  # a terminal state
        ["ACTIVE", "ACTIVE"],  # staying put is a transition too
        ["BOGUS"],  # not a state at all, even as the first value
        ["PENDING", "BOGUS", "ERROR"],
    ],
)
def test_state_machine_allows_and_refuses_what_oslos_does(path: list[str]) -> None:
    with oslo_registered(OsloMachine):
        ours, theirs = PodiumMachine(), OsloMachine()
        assert [_outcome(ours, v) for v in path] == [_outcome(theirs, v) for v in path]


def test_state_machine_refusal_names_object_field_and_choices() -> None:
    obj = PodiumMachine(status="ERROR")
    with pytest.raises(ObjectFieldError, match=r"PodiumMachine\.status.*'ERROR'.*\['PENDING'\]"):
        obj.status = "ACTIVE"
    assert obj.status == "ERROR"


def test_dict_proxy_field_reads_and_writes_as_oslos() -> None:
    with oslo_registered(OsloMachine):
        _check_dict_proxy(PodiumMachine(), OsloMachine())


def _check_dict_proxy(ours: Any, theirs: Any) -> None:
    for obj in (ours, theirs):
        obj.pins_field = None
    assert ours.pins is None and theirs.pins is None
    for obj in (ours, theirs):
        obj.pins = {1: 10, 2: 20}
    assert ours.pins_field == theirs.pins_field == {"1": 10, "2": 20}
    assert ours.pins == theirs.pins == {1: 10, 2: 20}
    assert isinstance(PodiumMachine.pins, fields.DictProxyField)
    assert "pins_field" in ours.obj_what_changed()


@pytest.mark.parametrize(
    "value",
    [
        ">=1.0",
        ">=1.0,<2.0",
        " == 1.2.3 ",
        "!=1.0a1",
        "<2.0.post1",
        ">1!2.0",
        "<=1.0.dev3",
        ">=v1.0",
        "==1.0+local.7",
        "1.0",
        ">=",
        ">=1.0,",
        "~=1.0",
        ">= one",
        "",
        ">=1.0 <2.0",
        "==1.0-1",
        "==1.0a1.post2.dev3+loc",
        ">=1.0.RC1",
        "==1.0_dev",
        "==1.0+",
        "==1.0a-",
        "==1..0",
        "==1.0+ab!c",
    ],
)
def test_version_predicate_accepts_what_oslos_accepts(value: str) -> None:
    def accepted(field: Any) -> bool:
        try:
            field.coerce(None, "f", value)
        except ValueError:
            return False
        return True

    ours = accepted(fields.VersionPredicateField())
    assert ours == accepted(oslo_fields.VersionPredicateField())
    if ours:
        assert fields.VersionPredicateField().coerce(None, "f", value) == value


def test_version_predicate_refuses_a_non_string() -> None:
    with pytest.raises(ValueError, match="string"):
        fields.VersionPredicateField().coerce(None, "f", 1.0)


def test_base_classes_as_oslos() -> None:
    assert issubclass(fields.FieldType, fields.AbstractFieldType)
    assert issubclass(fields.List, fields.CompoundFieldType)
    assert issubclass(fields.Dict, fields.CompoundFieldType)
    assert issubclass(fields.Set, fields.CompoundFieldType)
    for name in ("UUID", "MACAddress", "PCIAddress", "IPAddress", "IPV4Network"):
        assert issubclass(getattr(fields, name), fields.StringPattern), name
    assert issubclass(fields.StringField, fields.AutoTypedField)
    with pytest.raises(TypeError):
        fields.AbstractFieldType()  # type: ignore[abstract]

    class Half(fields.AbstractFieldType[str]):
        def coerce(self, obj: Any, attr: str, value: Any) -> str:
            return str(value)

    with pytest.raises(TypeError):
        Half()  # type: ignore[abstract]


def test_a_type_written_against_the_abstract_interface_works_in_an_object() -> None:
    class Shouting(fields.AbstractFieldType[str]):
        def coerce(self, obj: Any, attr: str, value: Any) -> str:
            return str(value).upper()

        def from_primitive(self, obj: Any, attr: str, value: Any) -> str:
            return str(value).lower()

        def to_primitive(self, obj: Any, attr: str, value: Any) -> Any:
            return f"<{value}>"

        def describe(self) -> str:
            return "Shouting"

        def stringify(self, value: Any) -> str:
            return str(value)

    class Loud(VersionedObject):
        fields = {"word": fields.Field(Shouting())}

    obj = Loud(word="hi")
    assert obj.word == "HI"
    primitive = obj.obj_to_primitive()
    assert primitive["podium_object.data"] == {"word": "<HI>"}
    assert VersionedObject.obj_from_primitive(primitive, registry=_registry_with(Loud)).word == (
        "<hi>"
    )


def _registry_with(*classes: type[VersionedObject]) -> VersionedObjectRegistry:
    registry = VersionedObjectRegistry()
    for cls in classes:
        registry.register_class(cls)
    return registry


def test_element_type_given_as_a_class_is_refused_as_oslo_refuses_it() -> None:
    with pytest.raises(TypeError, match=r"String\(\)"):
        fields.List(fields.String)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        oslo_fields.List(oslo_fields.String)


def test_dict_key_of_the_wrong_type_is_oslos_key_type_error() -> None:
    with pytest.raises(fields.KeyTypeError) as ours:
        fields.DictOfStringsField().coerce(None, "f", {1: "a"})
    with pytest.raises(oslo_fields.KeyTypeError) as theirs:
        oslo_fields.DictOfStringsField().coerce(None, "f", {1: "a"})
    assert str(ours.value) == str(theirs.value)
    assert str(fields.ElementTypeError("int", "k", "v")) == str(
        oslo_fields.ElementTypeError("int", "k", "v")
    )


# -- JSON schema ------------------------------------------------------------------


def _schema_pairs() -> Iterator[tuple[str, Any, Any]]:
    plain = [
        "StringField",
        "SensitiveStringField",
        "VersionPredicateField",
        "IntegerField",
        "NonNegativeIntegerField",
        "FloatField",
        "NonNegativeFloatField",
        "BooleanField",
        "FlexibleBooleanField",
        "DateTimeField",
        "UUIDField",
        "MACAddressField",
        "PCIAddressField",
        "IPV4AddressField",
        "IPV6AddressField",
        "IPV4AndV6AddressField",
        "DictOfStringsField",
        "DictOfNullableStringsField",
        "DictOfIntegersField",
        "ListOfStringsField",
        "SetOfStringsField",
        "ListOfListsOfStringsField",
        "DictOfListOfStringsField",
        "DictOfSetOfIntegersField",
        "SetOfIntegersField",
        "ListOfSetsOfIntegersField",
        "ListOfIntegersField",
        "ListOfDictOfNullableStringsField",
        "ListOfUUIDField",
    ]
    for name in plain:
        for kwargs in ({}, {"nullable": True}, {"read_only": True, "default": None}):
            if name == "IPV4AndV6AddressField" and kwargs.get("nullable"):
                continue  # oslo's raises KeyError (its schema has no "type" to add null to)
            yield name, getattr(fields, name)(**kwargs), getattr(oslo_fields, name)(**kwargs)
    yield "EnumField", fields.EnumField(["a", "b"]), oslo_fields.EnumField(["a", "b"])
    yield (
        "ListOfEnumField",
        fields.ListOfEnumField(["a"], nullable=True),
        oslo_fields.ListOfEnumField(["a"], nullable=True),
    )


@pytest.mark.parametrize(("name", "ours", "theirs"), list(_schema_pairs()))
def test_field_schema_is_oslos(name: str, ours: Any, theirs: Any) -> None:
    assert ours.get_schema() == theirs.get_schema()


def test_network_schemas_match_what_podium_sends() -> None:
    import re

    v4, v6 = fields.IPV4Network(), fields.IPV6Network()
    for field_type, values in (
        (v4, ["10.0.0.0/8", "192.168.1.0/24", "0.0.0.0/0", "1.2.3.4/32"]),
        (
            v6,
            ["::/0", "2001:db8::/32", "fe80::1:2/128", "::ffff:1.2.3.4/128", "1:2:3:4:5:6:7:8/64"],
        ),
    ):
        pattern = field_type.get_schema()["pattern"]
        for value in values:
            wire = field_type.to_primitive(None, "f", field_type.coerce(None, "f", value))
            assert re.match(pattern, wire), (pattern, wire)
    # The IPv4 pattern is podium's own, and matches what oslo's matches.
    theirs = oslo_fields.IPV4Network().get_schema()["pattern"]
    ours = v4.get_schema()["pattern"]
    for text in ["10.0.0.0/8", "1.2.3.4/32", "256.0.0.0/8", "10.0.0.0/33", "1.2.3/8", "01.2.3.4/8"]:
        assert bool(re.match(ours, text)) == bool(re.match(theirs, text)), text
    assert fields.IPV4NetworkField().get_schema().keys() == (
        oslo_fields.IPV4NetworkField().get_schema().keys()
    )
    assert not re.match(v6.get_schema()["pattern"], "2001:db8::/129")
    # Either version, where oslo's IPAddress / IPNetwork have no schema at all.
    assert fields.IPNetwork().get_schema() == {"oneOf": [v4.get_schema(), v6.get_schema()]}
    assert fields.IPAddressField().get_schema() == (
        oslo_fields.IPV4AndV6AddressField().get_schema() | {"readonly": False}
    )


def test_a_type_without_a_schema_says_so_as_oslos() -> None:
    with pytest.raises(NotImplementedError):
        fields.FieldType().get_schema()
    with pytest.raises(NotImplementedError):
        oslo_fields.FieldType().get_schema()


def test_integer_bounds_other_than_the_default_are_in_the_schema() -> None:
    assert fields.Field(fields.Integer(min_value=1, max_value=9)).get_schema() == {
        "type": ["integer"],
        "minimum": 1,
        "maximum": 9,
        "readonly": False,
    }
    assert fields.Field(fields.Integer(None, None)).get_schema()["type"] == ["integer"]


class OsloWire(VersionedObject):
    OBJ_SERIAL_NAMESPACE = "versioned_object"
    OBJ_PROJECT_NAMESPACE = "versionedobjects"


def _podium_child() -> type[VersionedObject]:
    class SchemaChild(OsloWire):
        fields = {"id": fields.IntegerField(), "name": fields.StringField(nullable=True)}

    return SchemaChild


def _podium_parent() -> type[VersionedObject]:
    class SchemaParent(OsloWire):
        VERSION = "1.3"
        fields = {
            "uuid": fields.UUIDField(),
            "when": fields.DateTimeField(nullable=True),
            "state": fields.EnumField(["up", "down"], default="up"),
            "tags": fields.ListOfStringsField(default=[]),
            "child": fields.ObjectField("SchemaChild", nullable=True),
            "children": fields.ListOfObjectsField("SchemaChild"),
        }

    return SchemaParent


def test_object_json_schema_is_oslos_for_the_same_classes() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")

        class SchemaChild(oslo_base.VersionedObject):
            fields = {
                "id": oslo_fields.IntegerField(),
                "name": oslo_fields.StringField(nullable=True),
            }

        class SchemaParent(oslo_base.VersionedObject):
            VERSION = "1.3"
            fields = {
                "uuid": oslo_fields.UUIDField(),
                "when": oslo_fields.DateTimeField(nullable=True),
                "state": oslo_fields.EnumField(["up", "down"], default="up"),
                "tags": oslo_fields.ListOfStringsField(default=[]),
                "child": oslo_fields.ObjectField("SchemaChild", nullable=True),
                "children": oslo_fields.ListOfObjectsField("SchemaChild"),
            }

        # oslo reads child schemas from its global registry only.
        with oslo_registered(SchemaChild, SchemaParent):
            theirs = SchemaParent.to_json_schema()

    with isolated_default_registry() as registry:
        registry.register_class(_podium_child())
        parent = registry.register_class(_podium_parent())
        ours = parent.to_json_schema()
    assert ours == theirs
    assert ours["title"] == "SchemaParent"
    assert ours["$schema"] == "http://json-schema.org/draft-04/schema#"


def test_a_primitive_validates_against_its_schema() -> None:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    with isolated_default_registry() as registry:
        child = registry.register_class(_podium_child())
        parent = registry.register_class(_podium_parent())
        obj = parent(
            uuid="6f1c2b7e-9a9d-4a4e-8d3c-0d0f5b1e2a11",
            when=None,
            state="up",
            tags=["a"],
            children=[child(id=1), child(id=2, name="b")],
            child=child(id=3),
        )
        validator = jsonschema_rs.Draft4Validator(parent.to_json_schema())
        assert validator.is_valid(obj.obj_to_primitive())
        bad = obj.obj_to_primitive()
        bad["versioned_object.data"]["children"][0]["versioned_object.data"]["id"] = "x"
        assert not validator.is_valid(bad)
        del bad["versioned_object.data"]["uuid"]
        assert not validator.is_valid(bad)


def test_object_schema_of_an_unregistered_name_is_oslos_error() -> None:
    with isolated_default_registry(), pytest.raises(exc.UnsupportedObjectError):
        fields.ObjectField("Nowhere").get_schema()


# -- exceptions -------------------------------------------------------------------

OSLO_EXCEPTION_ARGS: dict[str, dict[str, Any]] = {
    "ObjectActionError": {"action": "a", "reason": "r"},
    "ObjectFieldInvalid": {"field": "f", "objname": "O"},
    "OrphanedObjectError": {"method": "m", "objtype": "O"},
    "IncompatibleObjectVersion": {"objname": "O", "objver": "1.9", "supported": "1.2"},
    "ReadOnlyFieldError": {"field": "f"},
    "UnsupportedObjectError": {"objtype": "O"},
    "EnumRequiresValidValuesError": {},
    "EnumValidValuesInvalidError": {},
    "EnumFieldInvalid": {"typename": "T", "fieldname": "F"},
    "EnumFieldUnset": {"fieldname": "F"},
    "InvalidTargetVersion": {"version": "1.7"},
    "TargetBeforeSubobjectExistedException": {"target_version": "1.1"},
    "UnregisteredSubobject": {"child_objname": "C", "parent_objname": "P"},
    "VersionedObjectsException": {},
}


def test_every_oslo_exception_has_a_podium_counterpart() -> None:
    oslo_names = {
        name
        for name, value in vars(oslo_exc).items()
        if isinstance(value, type) and issubclass(value, Exception)
    }
    assert oslo_names == set(OSLO_EXCEPTION_ARGS)


@pytest.mark.parametrize(("name", "kwargs"), sorted(OSLO_EXCEPTION_ARGS.items()))
def test_oslo_exception_from_oslos_arguments_reads_as_oslos(
    name: str, kwargs: dict[str, Any]
) -> None:
    ours, theirs = getattr(exc, name)(**kwargs), getattr(oslo_exc, name)(**kwargs)
    assert isinstance(ours, exc.VersionedObjectsException)
    if name != "IncompatibleObjectVersion":  # podium's own wording, same facts
        assert str(ours) == str(theirs)
    assert ours.kwargs.items() >= theirs.kwargs.items()


def test_podium_raises_oslos_exceptions_where_oslo_does() -> None:
    class Small(VersionedObject):
        VERSION = "1.2"
        fields = {"x": fields.IntegerField()}

    with pytest.raises(exc.InvalidTargetVersion):
        Small(x=1).obj_to_primitive(target_version="1.3")
    with pytest.raises(exc.IncompatibleObjectVersion):  # the name podium used before
        Small(x=1).obj_to_primitive(target_version="1.3")
    with pytest.raises(exc.ObjectFieldInvalid):

        class Bad(VersionedObject):
            fields = {"x": 1}  # type: ignore[dict-item]

    with pytest.raises(exc.EnumRequiresValidValuesError):
        fields.EnumField([])
    with pytest.raises(exc.EnumRequiresValidValuesError):
        fields.EnumField(None)  # type: ignore[arg-type]
    with pytest.raises(exc.EnumValidValuesInvalidError):
        fields.EnumField(True)  # type: ignore[arg-type]

    class Unset(fields.BaseEnumField):
        AUTO_TYPE = None  # type: ignore[assignment]

    class NotAnEnum(fields.BaseEnumField):
        AUTO_TYPE = fields.String()

    with pytest.raises(exc.EnumFieldUnset, match="Unset missing field type"):
        Unset()
    with pytest.raises(exc.EnumFieldInvalid, match="String in NotAnEnum"):
        NotAnEnum()


def test_unregistered_child_is_oslos_unregistered_subobject() -> None:
    from podium.objects import obj_tree_get_versions

    class Holder(VersionedObject):
        fields = {"child": fields.ObjectField("Absent")}

    registry = _registry_with(Holder)
    with pytest.raises(exc.UnregisteredSubobject, match="Absent is referenced by Holder"):
        obj_tree_get_versions("Holder", registry)


def test_wrap_exception_notifies_and_reraises_without_secrets() -> None:
    notifier = mock.Mock()

    class Service:
        @exc.wrap_exception(notifier=notifier)
        def act(self, context: Any, value: Any, admin_password: str = "") -> Any:
            raise ValueError(value)

        @exc.wrap_exception(get_notifier=lambda: notifier)
        def fine(self, context: Any) -> str:
            return "ok"

    with pytest.raises(ValueError, match="boom"):
        Service().act("ctx", "boom", admin_password="hunter2")
    ((context, event, payload),) = [c.args for c in notifier.error.call_args_list]
    assert (context, event) == ("ctx", "act")
    assert isinstance(payload["exception"], ValueError)
    assert payload["args"] == {"value": "boom"}
    assert Service().fine("ctx") == "ok"
    assert Service.act.__name__ == "act"


# -- the wire namespace -----------------------------------------------------------


def test_set_wire_namespace_switches_a_hierarchy_both_ways() -> None:
    class Base(VersionedObject):
        pass

    class Before(Base):
        fields = {"x": fields.IntegerField()}

    class OwnNamespace(Base):
        OBJ_SERIAL_NAMESPACE = "mine"
        fields = {"x": fields.IntegerField()}

    registry = _registry_with(Before, OwnNamespace)
    assert "podium_object.name" in Before(x=1).obj_to_primitive()
    set_wire_namespace("versioned_object", "versionedobjects", base=Base)
    try:

        class After(Base):
            fields = {"x": fields.IntegerField()}

        registry.register_class(After)
        for cls in (Before, After):
            primitive = cls(x=1).obj_to_primitive()
            assert primitive["versioned_object.namespace"] == "versionedobjects"
            assert Base.obj_from_primitive(primitive, registry=registry).x == 1
            with pytest.raises(exc.ObjectFormatError):  # podium's keys are not read any more
                VersionedObject.obj_from_primitive(primitive, registry=registry)
        # A class that chose its own serial namespace keeps it.
        assert "mine.name" in OwnNamespace(x=1).obj_to_primitive()
        assert VersionedObject.OBJ_SERIAL_NAMESPACE == "podium_object"
    finally:
        set_wire_namespace(base=Base)
    assert "podium_object.name" in Before(x=1).obj_to_primitive()


def test_oslo_reads_what_the_switched_hierarchy_writes() -> None:
    class Base(VersionedObject):
        pass

    class NsWidget(Base):
        fields = {"x": fields.IntegerField(), "name": fields.StringField()}

    set_wire_namespace("versioned_object", "versionedobjects", base=Base)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")

            class NsWidgetOslo(oslo_base.VersionedObject):
                fields = {"x": oslo_fields.IntegerField(), "name": oslo_fields.StringField()}

                @classmethod
                def obj_name(cls) -> str:
                    return "NsWidget"

            with oslo_registered(NsWidgetOslo):
                theirs = oslo_base.VersionedObject.obj_from_primitive(
                    NsWidget(x=4, name="w").obj_to_primitive()
                )
                back = NsWidgetOslo(x=5, name="v").obj_to_primitive()
        assert (theirs.x, theirs.name) == (4, "w")
        ours = Base.obj_from_primitive(back, registry=_registry_with(NsWidget))
        assert (ours.x, ours.name) == (5, "v")
    finally:
        set_wire_namespace(base=Base)


@pytest.mark.parametrize(("serial", "project"), [("", "p"), ("a.b", "p"), ("s", ""), ("s", 3)])
def test_set_wire_namespace_refuses_a_bad_namespace(serial: Any, project: Any) -> None:
    class Base(VersionedObject):
        pass

    with pytest.raises(ValueError, match="namespace"):
        set_wire_namespace(serial, project, base=Base)
    assert Base.OBJ_SERIAL_NAMESPACE == "podium_object"


# -- the registry as oslo's ------------------------------------------------------


def test_a_registry_subclass_registers_globally_with_its_own_hook() -> None:
    class HookOne(VersionedObjectRegistry):
        def registration_hook(self, cls: type[VersionedObject], index: int) -> None:
            cls.reg_to = "one"  # type: ignore[attr-defined]

    class HookTwo(VersionedObjectRegistry):
        def registration_hook(self, cls: type[VersionedObject], index: int) -> None:
            cls.reg_to = "two"  # type: ignore[attr-defined]

    with isolated_default_registry() as registry:

        @HookOne.register
        class First(VersionedObject):
            fields = {"baz": fields.IntegerField()}

        @HookTwo.register
        class Second(VersionedObject):
            fields = {"baz": fields.IntegerField()}

        for view in (HookOne, HookTwo, VersionedObjectRegistry):
            assert {"First", "Second"} <= set(view.obj_classes())
        assert {"First", "Second"} <= set(registry.obj_classes())
        assert (First.reg_to, Second.reg_to) == ("one", "two")  # type: ignore[attr-defined]
        primitive = First(baz=1).obj_to_primitive()
        assert VersionedObject.obj_from_primitive(primitive).baz == 1
    assert "First" not in VersionedObjectRegistry.obj_classes()


def test_obj_classes_reads_an_unknown_name_as_empty_as_oslos() -> None:
    assert VersionedObjectRegistry().obj_classes()["Nothing"] == []
