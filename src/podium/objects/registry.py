"""Which class reads which (name, version): the object registry.

``@VersionedObjectRegistry.register`` registers in the process-wide default
registry, as in oslo. A registry can also be its own instance, so a test (or a
tool) can hold an "old" and a "new" ``Instance`` side by side, as two services
of different ages would::

    old = VersionedObjectRegistry()

    @old.register            # on an instance: registers in that instance only
    class Instance(VersionedObject): ...

``register`` (and ``register_if``, ``objectify``, ``obj_classes``,
``obj_class_from_name``) bind to the default registry when called on the
class, and to the instance when called on an instance. ``register_class`` is
the explicit instance spelling. Called on a *subclass* (as oslo's registries
are used), they act on the default registry's classes but run that
subclass's ``registration_hook``.
"""

from __future__ import annotations

import collections
import threading
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, cast

from podium._text import short_repr
from podium._versions import parse_version
from podium.exceptions import IncompatibleObjectVersion, ObjectFormatError, UnsupportedObjectError

if TYPE_CHECKING:
    from podium.objects.base import VersionedObject

__all__ = ["VersionedObjectRegistry", "default_registry", "version_tuple"]

_VO = TypeVar("_VO", bound="type[VersionedObject]")
_P = ParamSpec("_P")
_R_co = TypeVar("_R_co", covariant=True)


def version_tuple(version: str) -> tuple[int, ...]:
    """``"1.10"`` -> ``(1, 10)``; a malformed version is an ObjectFormatError."""
    parsed = parse_version(version)
    if parsed is not None:
        return parsed
    raise ObjectFormatError(
        f"malformed object version {short_repr(version, 40)} (expected 'major.minor')"
    )


class _bound_to_registry(Generic[_P, _R_co]):
    """Method descriptor: on the class it binds to the default registry."""

    def __init__(self, func: Callable[Concatenate[VersionedObjectRegistry, _P], _R_co]) -> None:
        self.func = func
        self.__doc__ = func.__doc__

    def __get__(self, instance: VersionedObjectRegistry | None, owner: Any) -> Callable[_P, _R_co]:
        if instance is not None:
            target = instance
        elif owner is None or owner is VersionedObjectRegistry:
            target = default_registry()
        else:
            target = _default_seen_as(owner)
        return cast("Callable[_P, _R_co]", types.MethodType(self.func, target))


def _default_seen_as(subclass: type[VersionedObjectRegistry]) -> VersionedObjectRegistry:
    """The default registry's classes, behind a ``subclass`` instance: its hook runs.

    oslo's registry subclasses all share one store and differ by their
    ``registration_hook``; this gives ``@MyRegistry.register`` that meaning.
    """
    view = subclass.__new__(subclass)
    # Shares the store, cache and lock (no copy): a registration lands in the default.
    view.__dict__.update(default_registry().__dict__)
    return view


class VersionedObjectRegistry:
    """Every registered version of every object name, newest first."""

    def __init__(self) -> None:
        self._obj_classes: dict[str, list[type[VersionedObject]]] = {}
        # (name, requested version) -> class; cleared on every registration.
        self._lookup_cache: dict[tuple[str, str], type[VersionedObject]] = {}
        self._lock = threading.Lock()

    def registration_hook(self, cls: type[VersionedObject], index: int) -> None:
        """Called after ``cls`` took position ``index`` (0 = newest); override freely."""

    def register_class(self, cls: _VO) -> _VO:
        from podium.objects.base import VersionedObject

        if not (isinstance(cls, type) and issubclass(cls, VersionedObject)):
            raise TypeError(f"only VersionedObject subclasses can be registered, not {cls!r}")
        key = version_tuple(cls.VERSION)
        name = cls.obj_name()
        with self._lock:
            versions = self._obj_classes.setdefault(name, [])
            for index, known in enumerate(versions):
                known_key = version_tuple(known.VERSION)
                if known_key == key:
                    versions[index] = cls
                    break
                if key > known_key:
                    versions.insert(index, cls)
                    break
            else:
                versions.append(cls)
                index = len(versions) - 1
            self._lookup_cache.clear()
            # A class remembers its first registry: Old.obj_from_primitive(p)
            # then reads from the registry Old lives in.
            if "_obj_registry" not in cls.__dict__:
                cls._obj_registry = self
        self.registration_hook(cls, index)
        return cls

    @_bound_to_registry
    def register(self, cls: _VO) -> _VO:
        """Decorator: register ``cls`` (in the default registry when used on the class)."""
        return self.register_class(cls)

    @_bound_to_registry
    def register_if(self, condition: bool) -> Callable[[_VO], _VO]:
        def decorate(cls: _VO) -> _VO:
            return self.register_class(cls) if condition else cls

        return decorate

    @_bound_to_registry
    def objectify(self, cls: _VO) -> _VO:
        """Kept for oslo compatibility; fields are set up at class creation anyway."""
        return cls

    @_bound_to_registry
    def obj_classes(self) -> dict[str, list[type[VersionedObject]]]:
        """name -> registered classes, newest version first (a copy).

        A name never registered reads as ``[]``, as in oslo.
        """
        with self._lock:
            return collections.defaultdict(
                list, {name: list(classes) for name, classes in self._obj_classes.items()}
            )

    @_bound_to_registry
    def obj_class_from_name(self, objname: str, objver: str) -> type[VersionedObject]:
        """The class for ``objver``: exact, else the newest of the same major and a
        minor at least the one asked; else :class:`IncompatibleObjectVersion`."""
        try:
            return self._lookup_cache[(objname, objver)]
        except (KeyError, TypeError):
            pass
        if not isinstance(objname, str):
            raise ObjectFormatError(f"object name must be a string, not {objname!r:.40}")
        wanted = version_tuple(objver)
        versions = self._obj_classes.get(objname)
        if not versions:
            raise UnsupportedObjectError(f"unregistered object type {objname!r}")
        match: type[VersionedObject] | None = None
        for cls in versions:
            have = version_tuple(cls.VERSION)
            if have == wanted:
                match = cls
                break
            if match is None and have[0] == wanted[0] and have >= wanted:
                match = cls
        if match is None:
            raise IncompatibleObjectVersion(objname, objver, versions[0].VERSION)
        self._lookup_cache[(objname, objver)] = match
        return match

    def newest(self, objname: str) -> type[VersionedObject]:
        versions = self._obj_classes.get(objname)
        if not versions:
            raise UnsupportedObjectError(f"unregistered object type {objname!r}")
        return versions[0]

    def __contains__(self, objname: object) -> bool:
        return objname in self._obj_classes


_DEFAULT: VersionedObjectRegistry | None = None
_DEFAULT_LOCK = threading.Lock()


def default_registry() -> VersionedObjectRegistry:
    """The process-wide registry that ``@VersionedObjectRegistry.register`` fills."""
    global _DEFAULT
    if _DEFAULT is None:
        with _DEFAULT_LOCK:
            if _DEFAULT is None:
                _DEFAULT = VersionedObjectRegistry()
    return _DEFAULT
