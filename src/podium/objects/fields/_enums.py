"""Enumerations: a value from a fixed set, and a state machine moving along allowed transitions."""

from __future__ import annotations

import datetime
from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from podium._text import short_repr
from podium.exceptions import (
    EnumFieldInvalid,
    EnumFieldUnset,
    EnumRequiresValidValuesError,
    EnumValidValuesInvalidError,
)
from podium.objects.fields._containers import List
from podium.objects.fields._core import Native, UnspecifiedDefault
from podium.objects.fields._field import AutoTypedField
from podium.objects.fields._scalars import String

if TYPE_CHECKING:
    from podium.objects.base import VersionedObject

# What oslo's Enum accepts as valid values: what its String coerces.
_ENUM_VALUE_TYPES = (str, int, float, datetime.datetime)


def _enum_values(valid_values: Any) -> Collection[Any]:
    # oslo's errors for a missing or non-iterable list of valid values.
    if valid_values is None:
        raise EnumRequiresValidValuesError("Enum fields require a list of valid_values")
    if not isinstance(valid_values, Iterable) or isinstance(valid_values, str):
        raise EnumValidValuesInvalidError(f"Enum valid values must be a list, not {valid_values!r}")
    return list(valid_values)


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
        if isinstance(value, _ENUM_VALUE_TYPES) and value in self._valid_set:
            # Text, as String stores it: 1 becomes "1", a str subclass a str.
            return str(value)
        raise ValueError(f"{short_repr(value)} is not one of {list(self._valid_values)}")

    def from_primitive(self, obj: VersionedObject | None, attr: str, value: Any) -> str:
        if isinstance(value, _ENUM_VALUE_TYPES) and value in self._wire_set:
            return str(value)
        return self.coerce(obj, attr, value)

    def native(self) -> Native | None:
        return Native(str, members=self._valid_set)

    def describe(self) -> str:
        return f"Enum({','.join(str(v) for v in self._valid_values)})"

    def get_schema(self) -> dict[str, Any]:
        return {"type": ["string"], "enum": list(self._valid_values)}

    def stringify(self, value: Any) -> str:
        if value not in self._wire_set:
            raise ValueError(f"{short_repr(value)} is not one of {list(self._valid_values)}")
        return super().stringify(value)


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
