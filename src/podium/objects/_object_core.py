"""The field layer of a versioned object: typed fields, change tracking, copies.

Storage layout, chosen for speed: a set field lives in the instance
``__dict__`` under its own name, so reading it is a plain attribute lookup.
The class holds, per field, a non-data descriptor that only runs when the
field is *not* set (lazy load or a clear error). Assignment goes through
``__setattr__``, which coerces with a per-class table compiled once when the
class is created. The wire format (primitives, backports) is the layer above,
:class:`podium.objects.base.VersionedObject`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from podium._text import short_repr
from podium.exceptions import (
    ObjectActionError,
    ObjectAttributeNotSet,
    ObjectFieldError,
    ObjectFieldInvalid,
    PodiumError,
    ReadOnlyFieldError,
)
from podium.objects import fields as obj_fields
from podium.objects.fields._core import IMMUTABLE_TYPES
from podium.objects.fields._paths import Path

if TYPE_CHECKING:
    from typing import Self

_IMMUTABLE = IMMUTABLE_TYPES
CHILD_FIELD_TYPES = (obj_fields.ObjectField, obj_fields.ListOfObjectsField)
MISSING: Any = object()


def short(value: Any) -> str:
    return short_repr(value)


class _FieldSlot:
    """Class-level stand-in for a field; reached only while the field is unset."""

    __slots__ = ("field", "name")

    def __init__(self, name: str, field: obj_fields.Field[Any]) -> None:
        self.name = name
        self.field = field

    def __get__(self, obj: ObjectCore | None, owner: type | None = None) -> Any:
        if obj is None:
            return self.field
        return obj._obj_load_and_get(self.name)


class ObjectCore:
    """Fields, attribute access, change tracking and copies of a versioned object."""

    fields: ClassVar[dict[str, obj_fields.Field[Any]]] = {}
    obj_extra_fields: ClassVar[Sequence[str]] = ()

    # Compiled per class by __init_subclass__.
    _obj_coercers: ClassVar[dict[str, Path]] = {}
    _obj_child_fields: ClassVar[tuple[str, ...]] = ()
    _obj_read_only: ClassVar[frozenset[str]] = frozenset()
    #: Names a field may not take: they would hide the object's own machinery.
    #: Set once the whole object class (fields and wire layers) exists.
    _obj_reserved: ClassVar[frozenset[str]] = frozenset()

    _context: Any
    _changed_fields: set[str]

    if TYPE_CHECKING:
        # Fields declared in a ``fields`` dict are invisible to type checkers;
        # declare them as class attributes to get precise types instead.
        def __getattr__(self, name: str) -> Any: ...

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._obj_compile()

    @classmethod
    def _obj_compile(cls) -> None:
        merged: dict[str, obj_fields.Field[Any]] = {}
        for klass in reversed(cls.__mro__[1:]):
            merged.update(getattr(klass, "fields", None) or {})
        own = cls.__dict__.get("fields")
        if own is not None:
            if not isinstance(own, Mapping):
                raise TypeError(f"{cls.__name__}.fields must be a dict of name -> Field")
            merged.update(own)
        for name, value in list(cls.__dict__.items()):
            if isinstance(value, obj_fields.Field):
                merged[name] = value
        reserved = cls._obj_reserved
        for name, field in merged.items():
            if not isinstance(field, obj_fields.Field):
                raise ObjectFieldInvalid(
                    f"{cls.__name__}.fields[{name!r}] is not a Field: {field!r}",
                    field=name,
                    objname=cls.obj_name(),
                )
            if not name.isidentifier() or name.startswith("_") or name in reserved:
                raise TypeError(f"{cls.__name__}: {name!r} cannot be a field name")
        cls.fields = merged
        for name, field in merged.items():
            setattr(cls, name, _FieldSlot(name, field))
        cls._obj_coercers = {name: f._paths.coerce for name, f in merged.items()}
        cls._obj_child_fields = tuple(
            name for name, f in merged.items() if isinstance(f, CHILD_FIELD_TYPES)
        )
        cls._obj_read_only = frozenset(name for name, f in merged.items() if f.read_only)

    def __init__(self, context: Any = None, **kwargs: Any) -> None:
        d = self.__dict__
        d["_context"] = context
        d["_changed_fields"] = set()
        for name, value in kwargs.items():
            if name not in self.fields:
                raise ObjectFieldError(f"{self.obj_name()} has no field {name!r}")
            setattr(self, name, value)

    # -- attribute access ------------------------------------------------------

    def __setattr__(self, name: str, value: Any) -> None:
        coerce = self._obj_coercers.get(name)
        if coerce is None:
            object.__setattr__(self, name, value)
            return
        try:
            value = coerce(self, name, value)
        except PodiumError:
            raise
        except (ValueError, TypeError, AttributeError) as exc:
            raise ObjectFieldError(
                f"{self.obj_name()}.{name}: bad value {short(value)}: {exc}"
            ) from exc
        d = self.__dict__
        if name in self._obj_read_only and name in d:
            if d[name] != value:
                raise ReadOnlyFieldError(f"{self.obj_name()}.{name} is read-only")
            return
        d[name] = value
        self._changed_fields.add(name)

    def __delattr__(self, name: str) -> None:
        if name in self.fields:
            if self.__dict__.pop(name, MISSING) is MISSING:
                raise ObjectAttributeNotSet(f"{self.obj_name()}.{name} is not set")
            return
        object.__delattr__(self, name)

    def _obj_load_and_get(self, name: str) -> Any:
        self.obj_load_attr(name)
        try:
            return self.__dict__[name]
        except KeyError:
            raise ObjectAttributeNotSet(
                f"{self.obj_name()}.{name} is still unset after obj_load_attr()"
            ) from None

    def obj_load_attr(self, attrname: str) -> None:
        """Lazy-load hook for an unset field; the default refuses clearly."""
        raise ObjectAttributeNotSet(
            f"{self.obj_name()}.{attrname} is not set, and {self.obj_name()} "
            "does not lazy-load it (no obj_load_attr override)"
        )

    def obj_attr_is_set(self, attrname: str) -> bool:
        if attrname not in self.fields and attrname not in self.obj_extra_fields:
            raise ObjectAttributeNotSet(f"{self.obj_name()} has no field {attrname!r}")
        return attrname in self.__dict__

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.fields and name in self.__dict__

    @property
    def obj_fields(self) -> list[str]:
        return [*self.fields, *self.obj_extra_fields]

    @property
    def obj_context(self) -> Any:
        return self._context

    @classmethod
    def obj_name(cls) -> str:
        """The name on the wire; the class name unless overridden."""
        return cls.__name__

    def __repr__(self) -> str:
        d = self.__dict__
        parts = [
            f"{name}={field.stringify(d[name]) if name in d else '<?>'}"
            for name, field in sorted(self.fields.items())
        ]
        return f"{self.obj_name()}({','.join(parts)})"

    # -- changes ---------------------------------------------------------------

    def obj_what_changed(self) -> set[str]:
        """Changed fields, including object fields whose children changed."""
        # Only fields: a name that is not one (sent by a broken peer, or added
        # by hand) is not a change of this object.
        changes = self._changed_fields & self.fields.keys()
        d = self.__dict__
        for name in self._obj_child_fields:
            if name in changes:
                continue
            value = d.get(name)
            if value is None:
                continue
            if isinstance(value, ObjectCore):
                if value.obj_what_changed():
                    changes.add(name)
            elif any(item.obj_what_changed() for item in value):
                changes.add(name)
        return changes

    def obj_get_changes(self) -> dict[str, Any]:
        d = self.__dict__
        return {name: d[name] for name in self.obj_what_changed() if name in d}

    def obj_reset_changes(
        self, fields: Sequence[str] | None = None, recursive: bool = False
    ) -> None:
        """Forget changes (all, or of ``fields``); ``recursive`` also resets children."""
        if recursive:
            d = self.__dict__
            for name in self._obj_child_fields:
                if fields is not None and name not in fields:
                    continue
                value = d.get(name)
                if isinstance(value, ObjectCore):
                    value.obj_reset_changes(recursive=True)
                elif value is not None:
                    for item in value:
                        item.obj_reset_changes(recursive=True)
        if fields is None:
            self._changed_fields.clear()
        else:
            self._changed_fields.difference_update(fields)

    def obj_set_defaults(self, *attrs: str) -> None:
        """Set the named (default: all defaulted) unset fields to their defaults."""
        if not attrs:
            attrs = tuple(
                name
                for name, field in self.fields.items()
                if field.default is not obj_fields.UnspecifiedDefault
            )
        for attr in attrs:
            field = self.fields.get(attr)
            if field is None:
                raise ObjectAttributeNotSet(f"{self.obj_name()} has no field {attr!r}")
            if field.default is obj_fields.UnspecifiedDefault:
                raise ObjectActionError(f"{self.obj_name()}.{attr} has no default")
            if attr not in self.__dict__:
                setattr(self, attr, copy.deepcopy(field.default))

    # -- copies ----------------------------------------------------------------

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        cls = type(self)
        new = cls.__new__(cls)
        memo[id(self)] = new
        nd = new.__dict__
        fields = self.fields
        for key, value in self.__dict__.items():
            if key in fields and value.__class__ not in _IMMUTABLE:
                nd[key] = copy.deepcopy(value, memo)
            elif key == "_changed_fields":
                nd[key] = set(value)
            else:
                # Context, registry, indirection API: shared, not copied.
                nd[key] = value
        return new

    def __copy__(self) -> Self:
        cls = type(self)
        new = cls.__new__(cls)
        new.__dict__.update(self.__dict__)
        # The change set must not be shared between the two objects.
        new.__dict__["_changed_fields"] = set(self._changed_fields)
        return new

    def obj_clone(self) -> Self:
        """A deep copy of the field values; the context is shared."""
        return copy.deepcopy(self)
