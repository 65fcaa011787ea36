"""``VersionedObject``: typed fields, change tracking, primitives and backports.

The object is built in layers, each in its own module: the fields (storage,
change tracking, copies) in :mod:`podium.objects._object_core`, the wire
format (primitives, backports, namespaces) in :mod:`podium.objects._versioned`,
lists in :mod:`podium.objects._lists` and oslo's mixins in
:mod:`podium.objects._mixins`. This module is the public one: import from here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from podium.exceptions import ObjectActionError, UnregisteredSubobject
from podium.objects._lists import ObjectListBase
from podium.objects._mixins import (
    ComparableVersionedObject,
    TimestampedObject,
    VersionedObjectDictCompat,
    VersionedObjectMixin,
)
from podium.objects._object_core import CHILD_FIELD_TYPES
from podium.objects._versioned import VersionedObject, set_wire_namespace
from podium.objects.registry import VersionedObjectRegistry, default_registry

__all__ = [
    "ComparableVersionedObject",
    "ObjectListBase",
    "TimestampedObject",
    "VersionedObject",
    "VersionedObjectDictCompat",
    "VersionedObjectMixin",
    "obj_equal_prims",
    "obj_make_list",
    "obj_tree_get_versions",
    "set_wire_namespace",
]

# Shown, documented and pickled under this module, their public home.
for _public in (
    VersionedObject,
    ObjectListBase,
    ComparableVersionedObject,
    VersionedObjectDictCompat,
    VersionedObjectMixin,
    TimestampedObject,
):
    _public.__module__ = __name__

LOG = logging.getLogger(__name__)
_VOL = TypeVar("_VOL", bound="ObjectListBase[Any]")


def obj_tree_get_versions(
    objname: str,
    registry: VersionedObjectRegistry | None = None,
    tree: dict[str, str] | None = None,
) -> dict[str, str]:
    """Name -> newest registered version, for ``objname`` and every object it can hold."""
    reg = registry or default_registry()
    if tree is None:
        tree = {}
    if objname in tree:
        return tree
    objclass = reg.newest(objname)
    tree[objname] = objclass.VERSION
    for field in objclass.fields.values():
        child = getattr(field, "objname", None)
        if isinstance(field, CHILD_FIELD_TYPES) and child is not None:
            if child not in reg:
                raise UnregisteredSubobject(child_objname=child, parent_objname=objname)
            obj_tree_get_versions(child, reg, tree)
    return tree


def obj_make_list(
    context: Any,
    list_obj: _VOL,
    item_cls: type[VersionedObject],
    db_list: Iterable[Any],
    **extra: Any,
) -> _VOL:
    """Fill ``list_obj`` with ``item_cls._from_db_object(context, item_cls(), row, **extra)``.

    The usual helper of DB-backed list classes, as in oslo.
    """
    from_db = getattr(item_cls, "_from_db_object", None)
    if from_db is None:
        raise ObjectActionError(f"{item_cls.obj_name()} has no _from_db_object()")
    list_obj.objects = [from_db(context, item_cls(), row, **extra) for row in db_list]
    list_obj._context = context
    list_obj.obj_reset_changes()
    return list_obj


def obj_equal_prims(obj_1: Any, obj_2: Any, ignore: Sequence[str] | None = None) -> bool:
    """Compare two objects (or primitives) by their primitives, ignoring some fields."""

    def strip(value: Any) -> Any:
        if isinstance(value, VersionedObject):
            value = value.obj_to_primitive()
        if isinstance(value, dict):
            return {
                key: strip(item) for key, item in value.items() if not ignore or key not in ignore
            }
        if isinstance(value, list):
            return [strip(item) for item in value]
        return value

    return bool(strip(obj_1) == strip(obj_2))


# oslo.versionedobjects' base module also holds these; they live in their own
# modules here (remotable and the serializer import this one).
_ELSEWHERE = {
    "remotable": "podium.objects.remotable",
    "remotable_classmethod": "podium.objects.remotable",
    "VersionedObjectSerializer": "podium.objects.serializer",
    "VersionedObjectIndirectionAPI": "podium.objects.indirection",
}


def __getattr__(name: str) -> Any:
    module_name = _ELSEWHERE.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    module = importlib.import_module(module_name)
    value = getattr(module, name)
    globals()[name] = value
    return value
