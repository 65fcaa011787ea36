"""The hook through which rich values (objects, contexts) become primitives."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from podium.context import RequestContext

__all__ = ["NoOpSerializer", "Serializer"]


@runtime_checkable
class Serializer(Protocol):
    """oslo.messaging's Serializer shape, so existing serializers port as they are.

    A protocol, not a base class: ``podium.objects.VersionedObjectSerializer``
    satisfies it without importing this layer. Entities are the call's
    arguments and its result; the context travels as a dict of primitives.
    """

    def serialize_entity(self, ctxt: Any, entity: Any) -> Any: ...

    def deserialize_entity(self, ctxt: Any, entity: Any) -> Any: ...

    def serialize_context(self, ctxt: Any) -> dict[str, Any]: ...

    def deserialize_context(self, ctxt: dict[str, Any]) -> Any: ...


class NoOpSerializer:
    """Entities pass untouched; contexts become :class:`RequestContext`."""

    def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
        return entity

    def deserialize_entity(self, ctxt: Any, entity: Any) -> Any:
        return entity

    def serialize_context(self, ctxt: Any) -> dict[str, Any]:
        if ctxt is None:
            return {}
        if isinstance(ctxt, Mapping):
            return dict(ctxt)
        to_dict = getattr(ctxt, "to_dict", None)
        if to_dict is None:
            raise TypeError(f"cannot send a context of type {type(ctxt).__name__}")
        values: dict[str, Any] = to_dict()
        return values

    def deserialize_context(self, ctxt: dict[str, Any]) -> Any:
        return RequestContext.from_dict(ctxt)
