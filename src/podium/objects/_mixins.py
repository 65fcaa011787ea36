"""Mixins of oslo's base module: comparison, dict-style access, timestamps."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from podium.exceptions import ObjectAttributeNotSet
from podium.objects import fields as obj_fields
from podium.objects._object_core import MISSING
from podium.objects._versioned import VersionedObject


class ComparableVersionedObject:
    """Mixin: equal when the primitives are equal (handy in tests)."""

    def __eq__(self, other: object) -> bool:
        if isinstance(self, VersionedObject) and isinstance(other, VersionedObject):
            return bool(self.obj_to_primitive() == other.obj_to_primitive())
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result


class VersionedObjectDictCompat:
    """Mixin: dict-style access to the fields (``obj['name']``), for ported code."""

    def __iter__(self) -> Iterator[str]:
        obj = _as_object(self)
        return (name for name in obj.obj_fields if name in obj.__dict__)

    def keys(self) -> list[str]:
        return list(self)

    def values(self) -> list[Any]:
        return [getattr(self, name) for name in self]

    def items(self) -> list[tuple[str, Any]]:
        return [(name, getattr(self, name)) for name in self]

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)

    def __setitem__(self, name: str, value: Any) -> None:
        if name not in _as_object(self).fields:
            raise ObjectAttributeNotSet(f"{_as_object(self).obj_name()} has no field {name!r}")
        setattr(self, name, value)

    def get(self, key: str, default: Any = MISSING) -> Any:
        obj = _as_object(self)
        if key not in obj.obj_fields:
            raise ObjectAttributeNotSet(f"{obj.obj_name()} has no field {key!r}")
        if default is not MISSING and not obj.obj_attr_is_set(key):
            return default
        return getattr(self, key)

    def update(self, updates: Mapping[str, Any]) -> None:
        for name, value in updates.items():
            self[name] = value


def _as_object(mixin: object) -> VersionedObject:
    if not isinstance(mixin, VersionedObject):
        raise TypeError(f"{type(mixin).__name__} must also be a VersionedObject")
    return mixin


class VersionedObjectMixin:
    """oslo's marker base of a mixin that contributes ``fields``.

    Nothing needs it here (any class in the bases may hold a ``fields`` dict,
    and the fields are merged); ported mixins may keep it.
    """


class TimestampedObject(VersionedObjectMixin):
    """Mixin: ``created_at`` and ``updated_at`` (nullable datetimes), as in oslo."""

    fields: ClassVar[dict[str, obj_fields.Field[Any]]] = {
        "created_at": obj_fields.DateTimeField(nullable=True),
        "updated_at": obj_fields.DateTimeField(nullable=True),
    }
