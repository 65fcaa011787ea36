"""Server side of the conductor: runs object methods where the database is.

Only methods marked remotable are dispatched and only registered classes are
ever built from a message (the serializer refuses the rest before we run);
anything else is refused with :class:`~podium.exceptions.MethodNotRemotable`,
which the caller re-raises as itself, and a warning here. With a
:class:`~podium.conductor.policy.Policy`, a signed request is also checked
against it before the method runs (inside the request's transaction, so that
what the rule reads is what the method changes).
"""

from __future__ import annotations

import inspect
import itertools
import logging
from collections.abc import Callable
from typing import Any

from podium.context import RequestContext
from podium.db import Database
from podium.db.inbox import run_once
from podium.exceptions import MethodNotRemotable, ObjectFormatError
from podium.objects import (
    VersionedObject,
    VersionedObjectRegistry,
    VersionedObjectSerializer,
    local_method,
)
from podium.objects.indirection import object_action_updates
from podium.objects.registry import default_registry, version_tuple
from podium.rpc import Target, current_message_id, current_sender

from .api import CONDUCTOR_API_VERSION
from .policy import Policy, named_arguments

LOG = logging.getLogger(__name__)


def _dispatchable(target: Any, objmethod: Any) -> Callable[..., Any]:
    try:
        return local_method(target, objmethod)
    except MethodNotRemotable as exc:
        LOG.warning("refused object call: %s", exc)
        raise


def _function(target: Any, name: str) -> Any:
    """The plain function of a (class) method: hashable, its signature cached by the policy."""
    cls = target if isinstance(target, type) else type(target)
    attr = inspect.getattr_static(cls, name)
    return attr.__func__ if isinstance(attr, classmethod) else attr


def _check_arguments(args: Any, kwargs: Any) -> None:
    """A clear refusal for arguments no worker sends (they would fail deep in a call)."""
    if not isinstance(args, list | tuple):
        raise ObjectFormatError(f"args must be a list, not {type(args).__name__}")
    if not isinstance(kwargs, dict) or not all(isinstance(key, str) for key in kwargs):
        raise ObjectFormatError("kwargs must map argument names (strings) to values")


class ConductorManager:
    """The endpoint of topic ``conductor``."""

    target = Target(version=CONDUCTOR_API_VERSION)

    def __init__(
        self,
        database: Database,
        registry: VersionedObjectRegistry | None = None,
        host: str | None = None,
        policy: Policy | None = None,
    ) -> None:
        self.database = database
        self.registry = registry or default_registry()
        self.host = host
        self.policy = policy
        # Turns a reply into what the inbox stores (the primitives the wire carries).
        self._serializer = VersionedObjectSerializer(registry=self.registry)
        # itertools.count is atomic under the GIL: no lock on the hot path.
        self._served = itertools.count(1)
        self._served_total = 0

    def _count(self) -> None:
        self._served_total = next(self._served)

    def _authorize(
        self,
        ctxt: RequestContext,
        target: VersionedObject | type[VersionedObject],
        objmethod: str,
        args: Any,
        kwargs: dict[str, Any],
    ) -> None:
        """Check a signed request against the policy (an unsigned one has nobody to check).

        ``target``: the object of an object method, or the class of a class
        method (whose ``args`` then begin with the context).
        """
        sender = current_sender()
        if sender is None or self.policy is None:
            return
        arguments = named_arguments(_function(target, objmethod), args, kwargs)
        obj = None if isinstance(target, type) else target
        self.policy.check(sender, ctxt, target.obj_name(), objmethod, obj, arguments)

    def ping(self, ctxt: RequestContext) -> dict[str, Any]:
        """Which conductor answered and how many object calls it has served."""
        return {"host": self.host, "served": self._served_total}

    def object_action(
        self,
        ctxt: RequestContext,
        objinst: VersionedObject,
        objmethod: str,
        args: list[Any],
        kwargs: dict[str, Any],
    ) -> tuple[dict[str, Any], Any]:
        if not isinstance(objinst, VersionedObject):
            raise MethodNotRemotable(f"object_action needs an object, got {type(objinst).__name__}")
        _check_arguments(args, kwargs)
        # Bound to objinst, whose __dict__ a second run replaces in place: one
        # lookup serves every run.
        method = _dispatchable(objinst, objmethod)
        self._count()

        before = objinst.obj_clone()
        attempts = 0

        def run() -> tuple[dict[str, Any], Any]:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                # The inbox runs a method again after rolling its first run back
                # (see podium.db.inbox): from the object as it was sent.
                objinst.__dict__.clear()
                objinst.__dict__.update(before.obj_clone().__dict__)
            self._authorize(ctxt, objinst, objmethod, args, kwargs)
            result = method(*args, **kwargs)
            return object_action_updates(before, objinst), result

        reply = run_once(
            self.database,
            current_message_id(),
            f"object_action {objinst.obj_name()}.{objmethod}"[:255],
            run,
            lambda value: self._serializer.serialize_entity(ctxt, value),
        )
        # A reply from the inbox is the stored primitives (a list): the same
        # on the wire.
        return reply if isinstance(reply, tuple) else tuple(reply)

    def object_class_action_versions(
        self,
        ctxt: RequestContext,
        objname: str,
        objmethod: str,
        object_versions: dict[str, str],
        args: list[Any],
        kwargs: dict[str, Any],
    ) -> Any:
        if not isinstance(objname, str):
            raise ObjectFormatError(f"objname must be a string, not {type(objname).__name__}")
        _check_arguments(args, kwargs)
        if not isinstance(object_versions, dict) or not isinstance(
            object_versions.get(objname), str
        ):
            raise ObjectFormatError(f"object_versions must map {objname!s:.60} to a version")
        objclass = self.registry.obj_class_from_name(objname, object_versions[objname])
        method = _dispatchable(objclass, objmethod)
        self._count()

        def run() -> Any:
            self._authorize(ctxt, objclass, objmethod, [ctxt, *args], kwargs)
            result = method(ctxt, *args, **kwargs)
            if isinstance(result, VersionedObject):
                # The RPC layer would send our newest version; honour the caller's.
                wanted = object_versions.get(result.obj_name(), result.VERSION)
                if version_tuple(wanted) != version_tuple(result.VERSION):
                    return result.obj_to_primitive(
                        target_version=wanted, version_manifest=object_versions
                    )
            return result

        # Class methods are mostly reads, which leave no record; one that
        # writes (a create, a bulk update) is recorded like an object_action.
        return run_once(
            self.database,
            current_message_id(),
            f"object_class_action_versions {objname}.{objmethod}"[:255],
            run,
            lambda value: self._serializer.serialize_entity(ctxt, value),
        )

    def object_backport_versions(
        self, ctxt: RequestContext, objinst: VersionedObject, object_versions: dict[str, str]
    ) -> dict[str, Any]:
        if not isinstance(objinst, VersionedObject):
            raise ObjectFormatError(
                f"object_backport_versions needs an object, got {type(objinst).__name__}"
            )
        if not isinstance(object_versions, dict) or not all(
            isinstance(name, str) and isinstance(version, str)
            for name, version in object_versions.items()
        ):
            raise ObjectFormatError("object_versions must map object names to version strings")
        for version in object_versions.values():
            version_tuple(version)  # a malformed one is an ObjectFormatError
        return objinst.obj_to_primitive(
            target_version=object_versions.get(objinst.obj_name()),
            version_manifest=object_versions,
        )
