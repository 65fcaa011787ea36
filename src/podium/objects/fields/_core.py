"""What every field type shares: the interface, the declaration of native values, errors."""

from __future__ import annotations

import abc
import datetime
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from podium._text import short_repr

if TYPE_CHECKING:
    from podium.objects.base import VersionedObject

T_co = TypeVar("T_co", covariant=True)
#: The Python type of a field type's values.
T_value = TypeVar("T_value")
#: The Python type of a container's elements.
T_elem = TypeVar("T_elem")


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

_CONTAINERS = (list, dict, set)


def bad_value(expected: str, value: Any) -> ValueError:
    return ValueError(f"{expected} is required, not {type(value).__name__} {short_repr(value)}")


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


@dataclass(frozen=True, slots=True)
class Native:
    """The values a field type keeps exactly as they are given: its fast path.

    A value whose class is exactly ``kind`` (a subclass is not enough) and
    that passes every check given here is what the type's ``coerce`` and
    ``from_primitive`` would return for it; objects store it without calling
    them. ``kind`` is an immutable class (``str``, ``int``, ``datetime``...),
    or ``list``, ``dict`` (string keys) or ``set`` with ``items`` saying which
    elements are native: such a container is stored as a shallow copy.

    Checks: ``low <= value <= high`` (numbers), ``value in members``,
    ``test(value)`` true.
    """

    kind: type
    low: Any = None
    high: Any = None
    members: frozenset[Any] | None = None
    test: Callable[[Any], object] | None = None
    items: Native | None = None

    def __post_init__(self) -> None:
        if (self.kind in _CONTAINERS) != (self.items is not None):
            raise TypeError("Native: a list, dict or set kind needs items, and only those")
        if self.items is not None and self.items.kind in _CONTAINERS:
            raise TypeError("Native: the items of a native container must be immutable values")

    @property
    def plain(self) -> bool:
        """Every value of exactly ``kind`` is native: no check to run."""
        return (
            self.items is None
            and self.members is None
            and self.test is None
            and (self.low is None and self.high is None)
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

    def native(self) -> Native | None:
        """Which values ``coerce`` and ``from_primitive`` return unchanged (None: no fast path).

        The declaration speaks for the conversions of the class that makes it:
        a subclass overriding ``coerce`` or ``from_primitive`` has no fast path
        until it declares its own ``native``.
        """
        return None


class FieldType(AbstractFieldType[T_value]):
    """How one kind of value is checked and put on the wire.

    Generic in the Python type of its values, as oslo's is
    (``class Upper(FieldType[str])``); ``FieldType`` alone is ``FieldType[Any]``.

    Subclass and override :meth:`coerce` (and, when the wire form differs from
    the Python value, :meth:`from_primitive` and :meth:`to_primitive`; for
    :meth:`VersionedObject.to_json_schema`, :meth:`get_schema`; for a fast
    path, :meth:`native`).
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
