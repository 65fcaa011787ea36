"""The one interface through which objects reach the network.

``podium.objects`` imports nothing from ``podium.rpc``: a class whose
``indirection_api`` is set hands its remotable calls to that object, and
whatever implements these three methods (the conductor's client API, or the
in-process :class:`podium.objects.fixture.FakeIndirectionAPI`) does the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from podium.objects.base import VersionedObject

__all__ = ["IndirectionAPI", "VersionedObjectIndirectionAPI"]


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
