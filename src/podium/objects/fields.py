"""Typed fields of versioned objects.

Two layers, named as in oslo.versionedobjects so code ports with an import
change:

* a *field type* (``Integer()``, ``String()``, ``List(UUID())``...) knows how
  to coerce a Python value, and how to turn it into a JSON-ready primitive and
  back;
* a *field* (``IntegerField(nullable=True)``, or ``Field(Integer())``) adds
  ``nullable``, ``default`` and ``read_only``.

Speed matters here: every object that crosses the bus goes through these
functions once per field. So each field compiles, once per class, a decoder
``(obj, primitive) -> value`` and an encoder ``(obj, value) -> primitive``
(``None`` when the value already is its own primitive). The decoders take a
fast path when the value already has the exact type, and only fall back to the
general ``coerce`` otherwise. Field types defined outside this module (user
subclasses) always take the general path through their own ``coerce`` /
``from_primitive`` / ``to_primitive``.

Type errors are raised as plain ``ValueError`` here; the object layer wraps
them in :class:`podium.exceptions.ObjectFieldError` naming class, field and
value.
"""

from __future__ import annotations

import abc
import contextlib
import copy
import datetime
import ipaddress
import math
import re
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, overload

from podium._text import short_repr
from podium.exceptions import (
    EnumFieldInvalid,
    EnumFieldUnset,
    EnumRequiresValidValuesError,
    EnumValidValuesInvalidError,
)

if TYPE_CHECKING:
    from typing import Self

    from podium.objects.base import VersionedObject

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "UUID",
    "AbstractFieldType",
    "AutoTypedField",
    "BaseEnumField",
    "Boolean",
    "BooleanField",
    "CompoundFieldType",
    "DateTime",
    "DateTimeField",
    "Dict",
    "DictOfIntegersField",
    "DictOfListOfStringsField",
    "DictOfNullableStringsField",
    "DictOfSetOfIntegersField",
    "DictOfStringsField",
    "DictProxyField",
    "ElementTypeError",
    "Enum",
    "EnumField",
    "Field",
    "FieldType",
    "FlexibleBoolean",
    "FlexibleBooleanField",
    "FlexibleDict",
    "FlexibleDictField",
    "Float",
    "FloatField",
    "IPAddress",
    "IPAddressField",
    "IPNetwork",
    "IPNetworkField",
    "IPV4Address",
    "IPV4AddressField",
    "IPV4AndV6Address",
    "IPV4AndV6AddressField",
    "IPV4Network",
    "IPV4NetworkField",
    "IPV6Address",
    "IPV6AddressField",
    "IPV6Network",
    "IPV6NetworkField",
    "Integer",
    "IntegerField",
    "KeyTypeError",
    "List",
    "ListOfDictOfNullableStringsField",
    "ListOfEnumField",
    "ListOfIntegersField",
    "ListOfListsOfStringsField",
    "ListOfObjectsField",
    "ListOfSetsOfIntegersField",
    "ListOfStringsField",
    "ListOfUUIDField",
    "MACAddress",
    "MACAddressField",
    "NonNegativeFloat",
    "NonNegativeFloatField",
    "NonNegativeInteger",
    "NonNegativeIntegerField",
    "Object",
    "ObjectField",
    "PCIAddress",
    "PCIAddressField",
    "SensitiveString",
    "SensitiveStringField",
    "Set",
    "SetOfIntegersField",
    "SetOfStringsField",
    "StateMachine",
    "String",
    "StringField",
    "StringPattern",
    "UUIDField",
    "UnspecifiedDefault",
    "VersionPredicate",
    "VersionPredicateField",
]

T_co = TypeVar("T_co", covariant=True)
#: The Python type of a field type's values.
T_value = TypeVar("T_value")
#: The Python type of a container's elements.
T_elem = TypeVar("T_elem")

#: ``(obj, primitive) -> value``; obj is the object being built.
Decoder = Callable[[Any, Any], Any]
#: ``(obj, value) -> primitive`` for a value that is not None.
Encoder = Callable[[Any, Any], Any]


class _Unspecified:
    """Marker for "no default"; a class so it survives copy and repr stays short."""

    def __repr__(self) -> str:
        return "UnspecifiedDefault"


UnspecifiedDefault: Any = _Unspecified()

# Values of these types are immutable: copies and deep copies may share them.
IMMUTABLE_TYPES: frozenset[type] = frozenset(
    {
        int,
        float,
        str,
        bool,
        type(None),
        datetime.datetime,
        ipaddress.IPv4Address,
        ipaddress.IPv6Address,
        ipaddress.IPv4Network,
        ipaddress.IPv6Network,
    }
)


#: The range of a signed 64-bit integer: what a BIGINT column holds and the
#: default range of :class:`Integer`.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def _bad(expected: str, value: Any) -> ValueError:
    return ValueError(f"{expected} is required, not {type(value).__name__} {short_repr(value)}")


# -- field types ---------------------------------------------------------------


class KeyTypeError(TypeError):
    """A dict field was given a key of the wrong type (oslo's error, oslo's message)."""

    def __init__(self, expected: type, value: Any) -> None:
        super().__init__(
            f"Key {short_repr(value)} must be of type {expected.__name__} "
            f"not {type(value).__name__}"
        )


class ElementTypeError(TypeError):
    """A container field was given an element of the wrong type (oslo's error)."""

    def __init__(self, expected: str, key: Any, value: Any) -> None:
        super().__init__(
            f"Element {key}:{short_repr(value)} must be of type {expected} "
            f"not {type(value).__name__}"
        )


class AbstractFieldType(Generic[T_value], metaclass=abc.ABCMeta):
    """The interface of a field type, as oslo's: implement all five methods.

    :class:`FieldType` implements them with pass-through defaults; subclass
    that unless every method is your own.
    """

    @abc.abstractmethod
    def coerce(self, obj: VersionedObject | None, attr: str, value: Any) -> T_value:
        """The value to store for ``value`` assigned to ``obj.attr``; ValueError if none."""

    @abc.abstractmethod
    def from_primitive(self, obj: VersionedObject | None, attr: str, value: Any) -> T_value:
        """The value for the wire form ``value``."""

    @abc.abstractmethod
    def to_primitive(self, obj: VersionedObject | None, attr: str, value: Any) -> Any:
        """The JSON-ready wire form of ``value``."""

    @abc.abstractmethod
    def describe(self) -> str:
        """A stable description of the type, used in version fingerprints."""

    @abc.abstractmethod
    def stringify(self, value: Any) -> str:
        """A short text for ``value``, for reprs and logs."""

    def get_schema(self) -> dict[str, Any]:
        """The JSON schema of a value of this type (oslo's shape)."""
        raise NotImplementedError(f"{type(self).__name__} has no JSON schema")

    # -- compiled paths; types of this module override them ------------------

    def _is_builtin(self) -> bool:
        # A user subclass may override coerce and friends; it must not inherit
        # a fast path that would skip its code.
        return type(self).__module__ == __name__

    def _decoder(self, attr: str) -> Decoder:
        def decode(obj: Any, value: Any) -> Any:
            return self.from_primitive(obj, attr, value)

        return decode

    def _encoder(self, attr: str) -> Encoder | None:
        def encode(obj: Any, value: Any) -> Any:
            return self.to_primitive(obj, attr, value)

        return encode

    def _coercer(self, attr: str) -> Decoder:
        def coerce(obj: Any, value: Any) -> Any:
            return self.coerce(obj, attr, value)

        return coerce

    def _exact_type(self) -> type | None:
        """The one Python type whose values need no coercion, if any."""
        return None

    def _int_bounds(self) -> tuple[float, float] | None:
        """``(low, high)`` when an int in that range needs no coercion (an int type)."""
        return None


class FieldType(AbstractFieldType[T_value]):
    """How one kind of value is checked and put on the wire.

    Generic in the Python type of its values, as oslo's is
    (``class Upper(FieldType[str])``); ``FieldType`` alone is ``FieldType[Any]``.

    Subclass and override :meth:`coerce` (and, when the wire form differs from
    the Python value, :meth:`from_primitive` and :meth:`to_primitive`; for
    :meth:`VersionedObject.to_json_schema`, :meth:`get_schema`).
    """

    def coerce(self, obj: VersionedObject | None, attr: str, value: Any) -> T_value:
        result: T_value = value
        return result

    def from_primitive(self, obj: VersionedObject | None, attr: str, value: Any) -> T_value:
        return self.coerce(obj, attr, value)

    def to_primitive(self, obj: VersionedObject | None, attr: str, value: Any) -> Any:
        return value

    def describe(self) -> str:
        return type(self).__name__

    def stringify(self, value: Any) -> str:
        return str(value)


class String(FieldType[str]):
    _ACCEPTED = (str, int, float, bool)

    def coerce(self, obj: VersionedObject | None, attr: str, value: Any) -> str:
        # Like oslo: numbers become their text form; anything else is a mistake.
        if isinstance(value, self._ACCEPTED):
            return str(value)
        raise _bad("a string", value)

    def get_schema(self) -> dict[str, Any]:
        return {"type": ["string"]}

    def stringify(self, value: Any) -> str:
        # Quoted, as oslo shows strings: "'123'" is not the number 123.
        return f"'{value}'"

    def _exact_type(self) -> type | None:
        return str

    def _encoder(self, attr: str) -> Encoder | None:
        return None if self._is_builtin() else super()._encoder(attr)


class Integer(FieldType[int]):
    """An int from ``min_value`` to ``max_value`` inclusive; ``None`` leaves a side open.

    The default range is a signed 64-bit integer: what a BIGINT column holds and
    what orjson writes. An int outside it would fail only later, in the
    database or on the wire (``1e308`` is a whole number: 309 digits as an int).
    """

    _min: int | None = INT64_MIN
    _max: int | None = INT64_MAX

    def __init__(
        self, min_value: int | None = INT64_MIN, max_value: int | None = INT64_MAX
    ) -> None:
        if min_value is not None and max_value is not None and min_value > max_value:
            raise ValueError(f"min_value {min_value} is above max_value {max_value}")
        self._min = min_value
        self._max = max_value

    def coerce(self, obj: VersionedObject | None, attr: str, value: Any) -> int:
        if isinstance(value, int):
            result = int(value)
        elif isinstance(value, float):
            # int(2.7) == 2 silently loses data; refuse instead.
            if not value.is_integer():
                raise _bad("an integer", value)
            result = int(value)
        elif isinstance(value, str):
            try:
                result = int(value.strip())
            except ValueError:
                raise _bad("an integer", value) from None
        else:
            raise _bad("an integer", value)
        low, high = self._min, self._max
        if (low is not None and result < low) or (high is not None and result > high):
            raise ValueError(f"{self._range_text()} is required, not {short_repr(result)}")
        return result

    def _range_text(self) -> str:
        if self._min is None:
            return f"an integer <= {self._max}"
        if self._max is None:
            return f"an integer >= {self._min}"
        return f"an integer from {self._min} to {self._max}"

    def get_schema(self) -> dict[str, Any]:
        # oslo's shape; a bound is shown where it is not the type's default
        # (oslo's NonNegativeInteger shows its minimum 0).
        schema: dict[str, Any] = {"type": ["integer"]}
        if self._min is not None and (self._min != INT64_MIN or type(self)._min == 0):
            schema["minimum"] = self._min
        if self._max is not None and self._max != INT64_MAX:
            schema["maximum"] = self._max
        return schema

    def describe(self) -> str:
        name = type(self).__name__
        if (self._min, self._max) == (type(self)._min, type(self)._max):
            return name
        low = "" if self._min is None else self._min
        high = "" if self._max is None else self._max
        return f"{name}({low}..{high})"

    def _exact_type(self) -> type | None:
        # Only an unbounded int may skip coercion: a bounded one is range-checked.
        return int if self._min is None and self._max is None else None

    def _int_bounds(self) -> tuple[float, float] | None:
        if not self._is_builtin() or (self._min is None and self._max is None):
            return None
        low = -math.inf if self._min is None else self._min
        high = math.inf if self._max is None else self._max
        return low, high

    def _encoder(self, attr: str) -> Encoder | None:
        return None if self._is_builtin() else super()._encoder(attr)


class NonNegativeInteger(Integer):
    """An int from 0 to ``max_value`` (default: the largest signed 64-bit int)."""

    _min: int | None = 0

    def __init__(self, max_value: int | None = INT64_MAX) -> None:
        super().__init__(0, max_value)


class Float(FieldType[float]):
    def coerce(self, obj: VersionedObject | None, attr: str, value: Any) -> float:
        if isinstance(value, (int, float)) or (isinstance(value, str) and value.strip()):
            try:
                result = float(value)
            except (ValueError, OverflowError):  # an int beyond a float's range overflows
                raise _bad("a number", value) from None
            # JSON has no NaN or infinity (orjson would silently send null).
            if not math.isfinite(result):
                raise ValueError(f"a finite number is required, not {value!r}")
            return result
        raise _bad("a number", value)

    def get_schema(self) -> dict[str, Any]:
        return {"type": ["number"]}

    def _coercer(self, attr: str) -> Decoder:
        if not self._is_builtin():
            return super()._coercer(attr)
        slow = self.coerce

        def coerce(obj: Any, value: Any) -> Any:
            if value.__class__ is float and math.isfinite(value):
                return value
            return slow(obj, attr, value)

        return coerce

    def _decoder(self, attr: str) -> Decoder:
        return self._coercer(attr) if self._is_builtin() else super()._decoder(attr)

    def _encoder(self, attr: str) -> Encoder | None:
        return None if self._is_builtin() else super()._encoder(attr)


class NonNegativeFloat(Float):
    def coerce(self, obj: VersionedObject | None, attr: str, value: Any) -> float:
        result = super().coerce(obj, attr, value)
        if result < 0:
            raise ValueError(f"a value >= 0 is required, not {result}")
        return result

    def get_schema(self) -> dict[str, Any]:
        return {"type": ["number"], "minimum": 0}

    def _coercer(self, attr: str) -> Decoder:
        return FieldType._coercer(self, attr)


_TRUE_STRINGS = frozenset({"1", "t", "true", "on", "y", "yes"})
_FALSE_STRINGS = frozenset({"0", "f", "false", "off", "n", "no"})


class Boolean(FieldType[bool]):
    def coerce(self, obj: VersionedObject | None, attr: str, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            text = value.strip().lower()
            if text in _TRUE_STRINGS:
                return True
            if text in _FALSE_STRINGS:
                return False
        raise _bad("a boolean", value)

    def get_schema(self) -> dict[str, Any]:
        return {"type": ["boolean"]}

    def _exact_type(self) -> type | None:
        return bool

    def _encoder(self, attr: str) -> Encoder | None:
        return None if self._is_builtin() else super()._encoder(attr)


class FlexibleBoolean(Boolean):
    """oslo's lenient boolean: "yes", "on", "1"... are true, anything else false.

    As ``oslo_utils.strutils.bool_from_string``: a bool is itself; any other
    value is read as text, and text that is not a true word is False.
    """

    def coerce(self, obj: VersionedObject | None, attr: str, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        return str(value).strip().lower() in _TRUE_STRINGS


class SensitiveString(String):
    """A string that may hold a secret: stringify (logs, reprs) never shows it.

    oslo masks only what looks like a password inside the text; podium masks
    the whole value, since it cannot know which part is secret.
    """

    def stringify(self, value: Any) -> str:
        return "***"


# PEP 440 versions (what oslo's predicates parse): epoch, release, pre-, post-
# and dev-release, local label; case-insensitive, a leading "v" allowed.
_PEP440 = (
    r"v?(?:[0-9]+!)?[0-9]+(?:\.[0-9]+)*"
    r"(?:[-_.]?(?:a|b|c|rc|alpha|beta|pre|preview)[-_.]?[0-9]*)?"
    r"(?:-[0-9]+|[-_.]?(?:post|rev|r)[-_.]?[0-9]*)?"
    r"(?:[-_.]?dev[-_.]?[0-9]*)?"
    r"(?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?"
)
_PREDICATE_RE = re.compile(rf"\s*(?:<=|>=|<|>|!=|==)\s*{_PEP440}\s*", re.IGNORECASE)


class VersionPredicate(String):
    """A version predicate such as ``">=1.0,<2.0"``, kept as the text given.

    The text is checked as oslo checks it (comma-separated comparisons of
    PEP 440 versions), without oslo.utils.
    """

    def coerce(self, obj: VersionedObject | None, attr: str, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"Version {short_repr(value)} should be a string type")
        if not all(_PREDICATE_RE.fullmatch(part) for part in value.split(",")):
            raise ValueError(f"Version {short_repr(value)} is not a valid predicate")
        return value

    def _exact_type(self) -> type | None:
        return None


class StringPattern(FieldType[T_value]):
    """A type whose wire form is a string matching ``PATTERN`` (its JSON schema)."""

    PATTERN: str

    def get_schema(self) -> dict[str, Any]:
        pattern = getattr(self, "PATTERN", None)
        if pattern is None:
            raise AttributeError(f"{type(self).__name__} has no pattern")
        return {"type": ["string"], "pattern": pattern}


class _PatternString(StringPattern[str]):
    """A string normalised to lower case and checked against ``PATTERN``."""

    PATTERN = ""
    _label = ""

    def _normalise(self, value: str) -> str:
        return value.lower()

    def coerce(self, obj: VersionedObject | None, attr: str, value: Any) -> str:
        if isinstance(value, str):
            text = self._normalise(value)
            if re.match(self.PATTERN, text):
                return text
        raise ValueError(f"Malformed {self._label} {short_repr(value)}")

    def _encoder(self, attr: str) -> Encoder | None:
        return None if self._is_builtin() else super()._encoder(attr)


class MACAddress(_PatternString):
    """A MAC address, ``aa:bb:cc:dd:ee:ff``; ``-`` separators and upper case accepted."""

    PATTERN = r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$"
    _label = "MAC"

    def _normalise(self, value: str) -> str:
        return value.lower().replace("-", ":")


class PCIAddress(_PatternString):
    """A PCI address, ``0000:00:1f.7`` (oslo's pattern, unchanged)."""

    PATTERN = r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f].[0-7]$"
    _label = "PCI address"


_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


class UUID(StringPattern[str]):
    """A UUID, kept as its canonical lower-case string (as oslo keeps a string)."""

    # What the schema promises (oslo's): 32 hex digits, dashes optional. The
    # value stored and sent is always the canonical form.
    PATTERN = r"^[a-fA-F0-9]{8}-?[a-fA-F0-9]{4}-?[a-fA-F0-9]{4}-?[a-fA-F0-9]{4}-?[a-fA-F0-9]{12}$"

    def coerce(self, obj: VersionedObject | None, attr: str, value: Any) -> str:
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, str):
            if _UUID_RE.match(value):
                return value
            try:
                return str(uuid.UUID(value))
            except ValueError:
                pass
        raise _bad("a UUID", value)

    def _coercer(self, attr: str) -> Decoder:
        if not self._is_builtin():
            return super()._coercer(attr)
        match = _UUID_RE.match
        slow = self.coerce

        def coerce(obj: Any, value: Any) -> Any:
            if value.__class__ is str and match(value):
                return value
            return slow(obj, attr, value)

        return coerce

    def _decoder(self, attr: str) -> Decoder:
        return self._coercer(attr) if self._is_builtin() else super()._decoder(attr)

    def _encoder(self, attr: str) -> Encoder | None:
        return None if self._is_builtin() else super()._encoder(attr)


# What oslo's Enum accepts as valid values: what its String coerces.
_ENUM_VALUE_TYPES = (str, int, float, datetime.datetime)


class Enum(String):
    """A value restricted to a fixed set, kept as its text (as oslo keeps it).

    Valid values are usually strings; as in oslo, numbers and datetimes are
    accepted too (``Enum([1, 2])``): assigning ``1`` stores ``"1"``, and the
    wire carries that text.
    """

    def __init__(self, valid_values: Collection[Any]) -> None:
        values = tuple(_enum_values(valid_values))
        if not values:
            raise EnumRequiresValidValuesError("Enum needs at least one valid value")
        for value in values:
            if not isinstance(value, _ENUM_VALUE_TYPES):
                raise EnumValidValuesInvalidError(
                    f"Enum values must be strings, numbers or datetimes, not {value!r}"
                )
        self._valid_values = values
        self._valid_set = frozenset(values)
        # A non-string valid value travels as its text; reading it back must
        # accept that text (oslo reads primitives without checking them).
        self._wire_set = self._valid_set | frozenset(str(v) for v in values)

    @property
    def valid_values(self) -> tuple[Any, ...]:
        return self._valid_values

    def coerce(self, obj: VersionedObject | None, attr: str, value: Any) -> str:
        if isinstance(value, str) and value in self._valid_set:
            return value
        if isinstance(value, _ENUM_VALUE_TYPES) and value in self._valid_set:
            return str(value)
        raise ValueError(f"{short_repr(value)} is not one of {list(self._valid_values)}")

    def from_primitive(self, obj: VersionedObject | None, attr: str, value: Any) -> str:
        if isinstance(value, _ENUM_VALUE_TYPES) and value in self._wire_set:
            return str(value)
        return self.coerce(obj, attr, value)

    def describe(self) -> str:
        return f"Enum({','.join(str(v) for v in self._valid_values)})"

    def get_schema(self) -> dict[str, Any]:
        return {"type": ["string"], "enum": list(self._valid_values)}

    def stringify(self, value: Any) -> str:
        if value not in self._wire_set:
            raise ValueError(f"{short_repr(value)} is not one of {list(self._valid_values)}")
        return super().stringify(value)

    def _exact_type(self) -> type | None:
        return None

    def _coercer(self, attr: str) -> Decoder:
        if not self._is_builtin():
            return super()._coercer(attr)
        valid = self._valid_set
        slow = self.coerce

        def coerce(obj: Any, value: Any) -> Any:
            if value.__class__ is str and value in valid:
                return value
            return slow(obj, attr, value)

        return coerce

    def _decoder(self, attr: str) -> Decoder:
        if not self._is_builtin():
            return super()._decoder(attr)
        valid = self._wire_set
        slow = self.from_primitive

        def decode(obj: Any, value: Any) -> Any:
            if value.__class__ is str and value in valid:
                return value
            return slow(obj, attr, value)

        return decode


_UTC = datetime.UTC


def _parse_datetime(value: str) -> datetime.datetime:
    try:
        return datetime.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"an ISO 8601 date-time is required, not {short_repr(value)}") from None


def datetime_to_wire(value: datetime.datetime) -> str:
    """ISO 8601, 'Z' for UTC, microseconds only when present.

    With zero microseconds this is exactly oslo's ``isotime`` form, which every
    ISO 8601 parser (oslo's included) reads; microseconds are kept rather than
    silently dropped as oslo does.
    """
    if value.tzinfo is _UTC:
        return value.replace(tzinfo=None).isoformat() + "Z"
    text = value.isoformat()
    if text.endswith("+00:00"):
        return text[:-6] + "Z"
    return text


class DateTime(FieldType[datetime.datetime]):
    """A timezone-aware datetime; naive values are taken as UTC (as oslo does).

    With ``tzinfo_aware=False`` (oslo's switch) values are naive instead: any
    offset is dropped, not converted, exactly as oslo drops it. On the wire a
    naive value is written as UTC (``...Z``), as oslo writes it.
    """

    _aware = True

    def __init__(self, tzinfo_aware: bool = True) -> None:
        self._aware = bool(tzinfo_aware)

    @property
    def tzinfo_aware(self) -> bool:
        return self._aware

    def coerce(self, obj: VersionedObject | None, attr: str, value: Any) -> datetime.datetime:
        if isinstance(value, str):
            value = _parse_datetime(value)
        elif not isinstance(value, datetime.datetime):
            raise _bad("a datetime", value)
        result: datetime.datetime = value
        if not self._aware:
            return result.replace(tzinfo=None)
        if result.utcoffset() is None:
            result = result.replace(tzinfo=_UTC)
        return result

    def to_primitive(self, obj: VersionedObject | None, attr: str, value: Any) -> str:
        if value.tzinfo is None:
            return datetime_to_wire(value.replace(tzinfo=_UTC))
        return datetime_to_wire(value)

    def stringify(self, value: Any) -> str:
        return self.to_primitive(None, "", value)

    def get_schema(self) -> dict[str, Any]:
        return {"type": ["string"], "format": "date-time"}

    def describe(self) -> str:
        # Naive values are a different schema: the fingerprint must show it.
        return "DateTime" if self._aware else "DateTime(naive)"

    # The fast paths below are for aware values; naive ones take the general path.

    def _coercer(self, attr: str) -> Decoder:
        if not self._is_builtin() or not self._aware:
            return super()._coercer(attr)
        slow = self.coerce

        def coerce(obj: Any, value: Any) -> Any:
            if value.__class__ is datetime.datetime and value.tzinfo is _UTC:
                return value
            return slow(obj, attr, value)

        return coerce

    def _decoder(self, attr: str) -> Decoder:
        if not self._is_builtin() or not self._aware:
            return super()._decoder(attr)
        fromiso = datetime.datetime.fromisoformat
        slow = self.coerce

        def decode(obj: Any, value: Any) -> Any:
            if value.__class__ is str:
                try:
                    result = fromiso(value)
                except ValueError:
                    return slow(obj, attr, value)
                if result.tzinfo is not None:
                    return result
                return result.replace(tzinfo=_UTC)
            return slow(obj, attr, value)

        return decode

    def _encoder(self, attr: str) -> Encoder | None:
        if not self._is_builtin() or not self._aware:
            return super()._encoder(attr)

        def encode(obj: Any, value: Any) -> Any:
            return datetime_to_wire(value)

        return encode


class _IPBase(StringPattern[Any]):
    """Common part of the stdlib-ipaddress backed types; str on the wire."""

    _kinds: tuple[type, ...] = ()
    _label = "an IP address"

    def _parse(self, value: str) -> Any:
        raise NotImplementedError

    def coerce(self, obj: VersionedObject | None, attr: str, value: Any) -> Any:
        if isinstance(value, self._kinds):
            return value
        if isinstance(value, str):
            try:
                return self._parse(value)
            except ValueError:
                pass
        raise _bad(self._label, value)

    def to_primitive(self, obj: VersionedObject | None, attr: str, value: Any) -> str:
        return str(value)

    def _encoder(self, attr: str) -> Encoder | None:
        if not self._is_builtin():
            return super()._encoder(attr)

        def encode(obj: Any, value: Any) -> Any:
            return str(value)

        return encode


class IPAddress(_IPBase):
    _kinds: tuple[type, ...] = (ipaddress.IPv4Address, ipaddress.IPv6Address)

    def _parse(self, value: str) -> Any:
        return ipaddress.ip_address(value)

    def get_schema(self) -> dict[str, Any]:
        # oslo's IPAddress has no schema (no pattern); podium's is either version.
        return {"oneOf": [IPV4Address().get_schema(), IPV6Address().get_schema()]}


class IPV4AndV6Address(IPAddress):
    """oslo's name for an address of either version (the same as :class:`IPAddress`)."""


class IPV4Address(IPAddress):
    _kinds: tuple[type, ...] = (ipaddress.IPv4Address,)
    _label = "an IPv4 address"

    def _parse(self, value: str) -> Any:
        return ipaddress.IPv4Address(value)

    def get_schema(self) -> dict[str, Any]:
        return {"type": ["string"], "format": "ipv4"}


class IPV6Address(IPAddress):
    _kinds: tuple[type, ...] = (ipaddress.IPv6Address,)
    _label = "an IPv6 address"

    def _parse(self, value: str) -> Any:
        return ipaddress.IPv6Address(value)

    def get_schema(self) -> dict[str, Any]:
        return {"type": ["string"], "format": "ipv6"}


class IPNetwork(_IPBase):
    """A network; host bits are cleared ("10.0.0.5/24" -> "10.0.0.0/24")."""

    _kinds: tuple[type, ...] = (ipaddress.IPv4Network, ipaddress.IPv6Network)
    _label = "an IP network"

    def _parse(self, value: str) -> Any:
        return ipaddress.ip_network(value, strict=False)

    def get_schema(self) -> dict[str, Any]:
        # oslo's IPNetwork has no schema (no pattern); podium's is either version.
        return {"oneOf": [IPV4Network().get_schema(), IPV6Network().get_schema()]}


_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_HEXTET = r"[0-9a-fA-F]{1,4}"


class IPV4Network(IPNetwork):
    _kinds: tuple[type, ...] = (ipaddress.IPv4Network,)
    _label = "an IPv4 network"
    # The wire form: dotted quad and prefix length (the form oslo's pattern takes).
    PATTERN = rf"^({_OCTET}\.){{3}}{_OCTET}/(3[0-2]|[12]?[0-9])$"

    def _parse(self, value: str) -> Any:
        return ipaddress.IPv4Network(value, strict=False)

    def get_schema(self) -> dict[str, Any]:
        return StringPattern.get_schema(self)


class IPV6Network(IPNetwork):
    _kinds: tuple[type, ...] = (ipaddress.IPv6Network,)
    _label = "an IPv6 network"
    # The wire form: ipaddress's compressed text and a prefix length. Looser
    # than an exact IPv6 grammar (the value itself is checked by ipaddress);
    # oslo's pattern is a longer regular expression of its own.
    PATTERN = (
        rf"^(({_HEXTET})?:){{2,7}}({_HEXTET}|({_OCTET}\.){{3}}{_OCTET})?"
        r"/(12[0-8]|1[01][0-9]|[1-9]?[0-9])$"
    )

    def _parse(self, value: str) -> Any:
        return ipaddress.IPv6Network(value, strict=False)

    def get_schema(self) -> dict[str, Any]:
        return StringPattern.get_schema(self)


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
    raise _bad("a JSON value (str, number, bool, None, list, dict)", value)


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
            raise _bad("a dict", value)
        result: dict[str, Any] = self._copy(value)
        return result

    def to_primitive(self, obj: VersionedObject | None, attr: str, value: Any) -> Any:
        return self._copy(value)

    def get_schema(self) -> dict[str, Any]:
        return {"type": ["object"]}

    def _encoder(self, attr: str) -> Encoder | None:
        if not self._is_builtin():
            return super()._encoder(attr)
        copy_value = self._copy
        return lambda obj, value: copy_value(value)


class CompoundFieldType(FieldType[Any], Generic[T_elem]):
    """A container of elements described by a :class:`Field` (oslo's base of
    ``List``, ``Dict`` and ``Set``).

    Generic in the element type, as oslo's ``List``, ``Dict`` and ``Set`` are.
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

    def describe(self) -> str:
        return f"{type(self).__name__}({self._element_type.describe()})"


class List(CompoundFieldType[T_elem]):
    """A list; any iterable but a string or a mapping is taken (as oslo takes it)."""

    def coerce(self, obj: VersionedObject | None, attr: str, value: Any) -> list[Any]:
        if not isinstance(value, Iterable) or isinstance(value, (str, bytes, Mapping)):
            raise _bad("a list", value)
        coerce = self._element_type.coerce
        return [coerce(obj, f"{attr}[{i}]", item) for i, item in enumerate(value)]

    def from_primitive(self, obj: VersionedObject | None, attr: str, value: Any) -> list[Any]:
        if not isinstance(value, (list, tuple)):
            raise _bad("a list", value)
        convert = self._element_type.from_primitive
        return [convert(obj, f"{attr}[{i}]", item) for i, item in enumerate(value)]

    def to_primitive(self, obj: VersionedObject | None, attr: str, value: Any) -> list[Any]:
        convert = self._element_type.to_primitive
        return [convert(obj, attr, item) for item in value]

    def stringify(self, value: Any) -> str:
        return "[" + ",".join(self._element_type.stringify(item) for item in value) + "]"

    def get_schema(self) -> dict[str, Any]:
        return {"type": ["array"], "items": self._element_type.get_schema()}

    def _coercer(self, attr: str) -> Decoder:
        if not self._is_builtin():
            return super()._coercer(attr)
        return self._compile(attr, self._element_type._coercer(attr), self.coerce)

    def _decoder(self, attr: str) -> Decoder:
        if not self._is_builtin():
            return super()._decoder(attr)
        return self._compile(attr, self._element_type._decoder(attr), self.from_primitive)

    def _compile(self, attr: str, element: Decoder, slow: Callable[..., Any]) -> Decoder:
        bounds = self._element_type._int_bounds()
        if bounds is not None:
            low, high = bounds

            def decode_ints(obj: Any, value: Any) -> Any:
                if value.__class__ is list:
                    for item in value:
                        if item.__class__ is not int or not low <= item <= high:
                            break
                    else:
                        return value[:]
                return slow(obj, attr, value)

            return decode_ints

        exact = self._element_type._exact_type()
        if exact is not None:

            def decode_exact(obj: Any, value: Any) -> Any:
                if value.__class__ is list:
                    for item in value:
                        if item.__class__ is not exact:
                            break
                    else:
                        return value[:]
                return slow(obj, attr, value)

            return decode_exact

        def decode(obj: Any, value: Any) -> Any:
            if value.__class__ is list:
                return [element(obj, item) for item in value]
            return slow(obj, attr, value)

        return decode

    def _encoder(self, attr: str) -> Encoder | None:
        if not self._is_builtin():
            return super()._encoder(attr)
        element = self._element_type._encoder(attr)
        if element is None:
            return lambda obj, value: list(value)
        return lambda obj, value: [element(obj, item) for item in value]


class Set(CompoundFieldType[T_elem]):
    """A set; a list on the wire, sorted when the elements allow it."""

    def coerce(self, obj: VersionedObject | None, attr: str, value: Any) -> set[Any]:
        if not isinstance(value, (set, frozenset, list, tuple)):
            raise _bad("a set", value)
        coerce = self._element_type.coerce
        return {coerce(obj, attr, item) for item in value}

    def from_primitive(self, obj: VersionedObject | None, attr: str, value: Any) -> set[Any]:
        if not isinstance(value, (list, tuple, set, frozenset)):
            raise _bad("a list", value)
        convert = self._element_type.from_primitive
        return {convert(obj, attr, item) for item in value}

    def to_primitive(self, obj: VersionedObject | None, attr: str, value: Any) -> list[Any]:
        convert = self._element_type.to_primitive
        items = [convert(obj, attr, item) for item in value]
        with contextlib.suppress(TypeError):
            items.sort()
        return items

    def stringify(self, value: Any) -> str:
        return "set([" + ",".join(sorted(self._element_type.stringify(x) for x in value)) + "])"

    def get_schema(self) -> dict[str, Any]:
        return {"type": ["array"], "uniqueItems": True, "items": self._element_type.get_schema()}


class Dict(CompoundFieldType[T_elem]):
    """A dict with string keys and values of one field type."""

    def coerce(self, obj: VersionedObject | None, attr: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _bad("a dict", value)
        coerce = self._element_type.coerce
        result = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise KeyTypeError(str, key)
            result[key] = coerce(obj, f"{attr}[{key!r}]", item)
        return result

    def from_primitive(self, obj: VersionedObject | None, attr: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _bad("a dict", value)
        convert = self._element_type.from_primitive
        result = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise KeyTypeError(str, key)
            result[key] = convert(obj, f"{attr}[{key!r}]", item)
        return result

    def to_primitive(self, obj: VersionedObject | None, attr: str, value: Any) -> dict[str, Any]:
        convert = self._element_type.to_primitive
        return {key: convert(obj, attr, item) for key, item in value.items()}

    def stringify(self, value: Any) -> str:
        items = sorted(value.items())
        return "{" + ",".join(f"{k}={self._element_type.stringify(v)}" for k, v in items) + "}"

    def get_schema(self) -> dict[str, Any]:
        return {"type": ["object"], "additionalProperties": self._element_type.get_schema()}

    def _encoder(self, attr: str) -> Encoder | None:
        if not self._is_builtin():
            return super()._encoder(attr)
        element = self._element_type._encoder(attr)
        if element is None:
            return lambda obj, value: dict(value)
        return lambda obj, value: {k: element(obj, v) for k, v in value.items()}


class Object(FieldType["VersionedObject"]):
    """A nested versioned object, named by its registered name."""

    def __init__(self, obj_name: str, subclasses: bool = False) -> None:
        self._obj_name = obj_name
        self._subclasses = subclasses

    @property
    def obj_name(self) -> str:
        return self._obj_name

    def _accepts(self, value: Any) -> bool:
        from podium.objects.base import VersionedObject

        if not isinstance(value, VersionedObject):
            return False
        if not self._subclasses:
            return value.obj_name() == self._obj_name
        return any(
            issubclass(klass, VersionedObject) and klass.obj_name() == self._obj_name
            for klass in type(value).__mro__
        )

    def coerce(self, obj: VersionedObject | None, attr: str, value: Any) -> Any:
        if self._accepts(value):
            return value
        name = value.obj_name() if hasattr(value, "obj_name") else type(value).__name__
        raise ValueError(f"an object of type {self._obj_name} is required, not {name}")

    def from_primitive(self, obj: VersionedObject | None, attr: str, value: Any) -> Any:
        from podium.objects.base import VersionedObject

        if isinstance(value, VersionedObject):
            return self.coerce(obj, attr, value)
        if not isinstance(value, dict):
            raise _bad(f"a {self._obj_name} object primitive (a dict)", value)
        if obj is None:
            child = VersionedObject.obj_from_primitive(value)
        else:
            child = type(obj).obj_from_primitive(
                value, obj._context, registry=obj.__dict__.get("_obj_registry")
            )
        return self.coerce(obj, attr, child)

    def to_primitive(self, obj: VersionedObject | None, attr: str, value: Any) -> Any:
        return value.obj_to_primitive()

    def describe(self) -> str:
        return f"Object<{self._obj_name}>"

    def get_schema(self) -> dict[str, Any]:
        """The schema of the object's primitive, from the newest registered class.

        As oslo's: the class comes from the global registry.
        """
        from podium.objects.registry import default_registry

        return default_registry().newest(self._obj_name)._obj_primitive_schema()

    def stringify(self, value: Any) -> str:
        for key in ("uuid", "id"):
            if key in value.fields:
                ident = getattr(value, key) if value.obj_attr_is_set(key) else "UNKNOWN"
                return f"{value.obj_name()}({ident})"
        return str(value.obj_name())

    def _encoder(self, attr: str) -> Encoder | None:
        if not self._is_builtin():
            return super()._encoder(attr)
        return lambda obj, value: value.obj_to_primitive()

    def _decoder(self, attr: str) -> Decoder:
        if not self._is_builtin():
            return super()._decoder(attr)
        name = self._obj_name
        slow = self.from_primitive

        def decode(obj: Any, value: Any) -> Any:
            if value.__class__ is dict:
                # Children are read with the parent's namespace and registry.
                child = type(obj).obj_from_primitive(
                    value, obj._context, obj.__dict__.get("_obj_registry")
                )
                if child.obj_name() == name:
                    return child
                return self.coerce(obj, attr, child)
            return slow(obj, attr, value)

        return decode


# -- fields --------------------------------------------------------------------


class Field(Generic[T_co]):
    """A field of a versioned object: a type plus nullable / default / read_only.

    Declare fields oslo-style in a ``fields = {...}`` dict, or as class
    attributes (``uuid = fields.UUIDField()``); for mypy, the class attribute
    reads as the field's Python type.
    """

    AUTO_TYPE: FieldType[Any]

    def __init__(
        self,
        field_type: AbstractFieldType[Any] | None = None,
        nullable: bool = False,
        default: Any = UnspecifiedDefault,
        read_only: bool = False,
    ) -> None:
        if field_type is None:
            field_type = getattr(self, "AUTO_TYPE", None)
        if not isinstance(field_type, AbstractFieldType):
            raise TypeError(f"{type(self).__name__} needs a FieldType, not {field_type!r}")
        self._type = field_type
        self._nullable = bool(nullable)
        self._default = default
        self._read_only = bool(read_only)

    if TYPE_CHECKING:

        @overload
        def __get__(self, obj: None, owner: Any) -> Self: ...
        @overload
        def __get__(self, obj: object, owner: Any) -> T_co: ...
        def __get__(self, obj: object | None, owner: Any) -> Any: ...
        def __set__(self, obj: object, value: Any) -> None: ...

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self._type.describe()}, nullable={self._nullable}, "
            f"default={self._default!r}, read_only={self._read_only})"
        )

    @property
    def field_type(self) -> AbstractFieldType[Any]:
        return self._type

    @property
    def nullable(self) -> bool:
        return self._nullable

    @property
    def default(self) -> Any:
        return self._default

    @property
    def read_only(self) -> bool:
        return self._read_only

    def describe(self) -> str:
        return ("Nullable" if self._nullable else "") + self._type.describe()

    def fingerprint_data(self) -> str:
        """What a version fingerprint hashes for this field (type, null, default)."""
        default = self._default
        if isinstance(default, (set, frozenset)):
            shown = "{" + ",".join(sorted(repr(v) for v in default)) + "}"
        else:
            shown = repr(default)
        return f"{self.describe()}(default={shown},nullable={self._nullable})"

    def _null(self, obj: Any, attr: str) -> Any:
        if self._nullable:
            return None
        if self._default is not UnspecifiedDefault:
            return self._type.coerce(obj, attr, copy.deepcopy(self._default))
        raise ValueError("None is not allowed (the field is not nullable)")

    def coerce(self, obj: Any, attr: str, value: Any) -> Any:
        if value is None:
            return self._null(obj, attr)
        return self._type.coerce(obj, attr, value)

    def from_primitive(self, obj: Any, attr: str, value: Any) -> Any:
        if value is None:
            return self._null(obj, attr)
        return self._type.from_primitive(obj, attr, value)

    def to_primitive(self, obj: Any, attr: str, value: Any) -> Any:
        if value is None:
            return None
        return self._type.to_primitive(obj, attr, value)

    def stringify(self, value: Any) -> str:
        return "None" if value is None else self._type.stringify(value)

    def get_schema(self) -> dict[str, Any]:
        """The JSON schema of this field's values, in oslo's shape: the type's
        schema, ``readonly``, ``"null"`` among the types when nullable, and the
        default when there is one."""
        schema = self._type.get_schema()
        schema["readonly"] = self._read_only
        if self._nullable:
            if "type" in schema:
                schema["type"].append("null")
            else:  # a oneOf schema: null is one more choice
                schema.setdefault("oneOf", []).append({"type": ["null"]})
        if self._default is not UnspecifiedDefault:
            schema["default"] = self._default
        return schema

    # -- compiled paths used by VersionedObject ---------------------------------

    def _overrides(self, method: str) -> bool:
        """True when a Field subclass (a StateMachine...) defines ``method`` itself:
        the compiled paths must then call it rather than go to the type."""
        return getattr(type(self), method) is not getattr(Field, method)

    def _wrap(self, attr: str, inner: Decoder) -> Decoder:
        builtin = self._type._is_builtin()
        exact = self._type._exact_type() if builtin else None
        bounds = self._type._int_bounds() if builtin else None
        null = self._null

        if bounds is not None:
            low, high = bounds

            # An int in range, the usual case, costs one chained comparison.
            def int_path(obj: Any, value: Any) -> Any:
                if value.__class__ is int and low <= value <= high:
                    return value
                if value is None:
                    return null(obj, attr)
                return inner(obj, value)

            return int_path

        if exact is not None:

            def exact_path(obj: Any, value: Any) -> Any:
                if value.__class__ is exact:
                    return value
                if value is None:
                    return null(obj, attr)
                return inner(obj, value)

            return exact_path

        def general(obj: Any, value: Any) -> Any:
            if value is None:
                return null(obj, attr)
            return inner(obj, value)

        return general

    def _coercer(self, attr: str) -> Decoder:
        if self._overrides("coerce"):
            coerce = self.coerce
            return lambda obj, value: coerce(obj, attr, value)
        return self._wrap(attr, self._type._coercer(attr))

    def _decoder(self, attr: str) -> Decoder:
        if self._overrides("from_primitive"):
            decode = self.from_primitive
            return lambda obj, value: decode(obj, attr, value)
        return self._wrap(attr, self._type._decoder(attr))

    def _encoder(self, attr: str) -> Encoder | None:
        if self._overrides("to_primitive"):
            encode = self.to_primitive
            return lambda obj, value: encode(obj, attr, value)
        return self._type._encoder(attr)

    def _exact_type(self) -> type | None:
        """A value of exactly this type needs no coercion (None still does)."""
        if not self._type._is_builtin() or self._overrides("from_primitive"):
            return None
        return self._type._exact_type()

    def _int_bounds(self) -> tuple[float, float] | None:
        """An int in this range needs no coercion (None still does)."""
        if not self._type._is_builtin() or self._overrides("from_primitive"):
            return None
        return self._type._int_bounds()


class AutoTypedField(Field[T_co]):
    """A field whose type is the class's ``AUTO_TYPE`` (oslo's base of ``StringField``...)."""

    def __init__(
        self, nullable: bool = False, default: Any = UnspecifiedDefault, read_only: bool = False
    ) -> None:
        super().__init__(self.AUTO_TYPE, nullable=nullable, default=default, read_only=read_only)


class StringField(AutoTypedField[str]):
    AUTO_TYPE = String()


class IntegerField(AutoTypedField[int]):
    AUTO_TYPE = Integer()


class NonNegativeIntegerField(AutoTypedField[int]):
    AUTO_TYPE = NonNegativeInteger()


class FloatField(AutoTypedField[float]):
    AUTO_TYPE = Float()


class NonNegativeFloatField(AutoTypedField[float]):
    AUTO_TYPE = NonNegativeFloat()


class BooleanField(AutoTypedField[bool]):
    AUTO_TYPE = Boolean()


class SensitiveStringField(AutoTypedField[str]):
    AUTO_TYPE = SensitiveString()


class FlexibleBooleanField(AutoTypedField[bool]):
    AUTO_TYPE = FlexibleBoolean()


class MACAddressField(AutoTypedField[str]):
    AUTO_TYPE = MACAddress()


class PCIAddressField(AutoTypedField[str]):
    AUTO_TYPE = PCIAddress()


class UUIDField(AutoTypedField[str]):
    AUTO_TYPE = UUID()


class DateTimeField(AutoTypedField[datetime.datetime]):
    AUTO_TYPE = DateTime()

    def __init__(
        self,
        tzinfo_aware: bool = True,
        nullable: bool = False,
        default: Any = UnspecifiedDefault,
        read_only: bool = False,
    ) -> None:
        # oslo's signature: tzinfo_aware comes first.
        if not tzinfo_aware:
            self.AUTO_TYPE = DateTime(tzinfo_aware=False)
        super().__init__(nullable=nullable, default=default, read_only=read_only)


class IPAddressField(AutoTypedField[ipaddress.IPv4Address | ipaddress.IPv6Address]):
    AUTO_TYPE = IPAddress()


class IPV4AddressField(AutoTypedField[ipaddress.IPv4Address]):
    AUTO_TYPE = IPV4Address()


class IPV4AndV6AddressField(AutoTypedField[ipaddress.IPv4Address | ipaddress.IPv6Address]):
    AUTO_TYPE = IPV4AndV6Address()


class IPV6AddressField(AutoTypedField[ipaddress.IPv6Address]):
    AUTO_TYPE = IPV6Address()


class IPNetworkField(AutoTypedField[ipaddress.IPv4Network | ipaddress.IPv6Network]):
    AUTO_TYPE = IPNetwork()


class IPV4NetworkField(AutoTypedField[ipaddress.IPv4Network]):
    AUTO_TYPE = IPV4Network()


class IPV6NetworkField(AutoTypedField[ipaddress.IPv6Network]):
    AUTO_TYPE = IPV6Network()


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


class VersionPredicateField(AutoTypedField[str]):
    AUTO_TYPE = VersionPredicate()


class BaseEnumField(AutoTypedField[str]):
    """Subclass with ``AUTO_TYPE = Enum([...])`` for a named, reusable enum field."""

    def __init__(
        self, nullable: bool = False, default: Any = UnspecifiedDefault, read_only: bool = False
    ) -> None:
        auto = getattr(self, "AUTO_TYPE", None)
        if auto is None:
            raise EnumFieldUnset(fieldname=type(self).__name__)
        if not isinstance(auto, Enum):
            raise EnumFieldInvalid(typename=type(auto).__name__, fieldname=type(self).__name__)
        super().__init__(nullable=nullable, default=default, read_only=read_only)

    @property
    def valid_values(self) -> tuple[Any, ...]:
        auto = self._type
        assert isinstance(auto, Enum)
        return auto.valid_values


class EnumField(BaseEnumField):
    def __init__(
        self,
        valid_values: Iterable[Any],
        nullable: bool = False,
        default: Any = UnspecifiedDefault,
        read_only: bool = False,
    ) -> None:
        self.AUTO_TYPE = Enum(_enum_values(valid_values))
        super().__init__(nullable=nullable, default=default, read_only=read_only)


def _enum_values(valid_values: Any) -> Collection[Any]:
    # oslo's errors for a missing or non-iterable list of valid values.
    if valid_values is None:
        raise EnumRequiresValidValuesError("Enum fields require a list of valid_values")
    if not isinstance(valid_values, Iterable) or isinstance(valid_values, str):
        raise EnumValidValuesInvalidError(f"Enum valid values must be a list, not {valid_values!r}")
    return list(valid_values)


class StateMachine(EnumField):
    """An enum field whose value may only move along ``ALLOWED_TRANSITIONS``.

    ``ALLOWED_TRANSITIONS`` maps a state to the states it may move to; a state
    missing from it (or mapped to nothing) is terminal. The first value set is
    free, as in oslo; so is setting the value it already has, when allowed::

        class Status(fields.StateMachine):
            ALLOWED_TRANSITIONS = {"ACTIVE": {"ERROR"}, "ERROR": {"ACTIVE"}}

            def __init__(self, **kwargs: Any) -> None:
                super().__init__(["ACTIVE", "ERROR", "DELETED"], **kwargs)
    """

    ALLOWED_TRANSITIONS: ClassVar[Mapping[Any, Collection[Any]]] = {}

    def coerce(self, obj: Any, attr: str, value: Any) -> Any:
        result = super().coerce(obj, attr, value)
        if obj is None or attr not in obj.__dict__:
            return result
        current = obj.__dict__[attr]
        allowed = self.ALLOWED_TRANSITIONS.get(current)
        if allowed is not None and result in allowed:
            return result
        target = f"{obj.obj_name()}.{attr}"
        if not allowed:
            raise ValueError(f"{target} is not allowed to transition out of {current!r} state")
        raise ValueError(
            f"{target} is not allowed to transition out of {current!r} state to "
            f"{result!r} state, choose from {sorted(map(str, allowed))!r}"
        )


class ListOfEnumField(AutoTypedField[list[str]]):
    def __init__(
        self,
        valid_values: Iterable[Any],
        nullable: bool = False,
        default: Any = UnspecifiedDefault,
        read_only: bool = False,
    ) -> None:
        self.AUTO_TYPE = List(Enum(_enum_values(valid_values)))
        super().__init__(nullable=nullable, default=default, read_only=read_only)


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


class ObjectField(AutoTypedField["VersionedObject"]):
    def __init__(
        self,
        objtype: str,
        subclasses: bool = False,
        nullable: bool = False,
        default: Any = UnspecifiedDefault,
        read_only: bool = False,
    ) -> None:
        self.AUTO_TYPE = Object(objtype, subclasses)
        self.objname = objtype
        super().__init__(nullable=nullable, default=default, read_only=read_only)


class ListOfObjectsField(AutoTypedField[list["VersionedObject"]]):
    def __init__(
        self,
        objtype: str,
        subclasses: bool = False,
        nullable: bool = False,
        default: Any = UnspecifiedDefault,
        read_only: bool = False,
    ) -> None:
        self.AUTO_TYPE = List(Object(objtype, subclasses))
        self.objname = objtype
        super().__init__(nullable=nullable, default=default, read_only=read_only)
