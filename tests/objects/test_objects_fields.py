"""Point 2: every field type coerces, refuses bad values clearly, and survives the wire."""

from __future__ import annotations

import datetime
import ipaddress
import json
import uuid
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podium.exceptions import ObjectFieldError, ReadOnlyFieldError
from podium.objects import VersionedObject, VersionedObjectRegistry, fields

REG = VersionedObjectRegistry()
UTC = datetime.UTC


@REG.register
class Child(VersionedObject):
    fields = {"id": fields.IntegerField(), "name": fields.StringField(nullable=True)}


@REG.register
class Everything(VersionedObject):
    fields = {
        "integer": fields.IntegerField(),
        "nonneg": fields.NonNegativeIntegerField(),
        "float": fields.FloatField(),
        "nonneg_float": fields.NonNegativeFloatField(),
        "string": fields.StringField(),
        "boolean": fields.BooleanField(),
        "uuid": fields.UUIDField(),
        "when": fields.DateTimeField(),
        "ip": fields.IPAddressField(),
        "ipv4": fields.IPV4AddressField(),
        "ipv6": fields.IPV6AddressField(),
        "net": fields.IPNetworkField(),
        "net4": fields.IPV4NetworkField(),
        "net6": fields.IPV6NetworkField(),
        "state": fields.EnumField(["building", "active", "error"]),
        "states": fields.ListOfEnumField(["a", "b"]),
        "strings": fields.ListOfStringsField(),
        "ints": fields.ListOfIntegersField(),
        "uuids": fields.ListOfUUIDField(),
        "string_set": fields.SetOfStringsField(),
        "int_set": fields.SetOfIntegersField(),
        "str_dict": fields.DictOfStringsField(),
        "nullable_str_dict": fields.DictOfNullableStringsField(),
        "int_dict": fields.DictOfIntegersField(),
        "flex": fields.FlexibleDictField(),
        "times": fields.Field(fields.List(fields.DateTime())),
        "child": fields.ObjectField("Child", nullable=True),
        "children": fields.ListOfObjectsField("Child"),
        "maybe": fields.IntegerField(nullable=True),
        "defaulted": fields.IntegerField(default=7),
        "frozen": fields.StringField(read_only=True, nullable=True),
    }


def roundtrip(obj: VersionedObject, codec: str = "orjson") -> Any:
    primitive = obj.obj_to_primitive()
    if codec == "orjson":
        primitive = orjson.loads(orjson.dumps(primitive))
    else:
        primitive = json.loads(json.dumps(primitive))
    return VersionedObject.obj_from_primitive(primitive, registry=REG)


GOOD: list[tuple[str, Any, Any]] = [
    ("integer", 5, 5),
    ("integer", "12", 12),
    ("integer", 3.0, 3),
    ("integer", True, 1),
    ("nonneg", 0, 0),
    ("float", 1, 1.0),
    ("float", "2.5", 2.5),
    ("nonneg_float", 0.5, 0.5),
    ("string", "x", "x"),
    ("string", 12, "12"),
    ("boolean", True, True),
    ("boolean", "yes", True),
    ("boolean", 0, False),
    ("uuid", uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
    ("uuid", "{00000000-0000-0000-0000-00000000000A}", "00000000-0000-0000-0000-00000000000a"),
    (
        "when",
        datetime.datetime(2020, 1, 2, 3, 4, 5),
        datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC),
    ),
    ("when", "2020-01-02T03:04:05Z", datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ("ip", "10.0.0.1", ipaddress.ip_address("10.0.0.1")),
    ("ip", "::1", ipaddress.ip_address("::1")),
    ("ipv4", "192.168.1.1", ipaddress.IPv4Address("192.168.1.1")),
    ("ipv6", "fe80::1", ipaddress.IPv6Address("fe80::1")),
    ("net", "10.0.0.5/24", ipaddress.ip_network("10.0.0.0/24")),
    ("net4", "10.0.0.0/8", ipaddress.IPv4Network("10.0.0.0/8")),
    ("net6", "2001:db8::/32", ipaddress.IPv6Network("2001:db8::/32")),
    ("state", "active", "active"),
    ("states", ("a", "b"), ["a", "b"]),
    ("strings", ["a", 1], ["a", "1"]),
    ("ints", ["1", 2], [1, 2]),
    ("string_set", ["a", "a", "b"], {"a", "b"}),
    ("int_set", {1, 2}, {1, 2}),
    ("str_dict", {"a": 1}, {"a": "1"}),
    ("nullable_str_dict", {"a": None}, {"a": None}),
    ("int_dict", {"a": "3"}, {"a": 3}),
    ("flex", {"a": [1, {"b": None}]}, {"a": [1, {"b": None}]}),
    ("maybe", None, None),
    ("defaulted", None, 7),
]


@pytest.mark.parametrize(("name", "value", "expected"), GOOD)
def test_coercion_accepts_and_normalises(name: str, value: Any, expected: Any) -> None:
    obj = Everything()
    setattr(obj, name, value)
    assert getattr(obj, name) == expected
    assert type(getattr(obj, name)) is type(expected)


BAD: list[tuple[str, Any]] = [
    ("integer", "ten"),
    ("integer", 2.5),
    ("integer", [1]),
    ("integer", None),
    ("nonneg", -1),
    ("float", "nan"),
    ("float", float("inf")),
    ("float", "abc"),
    ("float", None),
    ("nonneg_float", -0.1),
    ("string", object()),
    ("string", ["a"]),
    ("boolean", "maybe"),
    ("boolean", 2),
    ("uuid", "not-a-uuid"),
    ("uuid", 12),
    ("when", "yesterday"),
    ("when", 1234),
    ("ip", "10.0.0.256"),
    ("ipv4", "::1"),
    ("ipv6", "10.0.0.1"),
    ("net", "10.0.0.0/33"),
    ("net4", "2001:db8::/32"),
    ("net6", "10.0.0.0/8"),
    ("state", "deleted"),
    ("states", ["c"]),
    ("strings", "abc"),
    ("ints", [1, "x"]),
    ("string_set", "abc"),
    ("str_dict", {1: "a"}),
    ("str_dict", ["a"]),
    ("int_dict", {"a": "b"}),
    ("flex", {1: 2}),
    ("flex", []),
    ("child", Everything()),
    ("child", {"id": 1}),
    ("children", [Child(id=1), 3]),
]


@pytest.mark.parametrize(("name", "value"), BAD)
def test_bad_value_names_class_field_and_value(name: str, value: Any) -> None:
    obj = Everything()
    with pytest.raises(ObjectFieldError) as info:
        setattr(obj, name, value)
    message = str(info.value)
    assert f"Everything.{name}" in message
    assert repr(value)[:20] in message
    assert isinstance(info.value, ValueError)
    assert not obj.obj_attr_is_set(name)


def test_read_only_field_can_be_set_once_and_to_the_same_value() -> None:
    obj = Everything(frozen="a")
    obj.frozen = "a"
    with pytest.raises(ReadOnlyFieldError, match=r"Everything\.frozen"):
        obj.frozen = "b"
    assert obj.frozen == "a"


def test_nullable_versus_not() -> None:
    obj = Everything(child=None, maybe=None)
    assert obj.child is None
    assert obj.maybe is None
    with pytest.raises(ObjectFieldError, match="not nullable"):
        obj.string = None


def test_datetime_wire_form_matches_oslo_isotime_and_keeps_microseconds() -> None:
    obj = Everything(when=datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert obj.obj_to_primitive()["podium_object.data"]["when"] == "2020-01-02T03:04:05Z"
    obj.when = datetime.datetime(2020, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert obj.obj_to_primitive()["podium_object.data"]["when"] == "2020-01-02T03:04:05.123456Z"
    other = datetime.timezone(datetime.timedelta(hours=2))
    obj.when = datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=other)
    wire = obj.obj_to_primitive()["podium_object.data"]["when"]
    assert wire == "2020-01-02T03:04:05+02:00"
    assert roundtrip(obj).when == obj.when


def test_ip_and_set_values_go_on_the_wire_as_strings_and_lists() -> None:
    obj = Everything(ip="10.0.0.1", net="10.0.0.0/24", int_set={3, 1, 2})
    data = obj.obj_to_primitive()["podium_object.data"]
    assert data["ip"] == "10.0.0.1"
    assert data["net"] == "10.0.0.0/24"
    assert data["int_set"] == [1, 2, 3]


def test_stored_list_is_a_copy_of_what_was_assigned() -> None:
    tags = ["a"]
    obj = Everything(strings=tags)
    tags.append("b")
    assert obj.strings == ["a"]
    primitive = obj.obj_to_primitive()
    primitive["podium_object.data"]["strings"].append("z")
    assert obj.strings == ["a"]


def test_field_declared_as_class_attribute() -> None:
    registry = VersionedObjectRegistry()

    @registry.register
    class Annotated(VersionedObject):
        name = fields.StringField()
        size = fields.IntegerField(default=1)

    assert set(Annotated.fields) == {"name", "size"}
    obj = Annotated(name="n")
    assert obj.name == "n"
    assert isinstance(Annotated.name, fields.StringField)
    obj.obj_set_defaults()
    assert obj.size == 1


def test_user_defined_field_type_uses_its_own_code() -> None:
    class Upper(fields.FieldType):
        def coerce(self, obj: Any, attr: str, value: Any) -> str:
            if not isinstance(value, str):
                raise ValueError("text please")
            return value.upper()

        def to_primitive(self, obj: Any, attr: str, value: Any) -> Any:
            return value.lower()

    registry = VersionedObjectRegistry()

    @registry.register
    class Shout(VersionedObject):
        fields = {"word": fields.Field(Upper())}

    obj = Shout(word="hi")
    assert obj.word == "HI"
    primitive = obj.obj_to_primitive()
    assert primitive["podium_object.data"]["word"] == "hi"
    assert Shout.obj_from_primitive(primitive).word == "HI"
    with pytest.raises(ObjectFieldError, match="text please"):
        obj.word = 3


def test_field_type_and_field_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="at least one"):
        fields.Enum([])
    with pytest.raises(TypeError):
        fields.List("String")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        fields.Field("Integer")  # type: ignore[arg-type]


# -- property-based: any valid value survives primitive -> JSON -> primitive ----------

texts = st.text(max_size=20)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
aware_datetimes = st.datetimes(
    min_value=datetime.datetime(1, 1, 2),
    max_value=datetime.datetime(9999, 12, 30),
    timezones=st.sampled_from(
        [
            UTC,
            datetime.timezone(datetime.timedelta(hours=5, minutes=30)),
            datetime.timezone(-datetime.timedelta(hours=8)),
        ]
    ),
)
ipv4 = st.ip_addresses(v=4)
ipv6 = st.ip_addresses(v=6)

VALUES: dict[str, Any] = {
    "integer": st.integers(min_value=-(2**63), max_value=2**63 - 1),
    "nonneg": st.integers(min_value=0, max_value=2**63 - 1),
    "float": finite,
    "nonneg_float": st.floats(min_value=0, allow_infinity=False, allow_nan=False),
    "string": texts,
    "boolean": st.booleans(),
    "uuid": st.uuids().map(str),
    "when": aware_datetimes,
    "ip": st.one_of(ipv4, ipv6),
    "ipv4": ipv4,
    "ipv6": ipv6,
    "net": st.one_of(ipv4, ipv6).map(lambda a: ipaddress.ip_network(a)),
    "net4": ipv4.map(lambda a: ipaddress.ip_network(f"{a}/16", strict=False)),
    "net6": ipv6.map(lambda a: ipaddress.ip_network(f"{a}/64", strict=False)),
    "state": st.sampled_from(["building", "active", "error"]),
    "states": st.lists(st.sampled_from(["a", "b"])),
    "strings": st.lists(texts, max_size=5),
    "ints": st.lists(st.integers(min_value=-(2**53), max_value=2**53), max_size=5),
    "uuids": st.lists(st.uuids().map(str), max_size=3),
    "string_set": st.sets(texts, max_size=5),
    "int_set": st.sets(st.integers(min_value=-1000, max_value=1000), max_size=5),
    "str_dict": st.dictionaries(texts, texts, max_size=4),
    "nullable_str_dict": st.dictionaries(texts, st.none() | texts, max_size=4),
    "int_dict": st.dictionaries(
        texts, st.integers(min_value=-(2**53), max_value=2**53), max_size=4
    ),
    "flex": st.dictionaries(
        texts,
        st.recursive(
            st.none() | st.booleans() | st.integers(-(2**53), 2**53) | texts | finite,
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
            max_leaves=6,
        ),
        max_size=3,
    ),
    "times": st.lists(aware_datetimes, max_size=3),
    "child": st.none()
    | st.builds(lambda i, n: Child(id=i, name=n), st.integers(-100, 100), st.none() | texts),
    "children": st.lists(st.builds(lambda i: Child(id=i), st.integers(-100, 100)), max_size=3),
    "maybe": st.none() | st.integers(-5, 5),
    "frozen": st.none() | texts,
}


def test_every_field_has_a_strategy() -> None:
    assert set(VALUES) | {"defaulted"} == set(Everything.fields)


@settings(max_examples=60, deadline=None)
@given(
    values=st.fixed_dictionaries({}, optional=VALUES),
    codec=st.sampled_from(["orjson", "json"]),
)
def test_any_valid_value_survives_primitive_json_primitive(
    values: dict[str, Any], codec: str
) -> None:
    obj = Everything(**values)
    obj.obj_reset_changes(["string", "integer"])
    back = roundtrip(obj, codec)
    assert type(back) is Everything
    for name in Everything.fields:
        assert back.obj_attr_is_set(name) == obj.obj_attr_is_set(name)
        if not obj.obj_attr_is_set(name):
            continue
        mine, theirs = getattr(obj, name), getattr(back, name)
        if name == "child" and mine is not None:
            assert theirs.obj_to_primitive() == mine.obj_to_primitive()
        elif name == "children":
            assert [c.obj_to_primitive() for c in theirs] == [c.obj_to_primitive() for c in mine]
        else:
            assert theirs == mine
    assert back.obj_what_changed() == obj.obj_what_changed()
    assert back.obj_to_primitive() == obj.obj_to_primitive()


# -- property-based: garbage in, a podium error out (never a crash) ------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | finite | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
field_names = st.sampled_from(sorted(Everything.fields)) | texts


def primitive_like() -> Any:
    def build(name: Any, version: Any, data: Any, changes: Any, drop: Any) -> Any:
        primitive = {
            "podium_object.name": name,
            "podium_object.namespace": "podium",
            "podium_object.version": version,
            "podium_object.data": data,
            "podium_object.changes": changes,
        }
        for key in drop:
            primitive.pop(key, None)
        return primitive

    return st.builds(
        build,
        st.sampled_from(["Everything", "Child"]) | json_values,
        st.sampled_from(["1.0", "1.1", "2.0", "1.0.1"]) | json_values,
        st.dictionaries(field_names, json_values, max_size=6) | json_values,
        st.lists(field_names, max_size=3) | json_values,
        st.sets(st.sampled_from(["podium_object.name", "podium_object.data"]), max_size=1),
    )


def well_formed_envelope() -> Any:
    return st.builds(
        lambda data: {
            "podium_object.name": "Everything",
            "podium_object.namespace": "podium",
            "podium_object.version": "1.0",
            "podium_object.data": data,
        },
        st.dictionaries(st.sampled_from(sorted(Everything.fields)), json_values, max_size=4),
    )


@settings(max_examples=200, deadline=None)
@given(primitive=st.one_of(well_formed_envelope(), primitive_like(), json_values))
def test_garbage_primitives_raise_only_podium_errors(primitive: Any) -> None:
    from podium.exceptions import PodiumError

    try:
        obj = VersionedObject.obj_from_primitive(primitive, registry=REG)
    except PodiumError:
        return
    # Whatever was accepted is a well-formed object that serialises again.
    orjson.dumps(obj.obj_to_primitive())
