"""The one interface through which objects reach the network.

``podium.objects`` imports nothing from ``podium.rpc``: a class whose
``indirection_api`` is set hands its remotable calls to that object, and
whatever implements these three methods (the conductor's client API, or the
in-process :class:`podium.objects.fixture.FakeIndirectionAPI`) does the rest.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from podium.objects._versioned import VersionedObject

__all__ = ["IndirectionAPI", "VersionedObjectIndirectionAPI", "object_action_updates"]


@runtime_checkable
class IndirectionAPI(Protocol):
    """What a remotable method calls when its class has an ``indirection_api``.

    Arguments are always passed by keyword, with these names.
    """

    def object_action(
        self,
        context: Any,
        objinst: VersionedObject,
        objmethod: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> tuple[dict[str, Any], Any]:
        """Run ``objinst.objmethod(*args, **kwargs)`` where the data lives.

        Returns ``(updates, result)``: ``updates`` maps field names to new
        values (primitive form, or objects) and ``'obj_what_changed'`` to the
        list of fields changed on the remote copy.
        """
        ...

    def object_class_action_versions(
        self,
        context: Any,
        objname: str,
        objmethod: str,
        object_versions: dict[str, str],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Run the class method; objects in the result come back at ``object_versions``."""
        ...

    def object_backport_versions(
        self, context: Any, objinst: dict[str, Any], object_versions: dict[str, str]
    ) -> Any:
        """Return the object primitive ``objinst`` rewritten at ``object_versions``."""
        ...


#: oslo.versionedobjects' name for the interface (an abstract class there).
VersionedObjectIndirectionAPI = IndirectionAPI


def object_action_updates(before: VersionedObject, after: VersionedObject) -> dict[str, Any]:
    """The ``updates`` of an ``object_action`` reply: what ``after`` (the object once its
    method ran) holds differently from ``before`` (its copy from before the call).

    Every field set on ``after`` whose value differs, or that ``before`` did
    not have: nested objects as themselves (the serializer sends them), other
    values in primitive form; and ``'obj_what_changed'``, the fields ``after``
    has changed. The one diff every indirection API answers with, the
    conductor's and the test double's alike.
    """
    # Set fields live in the instance's __dict__ (unset ones are class-level
    # slots): read there, a diff costs no attribute machinery per field.
    now, then = after.__dict__, before.__dict__
    updates: dict[str, Any] = {}
    for name, field in after.fields.items():
        if name not in now:
            continue
        value = now[name]
        if name not in then or not _same(then[name], value):
            updates[name] = (
                value
                if isinstance(value, VersionedObject)
                else field.to_primitive(after, name, value)
            )
    updates["obj_what_changed"] = sorted(after.obj_what_changed())
    return updates


def _same(before: Any, after: Any) -> bool:
    """Whether two field values are equal; nested objects by their set fields' values.

    Objects have no equality of their own (two are equal only if they are one),
    and a method that reloads its object from the database builds its nested
    objects anew: compared as objects they would be sent back on every call.
    """
    if before is after:
        return True
    if not (isinstance(before, VersionedObject) and isinstance(after, VersionedObject)):
        return bool(before == after)
    if type(before) is not type(after):
        return False
    now, then = after.__dict__, before.__dict__
    for name in after.fields:
        is_set = name in now
        if is_set != (name in then):
            return False
        if is_set and not _same(then[name], now[name]):
            return False
    return True
