"""Scalar field types: strings, numbers, booleans, UUIDs, patterns, date-times."""

from __future__ import annotations

import datetime
import math
import re
import sys
import uuid
from typing import TYPE_CHECKING, Any

from podium._text import short_repr
from podium.objects.fields._core import (
    INT64_MAX,
    INT64_MIN,
    FieldType,
    Native,
    T_value,
    UnspecifiedDefault,
    bad_value,
)
from podium.objects.fields._field import AutoTypedField

if TYPE_CHECKING:
    from podium.objects.base import VersionedObject

_FLOAT_MAX = sys.float_info.max


class String(FieldType[str]):
    _ACCEPTED = (str, int, float, bool)

    def coerce(self, obj: VersionedObject | None, attr: str, value: Any) -> str:
        # Like oslo: numbers become their text form; anything else is a mistake.
        if isinstance(value, self._ACCEPTED):
            return str(value)
        raise bad_value("a string", value)

    def native(self) -> Native | None:
        return Native(str)

    def get_schema(self) -> dict[str, Any]:
        return {"type": ["string"]}

    def stringify(self, value: Any) -> str:
        # Quoted, as oslo shows strings: "'123'" is not the number 123.
        return f"'{value}'"


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
                raise bad_value("an integer", value)
            result = int(value)
        elif isinstance(value, str):
            try:
                result = int(value.strip())
            except ValueError:
                raise bad_value("an integer", value) from None
        else:
            raise bad_value("an integer", value)
        low, high = self._min, self._max
        if (low is not None and result < low) or (high is not None and result > high):
            raise ValueError(f"{self._range_text()} is required, not {short_repr(result)}")
        return result

    def native(self) -> Native | None:
        return Native(int, low=self._min, high=self._max)

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
                raise bad_value("a number", value) from None
            # JSON has no NaN or infinity (orjson would silently send null).
            if not math.isfinite(result):
                raise ValueError(f"a finite number is required, not {value!r}")
            return result
        raise bad_value("a number", value)

    def native(self) -> Native | None:
        # The finite floats: NaN fails both comparisons, infinity one.
        return Native(float, low=-_FLOAT_MAX, high=_FLOAT_MAX)

    def get_schema(self) -> dict[str, Any]:
        return {"type": ["number"]}


class NonNegativeFloat(Float):
    def coerce(self, obj: VersionedObject | None, attr: str, value: Any) -> float:
        result = super().coerce(obj, attr, value)
        if result < 0:
            raise ValueError(f"a value >= 0 is required, not {result}")
        return result

    def native(self) -> Native | None:
        return Native(float, low=0.0, high=_FLOAT_MAX)

    def get_schema(self) -> dict[str, Any]:
        return {"type": ["number"], "minimum": 0}


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
        raise bad_value("a boolean", value)

    def native(self) -> Native | None:
        return Native(bool)

    def get_schema(self) -> dict[str, Any]:
        return {"type": ["boolean"]}


class FlexibleBoolean(Boolean):
    """oslo's lenient boolean: "yes", "on", "1"... are true, anything else false.

    As ``oslo_utils.strutils.bool_from_string``: a bool is itself; any other
    value is read as text, and text that is not a true word is False.
    """

    def coerce(self, obj: VersionedObject | None, attr: str, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        return str(value).strip().lower() in _TRUE_STRINGS

    def native(self) -> Native | None:
        return Native(bool)


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
        raise bad_value("a UUID", value)

    def native(self) -> Native | None:
        return Native(str, test=_UUID_RE.match)


_UTC = datetime.UTC
_fromisoformat = datetime.datetime.fromisoformat


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


def _in_utc(value: datetime.datetime) -> bool:
    return value.tzinfo is _UTC


def _naive(value: datetime.datetime) -> bool:
    return value.tzinfo is None


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
            value = self._from_text(value)
        elif not isinstance(value, datetime.datetime):
            raise bad_value("a datetime", value)
        return self._normalise(value)

    def from_primitive(
        self, obj: VersionedObject | None, attr: str, value: Any
    ) -> datetime.datetime:
        # The wire form first: the text to_primitive writes, in UTC.
        if value.__class__ is str:
            try:
                result = _fromisoformat(value)
            except ValueError:
                result = self._from_text(value)  # raises the error naming the value
            if result.tzinfo is _UTC and self._aware:
                return result
            return self._normalise(result)
        return self.coerce(obj, attr, value)

    def _from_text(self, value: str) -> datetime.datetime:
        """The date-time ``value`` reads as, not yet normalised."""
        try:
            return _fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"an ISO 8601 date-time is required, not {short_repr(value)}"
            ) from None

    def _normalise(self, value: datetime.datetime) -> datetime.datetime:
        if not self._aware:
            return value.replace(tzinfo=None)
        zone = value.tzinfo
        if zone is _UTC:
            return value
        if zone is None or value.utcoffset() is None:
            return value.replace(tzinfo=_UTC)
        return value

    def native(self) -> Native | None:
        return Native(datetime.datetime, test=_in_utc if self._aware else _naive)

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


class VersionPredicateField(AutoTypedField[str]):
    AUTO_TYPE = VersionPredicate()


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
