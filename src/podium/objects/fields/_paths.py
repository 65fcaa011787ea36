"""A field's fast paths, derived in this one place from its type's :class:`Native` declaration.

Every object that crosses the bus goes through these once per field, so each
field compiles, once, three paths with the signature of the public methods:

* ``coerce(obj, attr, value)``: the value to store for an assignment;
* ``decode(obj, attr, primitive)``: the value for a wire form;
* ``encode(obj, attr, value)``: the wire form of a value that is not None,
  or no path at all when every value is its own wire form.

A native value (see :class:`Native`) is returned as it is (a container as a
shallow copy), None as the field says (nullable, or its default), anything
else goes to the type's ``coerce`` / ``from_primitive``. A field type without
a declaration has no fast path: each value goes to those. A Field subclass's
own ``coerce`` / ``from_primitive`` / ``to_primitive`` is its path as it is.
Built-in and user types are treated alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from podium.objects.fields._core import INT64_MAX, INT64_MIN, AbstractFieldType, FieldType, Native

if TYPE_CHECKING:
    from podium.objects.fields._field import Field

#: ``(obj, attr, value) -> value``, the signature of ``coerce`` and its kin.
Path = Callable[[Any, str, Any], Any]
_Check = Callable[[Any], bool]
_Null = Callable[[Any, str], Any]
_AllCheck = Callable[[Iterable[Any]], bool]


@dataclass(frozen=True, slots=True)
class FieldPaths:
    """The compiled paths of one field (see the module's docstring)."""

    coerce: Path
    decode: Path
    #: None: a value is its own primitive (str, int, ...).
    encode: Path | None
    #: A primitive of exactly this class is stored as it is, without a call
    #: (an int only within 64 bits: the object checks that range itself).
    inline: type | None


def _owner(cls: type, name: str) -> type:
    """The class of ``cls``'s MRO that defines ``name``."""
    return next(klass for klass in cls.__mro__ if name in klass.__dict__)


def native_of(field_type: AbstractFieldType[Any]) -> Native | None:
    """``field_type``'s declaration, if it still speaks for the type's conversions.

    A declaration made above the class that defines ``coerce`` or
    ``from_primitive`` is about someone else's code: it is ignored.
    """
    cls = type(field_type)
    declared_by = _owner(cls, "native")
    for method in ("coerce", "from_primitive"):
        if not issubclass(declared_by, _owner(cls, method)):
            return None
    return field_type.native()


def compile_paths(field: Field[Any], own: Iterable[str]) -> FieldPaths:
    """The paths of ``field``; ``own`` names the conversions its Field subclass defines."""
    own = frozenset(own)
    field_type = field.field_type
    native = native_of(field_type)
    null = field._null
    if "coerce" in own:
        coerce: Path = field.coerce
    else:
        coerce = _path(native, field_type.coerce, null)
    if "from_primitive" in own:
        decode: Path = field.from_primitive
        native = None  # no inline decoding either
    else:
        decode = _path(native, field_type.from_primitive, null)
    encode: Path | None = field.to_primitive
    if "to_primitive" not in own:
        identity = _owner(type(field_type), "to_primitive") is FieldType
        encode = None if identity else field_type.to_primitive
    return FieldPaths(coerce, decode, encode, _inline(native))


def _inline(native: Native | None) -> type | None:
    if native is None or native.items is not None:
        return None
    if native.plain:
        return native.kind
    unchecked = native.members is None and native.test is None
    if native.kind is int and unchecked and _within(native, INT64_MIN, INT64_MAX):
        return int
    return None


def _within(native: Native, low: int, high: int) -> bool:
    """Does ``native``'s range hold [low, high]?"""
    return (native.low is None or native.low <= low) and (
        native.high is None or native.high >= high
    )


def _bounds(native: Native) -> tuple[Any, Any]:
    low = -math.inf if native.low is None else native.low
    high = math.inf if native.high is None else native.high
    return low, high


def _range_only(native: Native) -> bool:
    return native.items is None and native.members is None and native.test is None


def _path(native: Native | None, convert: Path, null: _Null) -> Path:
    """``convert`` (a type's coerce or from_primitive) behind the fast path of ``native``.

    None is the field's (nullable, or its default); a native value is taken as
    it is, a container as a shallow copy; anything else goes to ``convert``.
    """
    if native is None:

        def general(obj: Any, attr: str, value: Any) -> Any:
            if value is None:
                return null(obj, attr)
            return convert(obj, attr, value)

        return general
    if native.items is not None:
        return _container_path(native, convert, null)
    if native.plain:
        return _plain_path(native.kind, convert, null)
    if _range_only(native):
        return _range_path(native, convert, null)
    return _checked_path(native, convert, null)


def _plain_path(kind: type, convert: Path, null: _Null) -> Path:
    def plain(obj: Any, attr: str, value: Any) -> Any:
        if value.__class__ is kind:
            return value
        if value is None:
            return null(obj, attr)
        return convert(obj, attr, value)

    return plain


def _range_path(native: Native, convert: Path, null: _Null) -> Path:
    kind = native.kind
    low, high = _bounds(native)

    # An int in range, the usual case, costs one chained comparison.
    def in_range(obj: Any, attr: str, value: Any) -> Any:
        if value.__class__ is kind and low <= value <= high:
            return value
        if value is None:
            return null(obj, attr)
        return convert(obj, attr, value)

    return in_range


def _checked_path(native: Native, convert: Path, null: _Null) -> Path:
    kind, test, members = native.kind, native.test, native.members
    if test is not None and members is None and native.low is None and native.high is None:

        def tested(obj: Any, attr: str, value: Any) -> Any:
            if value.__class__ is kind and test(value):
                return value
            if value is None:
                return null(obj, attr)
            return convert(obj, attr, value)

        return tested
    is_native = _predicate(native)

    def checked(obj: Any, attr: str, value: Any) -> Any:
        if is_native(value):
            return value
        if value is None:
            return null(obj, attr)
        return convert(obj, attr, value)

    return checked


def _container_path(native: Native, convert: Path, null: _Null) -> Path:
    assert native.items is not None
    kind: Any = native.kind  # list or set here: Any, so mypy keeps value's type
    items_native = _all_native(native.items)
    if kind is dict:
        keys_native = _all_native(Native(str))

        def dict_path(obj: Any, attr: str, value: Any) -> Any:
            if value.__class__ is dict and keys_native(value) and items_native(value.values()):
                return value.copy()
            if value is None:
                return null(obj, attr)
            return convert(obj, attr, value)

        return dict_path

    def list_or_set_path(obj: Any, attr: str, value: Any) -> Any:
        if value.__class__ is kind and items_native(value):
            return value.copy()
        if value is None:
            return null(obj, attr)
        return convert(obj, attr, value)

    return list_or_set_path


def _all_native(native: Native) -> _AllCheck:
    """A check that every one of some values is native (for a container's elements)."""
    kind = native.kind
    if native.plain:

        def all_plain(values: Iterable[Any]) -> bool:
            # A loop, not all(): a generator costs more than the checks.
            for value in values:  # noqa: SIM110
                if value.__class__ is not kind:
                    return False
            return True

        return all_plain
    if _range_only(native):
        low, high = _bounds(native)

        def all_in_range(values: Iterable[Any]) -> bool:
            for value in values:
                if value.__class__ is not kind or not low <= value <= high:
                    return False
            return True

        return all_in_range
    is_native = _predicate(native)

    def all_checked(values: Iterable[Any]) -> bool:
        for value in values:  # noqa: SIM110
            if not is_native(value):
                return False
        return True

    return all_checked


def _predicate(native: Native) -> _Check:
    """Is one value native (an immutable kind: a container never reaches here)?"""
    kind, members, test = native.kind, native.members, native.test
    ranged = native.low is not None or native.high is not None
    low, high = _bounds(native)

    def is_native(value: Any) -> bool:
        if value.__class__ is not kind or (ranged and not low <= value <= high):
            return False
        if members is not None and value not in members:
            return False
        return test is None or bool(test(value))

    return is_native
