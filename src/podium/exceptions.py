"""Every error podium raises, under one root.

Lower-layer errors (pika, SQLAlchemy, JSON decoders) are translated once, at the
boundary of the layer that meets them, into one of these::

    PodiumError
    ├── ObjectError                      podium.objects
    │   ├── IncompatibleObjectVersion    no registered class can read that version
    │   │   └── InvalidTargetVersion     a backport asked for a version newer than the object
    │   ├── UnsupportedObjectError       wrong namespace, or class name not registered
    │   │   └── UnregisteredSubobject    an object's child class is not registered
    │   ├── ObjectFormatError            a primitive that is not a well-formed object
    │   ├── ObjectFieldError             bad value for a field (also a ValueError)
    │   ├── ObjectAttributeNotSet        read of an unset field with no lazy loader
    │   │                                (also an AttributeError, so hasattr() is False)
    │   ├── ReadOnlyFieldError           assignment to a read-only field already set
    │   ├── OrphanedObjectError          remotable method called with no context
    │   ├── ObjectActionError            an object method refused to act
    │   ├── ObjectFieldInvalid           a class declared something not a Field as a field
    │   │                                (also a TypeError)
    │   ├── EnumRequiresValidValuesError an Enum with no valid values (also a ValueError)
    │   ├── EnumValidValuesInvalidError  an Enum valid value of no usable type (also a ValueError)
    │   ├── EnumFieldInvalid             a BaseEnumField whose AUTO_TYPE is not an Enum
    │   │                                (also a TypeError)
    │   ├── EnumFieldUnset               a BaseEnumField with no AUTO_TYPE (also a TypeError)
    │   ├── TargetBeforeSubobjectExistedException
    │   │                                oslo's; podium's backports drop the field instead
    │   └── MethodNotRemotable           a dispatcher was asked for a non-remotable method
    ├── MessagingError                   podium.rpc
    │   ├── InvalidTransportURL
    │   ├── InvalidTarget
    │   ├── TransportError               the broker connection failed (recoverable)
    │   ├── MessagingTimeout             a call got no reply in time
    │   ├── NoConsumer                   a call was published where nobody listens
    │   ├── MalformedMessage             undecodable, oversized or ill-shaped message
    │   │   └── MalformedContext         a request context with an ill-typed, oversized
    │   │                                or contradictory field (also a ValueError)
    │   ├── NoSuchMethod                 no endpoint has the method
    │   ├── UnsupportedVersion           no endpoint serves that API version
    │   ├── UnauthenticatedMessage       a message refused for its signature: none where
    │   │                                one is required, forged, an untrusted key,
    │   │                                stale or replayed
    │   └── RemoteError                  a remote exception not on the allow-list
    ├── DBError                          podium.db
    │   ├── DBNotAllowed                 this process called block_db_access()
    │   ├── InvalidDatabaseURL           a database URL that names no usable driver
    │   ├── DBConnectionError            the database server could not be reached
    │   ├── DBDeadlock                   the transaction lost to a concurrent one and
    │   │                                was rolled back (deadlock, serialization
    │   │                                failure, SQLite's busy snapshot): safe to retry
    │   ├── NotFound                     no (visible) row matches
    │   └── DuplicateEntry               a unique constraint refused the row
    ├── ConductorError                   podium.conductor
    │   └── PolicyNotAuthorized          the conductor's policy refused the sender this
    │                                    object call
    └── AppError                         podium.apps: an installed application that
                                         does not load or is ill-declared

Applications define their own errors under ``PodiumError`` in modules of their
own, and list those modules in their ``App.remote_exceptions`` so that callers
re-raise them as themselves too.

``VersionedObjectsException`` is oslo's name for ``ObjectError`` (the root of
the object errors), and :func:`wrap_exception` is oslo's notifying decorator,
so code that imports oslo's ``exception`` module ports with an import change.

Every class here lives in ``podium.exceptions`` so that the default
``allowed_remote_exmods`` (``["podium.exceptions"]``) lets a caller re-raise any
podium error raised on a remote service as itself.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

LOG = logging.getLogger(__name__)


class PodiumError(Exception):
    """Root of every podium exception.

    Built as oslo.versionedobjects' ``VersionedObjectsException`` is, so that
    ported code keeps working: ``PodiumError("text")`` takes the text as is;
    with no text, the message is the class's ``msg_fmt`` filled from the
    keyword arguments (``ObjectActionError(action="save", reason="gone")``).
    Keyword arguments are kept in :attr:`kwargs`, with ``code`` 500 unless
    given; RPC sends them with a remote error and the caller rebuilds the
    exception from them.
    """

    msg_fmt = "An unknown exception occurred."

    def __init__(self, message: Any = None, *args: Any, **kwargs: Any) -> None:
        self.kwargs: dict[str, Any] = kwargs
        kwargs.setdefault("code", 500)
        if not message and not args:
            try:
                message = self.msg_fmt % kwargs
            except (KeyError, TypeError, ValueError):
                # As oslo: a missing or ill-typed argument must not turn the
                # error being raised into a formatting error. Names only: the
                # values may hold secrets.
                LOG.warning(
                    "%s: msg_fmt does not format with arguments %s",
                    type(self).__name__,
                    sorted(kwargs),
                )
                message = self.msg_fmt
            super().__init__(message)
        else:
            super().__init__(message, *args)

    def format_message(self) -> str:
        """The message, as oslo's ``format_message()`` gives it."""
        return str(self.args[0]) if self.args else str(self)


# -- objects -----------------------------------------------------------------


class ObjectError(PodiumError):
    pass


class IncompatibleObjectVersion(ObjectError):
    msg_fmt = (
        "Version %(objver)s of %(objname)s is not supported, supported version is %(supported)s"
    )

    def __init__(
        self,
        objname: str = "",
        objver: str = "",
        supported: str | None = None,
        message: str | None = None,
        **kwargs: Any,
    ) -> None:
        # Positional (podium) or keyword (oslo) arguments; both end in kwargs
        # as oslo's do.
        self.objname = objname
        self.objver = objver
        self.supported = supported
        if message is None:
            detail = f"; newest known is {supported}" if supported else ""
            message = f"Version {objver} of {objname} is not supported{detail}"
        kwargs.update(objname=objname, objver=objver, supported=supported)
        super().__init__(message, **kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        # No positional arguments: RPC rebuilds it as cls(*args, **kwargs), and
        # kwargs already names all three.
        return (type(self), (), dict(self.kwargs, message=self.args[0]))

    def __setstate__(self, state: dict[str, Any] | None) -> None:
        self.__init__(**(state or {}))  # type: ignore[misc]


class UnsupportedObjectError(ObjectError):
    msg_fmt = "Unsupported object type %(objtype)s"


class ObjectFormatError(ObjectError):
    pass


class ObjectFieldError(ObjectError, ValueError):
    pass


class ObjectAttributeNotSet(ObjectError, AttributeError):
    pass


class ReadOnlyFieldError(ObjectError):
    msg_fmt = "Cannot modify readonly field %(field)s"


class OrphanedObjectError(ObjectError):
    msg_fmt = "Cannot call %(method)s on orphaned %(objtype)s object"


class ObjectActionError(ObjectError):
    msg_fmt = "Object action %(action)s failed because: %(reason)s"


class MethodNotRemotable(ObjectError):
    pass


#: oslo.versionedobjects' root exception name; here the root of the object errors.
VersionedObjectsException = ObjectError


class InvalidTargetVersion(IncompatibleObjectVersion):
    """A backport asked for a version newer than the object itself.

    Also an :class:`IncompatibleObjectVersion`: podium raised that before it
    had oslo's name. Built as oslo's (``InvalidTargetVersion(version="1.7")``)
    or podium's (object name, version asked, object's version).
    """

    msg_fmt = "Invalid target version %(version)s"

    def __init__(
        self,
        objname: str = "",
        objver: str = "",
        supported: str | None = None,
        message: str | None = None,
        *,
        version: str | None = None,
        **kwargs: Any,
    ) -> None:
        objver = objver or version or ""
        if message is None:
            detail = f" for {objname} (its version is {supported})" if objname else ""
            message = f"Invalid target version {objver}{detail}"
        kwargs["version"] = objver
        super().__init__(objname, objver, supported, message, **kwargs)


class ObjectFieldInvalid(ObjectError, TypeError):
    msg_fmt = "Field %(field)s of %(objname)s is not an instance of Field"


class EnumRequiresValidValuesError(ObjectError, ValueError):
    msg_fmt = "Enum fields require a list of valid_values"


class EnumValidValuesInvalidError(ObjectError, ValueError):
    msg_fmt = "Enum valid values are not valid"


class EnumFieldInvalid(ObjectError, TypeError):
    msg_fmt = "%(typename)s in %(fieldname)s is not an instance of Enum"


class EnumFieldUnset(ObjectError, TypeError):
    msg_fmt = "%(fieldname)s missing field type"


class TargetBeforeSubobjectExistedException(ObjectError):
    msg_fmt = "No subobject existed at version %(target_version)s"


class UnregisteredSubobject(UnsupportedObjectError):
    msg_fmt = "%(child_objname)s is referenced by %(parent_objname)s but is not registered"


_F = TypeVar("_F", bound=Callable[..., Any])

# Argument names whose values never go into a notification.
_SECRET_ARGUMENTS = ("_pass", "password", "secret", "token")


def wrap_exception(
    notifier: Any = None, get_notifier: Callable[[], Any] | None = None
) -> Callable[[_F], _F]:
    """oslo's decorator for ``method(self, context, ...)``: an exception it raises
    is sent to ``notifier.error(context, method_name, payload)`` and re-raised.

    ``payload`` is ``{"exception": exc, "args": {name: value}}`` without
    ``self``, ``context`` and arguments whose names look secret. With neither
    ``notifier`` nor ``get_notifier`` the exception is only re-raised.
    """

    def decorate(func: _F) -> _F:
        @functools.wraps(func)
        def wrapped(self: Any, context: Any, /, *args: Any, **kwargs: Any) -> Any:
            try:
                return func(self, context, *args, **kwargs)
            except Exception as exc:
                sink = notifier if notifier is not None else (get_notifier and get_notifier())
                if sink is not None:
                    try:
                        bound = inspect.signature(func).bind(self, context, *args, **kwargs)
                        call_args = dict(bound.arguments)
                    except TypeError:
                        call_args = {}
                    cleaned = {
                        name: value
                        for name, value in list(call_args.items())[2:]
                        if not any(word in name.lower() for word in _SECRET_ARGUMENTS)
                    }
                    sink.error(context, func.__name__, {"exception": exc, "args": cleaned})
                raise

        return cast(_F, wrapped)

    return decorate


# -- messaging ---------------------------------------------------------------


class MessagingError(PodiumError):
    pass


class InvalidTransportURL(MessagingError):
    pass


class InvalidTarget(MessagingError):
    pass


class TransportError(MessagingError):
    pass


class MessagingTimeout(MessagingError):
    pass


class NoConsumer(MessagingError):
    pass


class MalformedMessage(MessagingError):
    pass


# Under MalformedMessage because a context mostly arrives inside one, where the
# dispatcher turns this into the caller's reply; also a ValueError because a
# context built in code with a bad value is a bad argument.
class MalformedContext(MalformedMessage, ValueError):
    pass


class NoSuchMethod(MessagingError):
    pass


class UnsupportedVersion(MessagingError):
    pass


class UnauthenticatedMessage(MessagingError):
    """A request or reply refused for its signature (podium.rpc message signing)."""


class RemoteError(MessagingError):
    """A remote exception whose type the caller may not rebuild."""

    def __init__(
        self,
        exc_type: str = "",
        value: str = "",
        traceback: str | list[str] = "",
        **kwargs: Any,
    ) -> None:
        self.exc_type = exc_type
        self.value = value
        self.traceback = traceback if isinstance(traceback, str) else "".join(traceback)
        # kwargs: what a RemoteError sent on from a server carries (``code``).
        super().__init__(f"Remote error: {exc_type} {value}\n{self.traceback}".rstrip(), **kwargs)


# -- database ----------------------------------------------------------------


class DBError(PodiumError):
    pass


class DBNotAllowed(DBError):
    pass


class InvalidDatabaseURL(DBError):
    pass


class DBConnectionError(DBError):
    pass


class DBDeadlock(DBError):
    """Rolled back by the database in favour of a concurrent transaction; nothing committed."""


class NotFound(DBError):
    pass


class DuplicateEntry(DBError):
    pass


# -- conductor ---------------------------------------------------------------


class ConductorError(PodiumError):
    pass


class PolicyNotAuthorized(ConductorError):
    """The conductor's policy does not let the (signed) sender make this object call."""

    msg_fmt = "%(sender)s may not call %(action)s"

    def __init__(self, message: Any = None, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("code", 403)
        super().__init__(message, *args, **kwargs)


# -- applications -------------------------------------------------------------


class AppError(PodiumError):
    pass
