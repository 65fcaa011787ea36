"""Objects in and out of messages: the oslo.messaging ``Serializer`` interface."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from podium.context import RequestContext
from podium.exceptions import IncompatibleObjectVersion, ObjectFormatError
from podium.objects import base as _base
from podium.objects.base import VersionedObject
from podium.objects.registry import VersionedObjectRegistry, default_registry

if TYPE_CHECKING:
    from podium.objects.indirection import IndirectionAPI

__all__ = ["VersionedObjectSerializer"]

#: How deep dicts, lists, tuples and sets may nest in an entity. Objects'
#: contents are bounded by their fields; this leaves them room below the
#: limit of a message (podium.rpc refuses one nested over 128 levels).
DEFAULT_MAX_DEPTH = 64


class _Depth(threading.local):
    # Levels entered by the serializer calls running on this thread. Kept here,
    # not passed along, because nested values go through the public
    # serialize_entity / deserialize_entity, which subclasses may override.
    level = 0


_DEPTH = _Depth()

_CONTAINERS = (dict, tuple, list, set, frozenset)


class VersionedObjectSerializer:
    """Turns objects (nested in dicts, lists, tuples, sets) into primitives and back.

    ``registry`` and ``indirection_api`` default to the base class's (the
    global registry, ``OBJ_BASE_CLASS.indirection_api`` read at call time).
    An object whose version this side does not know is sent to the
    indirection API's ``object_backport_versions`` to be rewritten at a known
    version. Subclass and set ``OBJ_BASE_CLASS`` to use another namespace.

    Containers nested more than ``max_depth`` levels deep are refused with
    :class:`~podium.exceptions.ObjectFormatError`, both ways.
    """

    OBJ_BASE_CLASS: ClassVar[type[VersionedObject]] = VersionedObject

    def __init__(
        self,
        registry: VersionedObjectRegistry | None = None,
        indirection_api: IndirectionAPI | None = None,
        max_depth: int = DEFAULT_MAX_DEPTH,
    ) -> None:
        self._registry = registry
        self._indirection_api = indirection_api
        self.max_depth = max_depth

    @property
    def registry(self) -> VersionedObjectRegistry:
        return self._registry or self.OBJ_BASE_CLASS._obj_registry or default_registry()

    @property
    def indirection_api(self) -> IndirectionAPI | None:
        if self._indirection_api is not None:
            return self._indirection_api
        return self.OBJ_BASE_CLASS.indirection_api

    # -- entities --------------------------------------------------------------

    def serialize_entity(
        self, context: Any, entity: Any, version_manifest: Mapping[str, str] | None = None
    ) -> Any:
        """Primitives for ``entity``; with ``version_manifest``, objects are backported."""
        if isinstance(entity, VersionedObject):
            if version_manifest:
                return entity.obj_to_primitive(version_manifest=version_manifest)
            return entity.obj_to_primitive()
        if not isinstance(entity, _CONTAINERS):
            return entity
        level = self._descend()
        try:
            if isinstance(entity, dict):
                return {
                    key: self.serialize_entity(context, value, version_manifest)
                    for key, value in entity.items()
                }
            if isinstance(entity, tuple):
                return tuple(
                    self.serialize_entity(context, value, version_manifest) for value in entity
                )
            # Sets become lists: the wire (JSON) has no set.
            return [self.serialize_entity(context, value, version_manifest) for value in entity]
        finally:
            _DEPTH.level = level

    def deserialize_entity(self, context: Any, entity: Any) -> Any:
        if not isinstance(entity, _CONTAINERS):
            return entity
        if isinstance(entity, dict) and self.OBJ_BASE_CLASS._obj_keys[0] in entity:
            return self._process_object(context, entity)
        level = self._descend()
        try:
            if isinstance(entity, dict):
                return {
                    key: self.deserialize_entity(context, value) for key, value in entity.items()
                }
            if isinstance(entity, tuple):
                return tuple(self.deserialize_entity(context, value) for value in entity)
            return [self.deserialize_entity(context, value) for value in entity]
        finally:
            _DEPTH.level = level

    def _descend(self) -> int:
        """Enter one container level; the caller restores the level returned."""
        level = _DEPTH.level
        if level >= self.max_depth:
            raise ObjectFormatError(f"entity is nested more than {self.max_depth} levels deep")
        _DEPTH.level = level + 1
        return level

    def _process_object(self, context: Any, primitive: dict[str, Any]) -> VersionedObject:
        base = self.OBJ_BASE_CLASS
        registry = self.registry
        try:
            return base.obj_from_primitive(primitive, context, registry)
        except IncompatibleObjectVersion:
            k_name, _, k_ver, _, _ = base._obj_keys
            version = primitive.get(k_ver)
            if isinstance(version, str) and version.count(".") == 2:
                # The .z part is for additive stable backports: X.Y reads X.Y.Z.
                trimmed = dict(primitive)
                trimmed[k_ver] = version.rsplit(".", 1)[0]
                return self._process_object(context, trimmed)
            api = self.indirection_api
            objname = primitive.get(k_name)
            if api is None or not isinstance(objname, str) or objname not in registry:
                raise
            # The backport is a call of its own, with its own serializer walks.
            level, _DEPTH.level = _DEPTH.level, 0
            try:
                result = api.object_backport_versions(
                    context,
                    objinst=primitive,
                    object_versions=_base.obj_tree_get_versions(objname, registry),
                )
            finally:
                _DEPTH.level = level
        if isinstance(result, VersionedObject):
            return result
        return base.obj_from_primitive(result, context, registry)

    # -- context ---------------------------------------------------------------

    def serialize_context(self, context: Any) -> dict[str, Any]:
        if context is None:
            return {}
        if isinstance(context, dict):
            return dict(context)
        to_dict = getattr(context, "to_dict", None)
        if to_dict is None:
            raise ObjectFormatError(f"cannot serialize a context of type {type(context).__name__}")
        result: dict[str, Any] = to_dict()
        return result

    def deserialize_context(self, context: Any) -> RequestContext:
        # MalformedContext passes through as it is: the RPC dispatcher answers
        # the caller with it, the same error a plain server gives.
        return RequestContext.from_dict(context)
