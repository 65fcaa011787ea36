"""Container field types: JSON dicts, and lists, sets and dicts of one field type."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, Generic, overload

from podium._text import short_repr
from podium.objects.fields._core import (
    AbstractFieldType,
    FieldType,
    KeyTypeError,
    Native,
    T_elem,
    bad_value,
)
from podium.objects.fields._field import AutoTypedField, Field
from podium.objects.fields._paths import FieldPaths, native_of
from podium.objects.fields._scalars import UUID, Integer, String

if TYPE_CHECKING:
    from podium.objects.base import VersionedObject

_JSON_SCALARS = (str, int, float, bool, type(None))
# The ints orjson writes and reads back as ints.
_WIRE_INT_MIN, _WIRE_INT_MAX = -(2**63), 2**64 - 1


def _json_copy(value: Any, max_depth: int, depth: int = 0) -> Any:
    """A copy of a JSON-shaped value; anything else is refused now, not on the wire.

    ``depth`` is the number of lists and dicts around ``value``.
    """
    if depth >= max_depth and isinstance(value, (dict, list, tuple)):
        raise ValueError(f"value is nested more than {max_depth} levels deep")
    if isinstance(value, _JSON_SCALARS):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"JSON has no {value!r}")
        if isinstance(value, int) and not _WIRE_INT_MIN <= value <= _WIRE_INT_MAX:
            raise ValueError(f"integer {short_repr(value)} does not fit in 64 bits")
        return value
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"dict keys must be strings, not {short_repr(key)}")
            result[key] = _json_copy(item, max_depth, depth + 1)
        return result
    if isinstance(value, (list, tuple)):
        return [_json_copy(item, max_depth, depth + 1) for item in value]
    raise bad_value("a JSON value (str, number, bool, None, list, dict)", value)


class FlexibleDict(FieldType[dict[str, Any]]):
    """A dict with string keys and JSON values (checked and copied on assignment).

    At most ``max_depth`` levels of dicts and lists, the dict itself included
    (default 64); ints must fit in 64 bits, as the wire carries them.
    """

    _max_depth = 64

    def __init__(self, max_depth: int = 64) -> None:
        self._max_depth = max_depth

    def _copy(self, value: Any) -> Any:
        try:
            return _json_copy(value, self._max_depth)
        except RecursionError:  # a max_depth set beyond what the stack allows
            raise ValueError("value is nested too deeply") from None

    def coerce(self, obj: VersionedObject | None, attr: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise bad_value("a dict", value)
        result: dict[str, Any] = self._copy(value)
        return result

    def to_primitive(self, obj: VersionedObject | None, attr: str, value: Any) -> Any:
        return self._copy(value)

    def get_schema(self) -> dict[str, Any]:
        return {"type": ["object"]}


class CompoundFieldType(FieldType[Any], Generic[T_elem]):
    """A container of elements described by a :class:`Field` (oslo's base of
    ``List``, ``Dict`` and ``Set``).

    Generic in the element type, as oslo's ``List``, ``Dict`` and ``Set`` are.
    Each element goes through the element field's compiled paths, its fast
    path included; the element sees the container's ``attr``.
    """

    def __init__(self, element_type: AbstractFieldType[T_elem], **field_args: Any) -> None:
        if isinstance(element_type, type):
            raise TypeError(
                f"element type must be a FieldType instance, not a class: "
                f"{element_type.__name__}() instead of {element_type.__name__}"
            )
        if not isinstance(element_type, AbstractFieldType):
            raise TypeError(f"element type must be a FieldType, not {element_type!r}")
        self._element_type: Field[Any] = Field(element_type, **field_args)

    @property
    def element_type(self) -> Field[Any]:
        return self._element_type

    def __getstate__(self) -> dict[str, Any]:
        # The element's compiled paths are closures: a copy or a pickle finds its own.
        state = self.__dict__.copy()
        state.pop("_items", None)
        return state

    @cached_property
    def _items(self) -> FieldPaths:
        """The element field's paths: every element goes through them."""
        return self._element_type._paths

    def describe(self) -> str:
        return f"{type(self).__name__}({self._element_type.describe()})"

    def _native_of(self, kind: type) -> Native | None:
        """A ``kind`` container of native elements is native (immutable elements only)."""
        items = native_of(self._element_type.field_type)
        if items is None or items.items is not None:
            return None
        return Native(kind, items=items)


class List(CompoundFieldType[T_elem]):
    """A list; any iterable but a string or a mapping is taken (as oslo takes it)."""

    def coerce(self, obj: VersionedObject | None, attr: str, value: Any) -> list[Any]:
        if not isinstance(value, Iterable) or isinstance(value, (str, bytes, Mapping)):
            raise bad_value("a list", value)
        coerce = self._items.coerce
        return [coerce(obj, attr, item) for item in value]

    def from_primitive(self, obj: VersionedObject | None, attr: str, value: Any) -> list[Any]:
        if not isinstance(value, (list, tuple)):
            raise bad_value("a list", value)
        decode = self._items.decode
        return [decode(obj, attr, item) for item in value]

    def to_primitive(self, obj: VersionedObject | None, attr: str, value: Any) -> list[Any]:
        encode = self._items.encode
        if encode is None:
            return list(value)
        return [None if item is None else encode(obj, attr, item) for item in value]

    def native(self) -> Native | None:
        return self._native_of(list)

    def stringify(self, value: Any) -> str:
        return "[" + ",".join(self._element_type.stringify(item) for item in value) + "]"

    def get_schema(self) -> dict[str, Any]:
        return {"type": ["array"], "items": self._element_type.get_schema()}


class Set(CompoundFieldType[T_elem]):
    """A set; a list on the wire, sorted when the elements allow it."""

    def coerce(self, obj: VersionedObject | None, attr: str, value: Any) -> set[Any]:
        if not isinstance(value, (set, frozenset, list, tuple)):
            raise bad_value("a set", value)
        coerce = self._items.coerce
        return {coerce(obj, attr, item) for item in value}

    def from_primitive(self, obj: VersionedObject | None, attr: str, value: Any) -> set[Any]:
        if not isinstance(value, (list, tuple, set, frozenset)):
            raise bad_value("a list", value)
        decode = self._items.decode
        return {decode(obj, attr, item) for item in value}

    def to_primitive(self, obj: VersionedObject | None, attr: str, value: Any) -> list[Any]:
        encode = self._items.encode
        if encode is None:
            items = list(value)
        else:
            items = [None if item is None else encode(obj, attr, item) for item in value]
        with contextlib.suppress(TypeError):
            items.sort()
        return items

    def native(self) -> Native | None:
        return self._native_of(set)

    def stringify(self, value: Any) -> str:
        return "set([" + ",".join(sorted(self._element_type.stringify(x) for x in value)) + "])"

    def get_schema(self) -> dict[str, Any]:
        return {"type": ["array"], "uniqueItems": True, "items": self._element_type.get_schema()}


class Dict(CompoundFieldType[T_elem]):
    """A dict with string keys and values of one field type."""

    def coerce(self, obj: VersionedObject | None, attr: str, value: Any) -> dict[str, Any]:
        return self._convert(obj, attr, value, self._items.coerce)

    def from_primitive(self, obj: VersionedObject | None, attr: str, value: Any) -> dict[str, Any]:
        return self._convert(obj, attr, value, self._items.decode)

    def _convert(self, obj: Any, attr: str, value: Any, convert: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise bad_value("a dict", value)
        result = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise KeyTypeError(str, key)
            result[key] = convert(obj, attr, item)
        return result

    def to_primitive(self, obj: VersionedObject | None, attr: str, value: Any) -> dict[str, Any]:
        encode = self._items.encode
        if encode is None:
            return dict(value)
        return {k: None if v is None else encode(obj, attr, v) for k, v in value.items()}

    def native(self) -> Native | None:
        return self._native_of(dict)

    def stringify(self, value: Any) -> str:
        items = sorted(value.items())
        return "{" + ",".join(f"{k}={self._element_type.stringify(v)}" for k, v in items) + "}"

    def get_schema(self) -> dict[str, Any]:
        return {"type": ["object"], "additionalProperties": self._element_type.get_schema()}


class DictProxyField:
    """A descriptor showing a string-keyed dict field with keys of another type.

    oslo's: ``pins = DictProxyField("pins_field")`` beside
    ``"pins_field": DictOfIntegersField()`` reads ``{1: 10}`` where the field
    holds ``{"1": 10}``; assigning converts the keys back with ``str``.
    ``key_type`` must round-trip through ``str`` (int, the default, does).
    """

    def __init__(self, dict_field_name: str, key_type: type = int) -> None:
        self._fld_name = dict_field_name
        self._key_type = key_type

    @overload
    def __get__(self, obj: None, obj_type: Any = None) -> DictProxyField: ...
    @overload
    def __get__(self, obj: object, obj_type: Any = None) -> dict[Any, Any] | None: ...
    def __get__(self, obj: object | None, obj_type: Any = None) -> Any:
        if obj is None:
            return self
        value = getattr(obj, self._fld_name)
        if value is None:
            return None
        key_type = self._key_type
        return {key_type(key): item for key, item in value.items()}

    def __set__(self, obj: object, value: Mapping[Any, Any] | None) -> None:
        if value is not None:
            value = {str(key): item for key, item in value.items()}
        setattr(obj, self._fld_name, value)


class FlexibleDictField(AutoTypedField[dict[str, Any]]):
    AUTO_TYPE = FlexibleDict()


class DictOfStringsField(AutoTypedField[dict[str, str]]):
    AUTO_TYPE = Dict(String())


class DictOfNullableStringsField(AutoTypedField[dict[str, str | None]]):
    AUTO_TYPE = Dict(String(), nullable=True)


class DictOfIntegersField(AutoTypedField[dict[str, int]]):
    AUTO_TYPE = Dict(Integer())


class ListOfStringsField(AutoTypedField[list[str]]):
    AUTO_TYPE = List(String())


class ListOfIntegersField(AutoTypedField[list[int]]):
    AUTO_TYPE = List(Integer())


class ListOfUUIDField(AutoTypedField[list[str]]):
    AUTO_TYPE = List(UUID())


class SetOfStringsField(AutoTypedField[set[str]]):
    AUTO_TYPE = Set(String())


class SetOfIntegersField(AutoTypedField[set[int]]):
    AUTO_TYPE = Set(Integer())


class ListOfListsOfStringsField(AutoTypedField[list[list[str]]]):
    AUTO_TYPE = List(List(String()))


class DictOfListOfStringsField(AutoTypedField[dict[str, list[str]]]):
    AUTO_TYPE = Dict(List(String()))


class DictOfSetOfIntegersField(AutoTypedField[dict[str, set[int]]]):
    AUTO_TYPE = Dict(Set(Integer()))


class ListOfSetsOfIntegersField(AutoTypedField[list[set[int]]]):
    AUTO_TYPE = List(Set(Integer()))


class ListOfDictOfNullableStringsField(AutoTypedField[list[dict[str, str | None]]]):
    AUTO_TYPE = List(Dict(String(), nullable=True))
