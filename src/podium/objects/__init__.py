"""Versioned objects: fields, registry, primitives, backports, remotable methods.

Code written for oslo.versionedobjects ports with an import change::

    from podium.objects import VersionedObject, VersionedObjectRegistry, fields, remotable
"""

from podium.objects import fields
from podium.objects.base import (
    ComparableVersionedObject,
    ObjectListBase,
    TimestampedObject,
    VersionedObject,
    VersionedObjectDictCompat,
    obj_equal_prims,
    obj_make_list,
    obj_tree_get_versions,
    set_wire_namespace,
)
from podium.objects.indirection import IndirectionAPI
from podium.objects.registry import VersionedObjectRegistry, default_registry
from podium.objects.remotable import (
    apply_updates,
    is_remotable,
    local_method,
    remotable,
    remotable_classmethod,
    run_locally,
)
from podium.objects.serializer import VersionedObjectSerializer

__all__ = [
    "ComparableVersionedObject",
    "IndirectionAPI",
    "ObjectListBase",
    "TimestampedObject",
    "VersionedObject",
    "VersionedObjectDictCompat",
    "VersionedObjectRegistry",
    "VersionedObjectSerializer",
    "apply_updates",
    "default_registry",
    "fields",
    "is_remotable",
    "local_method",
    "obj_equal_prims",
    "obj_make_list",
    "obj_tree_get_versions",
    "remotable",
    "remotable_classmethod",
    "run_locally",
    "set_wire_namespace",
]
