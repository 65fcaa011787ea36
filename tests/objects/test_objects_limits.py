"""Inputs at and beyond the limits: integer range, nesting depth, error messages.

Every refusal is a documented podium error (``ObjectFieldError`` for a field
value, ``ObjectFormatError`` for a primitive or a serializer entity), never a
``RecursionError``, ``OverflowError`` or ``TypeError`` from deep inside.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from podium.exceptions import ObjectFieldError, ObjectFormatError, PodiumError
from podium.objects import (
    VersionedObject,
    VersionedObjectRegistry,
    VersionedObjectSerializer,
    fields,
)
from podium.objects.registry import version_tuple

REG = VersionedObjectRegistry()
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@REG.register
class Holder(VersionedObject):
    fields = {
        "integer": fields.IntegerField(),
        "nonneg": fields.NonNegativeIntegerField(),
        "maybe": fields.IntegerField(nullable=True),
        "ints": fields.ListOfIntegersField(),
        "int_dict": fields.DictOfIntegersField(),
        "int_set": fields.SetOfIntegersField(),
        "float": fields.FloatField(),
        "flex": fields.FlexibleDictField(),
        "small": fields.Field(fields.Integer(min_value=-5, max_value=5)),
        "unbounded": fields.Field(fields.Integer(min_value=None, max_value=None)),
    }


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for i in range(depth):
        value = {"k": value} if i % 2 else [value]
    return value


def primitive_with(name: str, value: Any) -> dict[str, Any]:
    return {
        "podium_object.name": "Holder",
        "podium_object.namespace": "podium",
        "podium_object.version": "1.0",
        "podium_object.data": {name: value},
    }


def read(primitive: dict[str, Any]) -> Any:
    return VersionedObject.obj_from_primitive(primitive, registry=REG)


def outcome(func: Any, *args: Any) -> Any:
    """What a coercion path makes of a value: the value, or 'refused'."""
    try:
        return func(*args)
    except ValueError:  # ObjectFieldError is a ValueError too
        return "refused"


# -- integers ---------------------------------------------------------------------

EDGES: list[Any] = [
    0,
    INT64_MAX,
    INT64_MIN,
    INT64_MAX + 1,
    INT64_MIN - 1,
    2**64 - 1,  # the largest int orjson reads back as an int
    10**30,
    -(10**30),
    1e308,  # a whole float: once became a 309-digit int
    -1e308,
    9.223372036854775807e18,  # == 2**63
    float(INT64_MIN),
    3.0,
    2.5,
    "9223372036854775807",
    "9223372036854775808",
    " -9223372036854775809 ",
    "1" * 400,
    "1" * 5000,  # beyond int()'s digit limit
    True,
    -1,
]


@pytest.mark.parametrize("value", EDGES, ids=repr)
@pytest.mark.parametrize("name", ["integer", "nonneg", "maybe", "small", "unbounded"])
def test_every_integer_path_agrees_on_the_bounds(name: str, value: Any) -> None:
    field = Holder.fields[name]
    public = outcome(field.coerce, None, name, value)
    assert outcome(field.from_primitive, None, name, value) == public
    # The compiled paths VersionedObject takes: assignment, and reading a primitive.
    assert outcome(lambda: getattr(Holder(**{name: value}), name)) == public
    assert outcome(lambda: getattr(read(primitive_with(name, value)), name)) == public
    # Inside a list, a dict, a set: the element paths agree too.
    if name == "integer":
        assert outcome(lambda: Holder(ints=[value]).ints) == (
            public if public == "refused" else [public]
        )
        from_prim = outcome(lambda: read(primitive_with("ints", [1, value])).ints)
        assert from_prim == (public if public == "refused" else [1, public])
        assert outcome(lambda: Holder(int_dict={"a": value}).int_dict) == (
            public if public == "refused" else {"a": public}
        )
        assert outcome(lambda: Holder(int_set=[value]).int_set) == (
            public if public == "refused" else {public}
        )


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [
        ("integer", INT64_MIN, INT64_MAX),
        ("nonneg", 0, INT64_MAX),
        ("small", -5, 5),
    ],
)
def test_integer_bounds_are_inclusive(name: str, low: int, high: int) -> None:
    assert getattr(Holder(**{name: low}), name) == low
    assert getattr(Holder(**{name: high}), name) == high
    for bad in (low - 1, high + 1):
        with pytest.raises(ObjectFieldError, match=rf"Holder\.{name}"):
            Holder(**{name: bad})


def test_a_huge_whole_float_is_refused_not_turned_into_a_309_digit_int() -> None:
    with pytest.raises(ObjectFieldError, match=r"Holder\.integer"):
        Holder(integer=1e308)
    with pytest.raises(ObjectFieldError, match=r"Holder\.integer"):
        VersionedObject.obj_from_primitive(primitive_with("integer", 1e308), registry=REG)


def test_an_int_orjson_reads_but_the_database_cannot_hold_is_refused() -> None:
    body = orjson.dumps(primitive_with("integer", 2**63))
    with pytest.raises(ObjectFieldError, match=r"Holder\.integer"):
        VersionedObject.obj_from_primitive(orjson.loads(body), registry=REG)


def test_every_accepted_integer_can_be_encoded() -> None:
    obj = Holder(integer=INT64_MAX, nonneg=INT64_MAX, ints=[INT64_MIN], int_dict={"a": INT64_MAX})
    assert orjson.loads(orjson.dumps(obj.obj_to_primitive()))["podium_object.data"]["integer"] == (
        INT64_MAX
    )


def test_unbounded_integer_is_a_choice_of_the_field() -> None:
    assert Holder(unbounded=10**30).unbounded == 10**30
    assert fields.Integer(min_value=None, max_value=None).describe() != "Integer"


def test_default_bounds_keep_the_fingerprint_description() -> None:
    assert fields.Integer().describe() == "Integer"
    assert fields.NonNegativeInteger().describe() == "NonNegativeInteger"
    assert fields.Integer(min_value=-5, max_value=5).describe() == "Integer(-5..5)"


def test_bounds_are_checked_when_declared() -> None:
    with pytest.raises(ValueError, match="min_value"):
        fields.Integer(min_value=5, max_value=-5)


def test_float_field_refuses_an_int_too_large_for_a_float() -> None:
    with pytest.raises(ObjectFieldError, match=r"Holder\.float"):
        Holder(float=10**400)


# -- nesting and error messages ---------------------------------------------------


def test_flexible_dict_takes_64_levels_counting_itself() -> None:
    assert Holder(flex={"a": nested(63)}).flex == {"a": nested(63)}
    with pytest.raises(ObjectFieldError, match="nested more than 64"):
        Holder(flex={"a": nested(64)})


def test_a_1000_deep_flexible_dict_is_refused_with_a_field_error() -> None:
    with pytest.raises(ObjectFieldError, match=r"Holder\.flex.*nested more than 64"):
        Holder(flex={"a": nested(1000)})
    with pytest.raises(ObjectFieldError, match=r"Holder\.flex"):
        VersionedObject.obj_from_primitive(
            primitive_with("flex", {"a": nested(1000)}), registry=REG
        )


def test_flexible_dict_depth_is_configurable() -> None:
    shallow = fields.Field(fields.FlexibleDict(max_depth=2))
    assert shallow.coerce(None, "f", {"a": {"b": 1}, "c": [2]}) == {"a": {"b": 1}, "c": [2]}
    with pytest.raises(ValueError, match="nested more than 2"):
        shallow.coerce(None, "f", {"a": {"b": {"c": 1}}})
    with pytest.raises(ValueError, match="nested more than 2"):
        shallow.coerce(None, "f", {"a": [[]]})


def test_flexible_dict_refuses_an_int_the_wire_cannot_carry() -> None:
    assert Holder(flex={"a": 2**64 - 1}).flex == {"a": 2**64 - 1}
    with pytest.raises(ObjectFieldError, match=r"Holder\.flex"):
        Holder(flex={"a": 2**64})


@pytest.mark.parametrize(
    "value",
    [nested(1000), [nested(1000)], "x" * 10**6, 10**5000, {"k" * 10**5: 1}],
    ids=["deep", "deep-in-list", "long-string", "huge-int", "long-key"],
)
def test_error_message_of_any_bad_value_is_short(value: Any) -> None:
    with pytest.raises(ObjectFieldError) as info:
        Holder(integer=value)
    assert "Holder.integer" in str(info.value)
    assert len(str(info.value)) < 400


def test_primitive_with_deep_or_odd_header_values_is_an_object_error() -> None:
    deep = nested(1000)
    for key in ("podium_object.namespace", "podium_object.name", "podium_object.version"):
        primitive = primitive_with("integer", 1)
        primitive[key] = deep
        with pytest.raises(PodiumError) as info:
            VersionedObject.obj_from_primitive(primitive, registry=REG)
        assert len(str(info.value)) < 400
    # Keys of mixed types cannot be sorted for the message; still an ObjectFormatError.
    with pytest.raises(ObjectFormatError):
        VersionedObject.obj_from_primitive({1: "a", "b": 2}, registry=REG)  # type: ignore[dict-item]


def test_a_version_of_5000_digits_is_an_object_format_error() -> None:
    primitive = primitive_with("integer", 1)
    primitive["podium_object.version"] = "1." + "9" * 5000
    with pytest.raises(ObjectFormatError, match="malformed object version"):
        read(primitive)
    with pytest.raises(ObjectFormatError, match="malformed object version"):
        version_tuple(nested(1000))  # type: ignore[arg-type]
    assert version_tuple("1.2.3") == (1, 2, 3)


# -- the serializer ---------------------------------------------------------------


def test_serializer_refuses_entities_nested_beyond_its_limit() -> None:
    serializer = VersionedObjectSerializer(registry=REG)
    deep = nested(1000)
    with pytest.raises(ObjectFormatError, match="nested more than 64"):
        serializer.serialize_entity(None, deep)
    with pytest.raises(ObjectFormatError, match="nested more than 64"):
        serializer.deserialize_entity(None, deep)
    # Tuples and sets count as levels too.
    deep_tuple: Any = 1
    for _ in range(200):
        deep_tuple = (deep_tuple,)
    with pytest.raises(ObjectFormatError):
        serializer.serialize_entity(None, deep_tuple)
    # 64 levels pass, both ways.
    assert serializer.deserialize_entity(None, serializer.serialize_entity(None, nested(64))) == (
        nested(64)
    )
    with pytest.raises(ObjectFormatError, match="nested more than 64"):
        serializer.serialize_entity(None, nested(65))


def test_serializer_depth_is_configurable_and_inclusive() -> None:
    serializer = VersionedObjectSerializer(registry=REG, max_depth=3)
    assert serializer.serialize_entity(None, nested(3)) == nested(3)
    assert serializer.deserialize_entity(None, nested(3)) == nested(3)
    with pytest.raises(ObjectFormatError, match="nested more than 3"):
        serializer.serialize_entity(None, nested(4))
    with pytest.raises(ObjectFormatError, match="nested more than 3"):
        serializer.deserialize_entity(None, nested(4))


def test_serializer_default_depth_passes_an_object_with_a_deepest_flexible_dict() -> None:
    serializer = VersionedObjectSerializer(registry=REG)
    flex = {"a": nested(63)}
    obj = Holder(flex=flex)
    entity = {"args": [{"objinst": obj}]}
    primitive = serializer.serialize_entity(None, entity)
    back = serializer.deserialize_entity(None, orjson.loads(orjson.dumps(primitive)))
    assert back["args"][0]["objinst"].flex == flex
