"""``remotable`` methods: run here, or through the class's indirection API.

On a worker, ``instance.save()`` becomes ``indirection_api.object_action(...)``
and ``Instance.get_by_uuid(ctx, u)`` becomes
``indirection_api.object_class_action_versions(...)``. Where the data lives
(the conductor) ``indirection_api`` is None and the same calls run the real
code.

A dispatcher (the conductor) must call only remotable methods and must run
their real code even in a process where ``indirection_api`` is set (the
embedded all-in-one): :func:`local_method` does both.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar, cast

from podium.exceptions import (
    MethodNotRemotable,
    ObjectFieldError,
    ObjectFormatError,
    OrphanedObjectError,
    PodiumError,
)
from podium.objects import base as _base
from podium.objects.base import VersionedObject

__all__ = [
    "apply_updates",
    "is_remotable",
    "local_method",
    "remotable",
    "remotable_classmethod",
    "run_locally",
]

P = ParamSpec("P")
R = TypeVar("R")

_RUN_LOCALLY: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "podium_objects_run_locally", default=False
)


@contextmanager
def run_locally() -> Iterator[None]:
    """Within the block (this thread / task only), remotable methods run here."""
    token = _RUN_LOCALLY.set(True)
    try:
        yield
    finally:
        _RUN_LOCALLY.reset(token)


def _mark(wrapper: Callable[..., Any], fn: Callable[..., Any]) -> None:
    # Discoverable by dispatchers and by the version-fingerprint checker.
    setattr(wrapper, "remotable", True)  # noqa: B010
    setattr(wrapper, "original_fn", fn)  # noqa: B010


def is_remotable(func: Any) -> bool:
    """True for a function, method or classmethod made by :func:`remotable`."""
    if isinstance(func, (classmethod, staticmethod)):
        func = func.__func__
    return getattr(func, "remotable", False) is True


def remotable(fn: Callable[P, R]) -> Callable[P, R]:
    """Mark an object method remotable (also works under ``@classmethod``)."""

    @functools.wraps(fn)
    def wrapper(first: Any, /, *args: Any, **kwargs: Any) -> Any:
        if isinstance(first, type):
            return _class_call(fn, first, args, kwargs)
        return _instance_call(fn, first, args, kwargs)

    _mark(wrapper, fn)
    return cast("Callable[P, R]", wrapper)


def remotable_classmethod(fn: Callable[..., R]) -> classmethod[Any, Any, R]:
    """A remotable class method; the first argument after ``cls`` is the context."""
    return classmethod(remotable(fn))


def _instance_call(fn: Callable[..., Any], obj: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
    context = obj._context
    if context is None:
        raise OrphanedObjectError(
            f"cannot call {obj.obj_name()}.{fn.__name__}() on an object with no context"
        )
    api = None if _RUN_LOCALLY.get() else obj.indirection_api
    if api is None:
        return fn(obj, *args, **kwargs)
    updates, result = api.object_action(
        context, objinst=obj, objmethod=fn.__name__, args=args, kwargs=kwargs
    )
    apply_updates(obj, updates)
    return result


def _class_call(fn: Callable[..., Any], cls: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
    if args:
        context, rest, rest_kwargs = args[0], args[1:], kwargs
    elif "context" in kwargs:
        rest_kwargs = dict(kwargs)
        context, rest = rest_kwargs.pop("context"), ()
    else:
        raise OrphanedObjectError(
            f"{cls.obj_name()}.{fn.__name__}() needs a context as its first argument"
        )
    api = None if _RUN_LOCALLY.get() else cls.indirection_api
    if api is None:
        result = fn(cls, *args, **kwargs)
    else:
        if context is None:
            raise OrphanedObjectError(
                f"cannot call {cls.obj_name()}.{fn.__name__}() remotely with no context"
            )
        result = api.object_class_action_versions(
            context,
            objname=cls.obj_name(),
            objmethod=fn.__name__,
            # Looked up on the module, as oslo's is, so a test can patch it there.
            object_versions=_base.obj_tree_get_versions(cls.obj_name(), cls._obj_registry),
            args=rest,
            kwargs=rest_kwargs,
        )
    if isinstance(result, VersionedObject):
        result._context = context
    return result


def apply_updates(obj: VersionedObject, updates: Mapping[str, Any]) -> None:
    """Apply an ``object_action`` reply's updates to the caller's copy of ``obj``.

    Field values may be primitives or already-deserialized objects; afterwards
    the change set is exactly the remote copy's (``updates['obj_what_changed']``).
    """
    if not isinstance(updates, Mapping):
        raise ObjectFormatError(
            f"object_action updates must be a dict, not {type(updates).__name__}"
        )
    decoders = obj._obj_decoders
    for key, value in updates.items():
        decode = decoders.get(key)
        if decode is None:
            continue
        if not isinstance(value, VersionedObject):
            try:
                value = decode(obj, key, value)
            except PodiumError:
                raise
            except (ValueError, TypeError, AttributeError, KeyError) as exc:
                raise ObjectFieldError(f"{obj.obj_name()}.{key}: bad update: {exc}") from exc
        setattr(obj, key, value)
    obj.obj_reset_changes()
    changed = updates.get("obj_what_changed") or ()
    if not isinstance(changed, (list, tuple, set, frozenset)):
        raise ObjectFormatError("updates['obj_what_changed'] must be a list of field names")
    obj._changed_fields.update(name for name in changed if name in obj.fields)


def local_method(target: VersionedObject | type[VersionedObject], name: str) -> Callable[..., Any]:
    """The remotable method ``name`` of ``target``, bound, running its real code.

    For a dispatcher: ``local_method(objinst, 'save')(*args, **kwargs)`` or
    ``local_method(ObjClass, 'get_by_uuid')(context, *args, **kwargs)``. It
    refuses (:class:`MethodNotRemotable`) anything not marked remotable, an
    instance method asked on a class and a class method asked on an instance.
    While the returned callable runs, nested remotable calls run locally too.
    """
    cls = target if isinstance(target, type) else type(target)
    label = f"{getattr(cls, '__name__', cls)}.{name!r:.60}"
    if not isinstance(name, str) or name.startswith("_"):
        raise MethodNotRemotable(f"{label} is not a remotable method")
    try:
        attr = inspect.getattr_static(cls, name)
    except AttributeError:
        raise MethodNotRemotable(f"{label} does not exist") from None
    if not is_remotable(attr):
        raise MethodNotRemotable(f"{label} is not a remotable method")
    is_class_method = isinstance(attr, classmethod)
    if is_class_method != isinstance(target, type):
        kind = "class" if is_class_method else "instance"
        raise MethodNotRemotable(f"{label} is an {kind} method; called on the wrong target")
    bound = getattr(target, name)

    @functools.wraps(bound)
    def call(*args: Any, **kwargs: Any) -> Any:
        with run_locally():
            return bound(*args, **kwargs)

    return call
