"""A field: a field type plus ``nullable``, ``default`` and ``read_only``."""

from __future__ import annotations

import copy
from functools import cached_property
from typing import TYPE_CHECKING, Any, Generic, overload

from podium.objects.fields._core import (
    AbstractFieldType,
    FieldType,
    T_co,
    UnspecifiedDefault,
)
from podium.objects.fields._paths import FieldPaths, compile_paths

if TYPE_CHECKING:
    from typing import Self

_CONVERSIONS = ("coerce", "from_primitive", "to_primitive")


class Field(Generic[T_co]):
    """A field of a versioned object: a type plus nullable / default / read_only.

    Declare fields oslo-style in a ``fields = {...}`` dict, or as class
    attributes (``uuid = fields.UUIDField()``); for mypy, the class attribute
    reads as the field's Python type.
    """

    AUTO_TYPE: FieldType[Any]

    def __init__(
        self,
        field_type: AbstractFieldType[Any] | None = None,
        nullable: bool = False,
        default: Any = UnspecifiedDefault,
        read_only: bool = False,
    ) -> None:
        if field_type is None:
            field_type = getattr(self, "AUTO_TYPE", None)
        if not isinstance(field_type, AbstractFieldType):
            raise TypeError(f"{type(self).__name__} needs a FieldType, not {field_type!r}")
        self._type = field_type
        self._nullable = bool(nullable)
        self._default = default
        self._read_only = bool(read_only)

    if TYPE_CHECKING:

        @overload
        def __get__(self, obj: None, owner: Any) -> Self: ...
        @overload
        def __get__(self, obj: object, owner: Any) -> T_co: ...
        def __get__(self, obj: object | None, owner: Any) -> Any: ...
        def __set__(self, obj: object, value: Any) -> None: ...

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self._type.describe()}, nullable={self._nullable}, "
            f"default={self._default!r}, read_only={self._read_only})"
        )

    @property
    def field_type(self) -> AbstractFieldType[Any]:
        return self._type

    @property
    def nullable(self) -> bool:
        return self._nullable

    @property
    def default(self) -> Any:
        return self._default

    @property
    def read_only(self) -> bool:
        return self._read_only

    def describe(self) -> str:
        return ("Nullable" if self._nullable else "") + self._type.describe()

    def fingerprint_data(self) -> str:
        """What a version fingerprint hashes for this field (type, null, default)."""
        default = self._default
        if isinstance(default, (set, frozenset)):
            shown = "{" + ",".join(sorted(repr(v) for v in default)) + "}"
        else:
            shown = repr(default)
        return f"{self.describe()}(default={shown},nullable={self._nullable})"

    def _null(self, obj: Any, attr: str) -> Any:
        if self._nullable:
            return None
        if self._default is not UnspecifiedDefault:
            return self._type.coerce(obj, attr, copy.deepcopy(self._default))
        raise ValueError("None is not allowed (the field is not nullable)")

    def coerce(self, obj: Any, attr: str, value: Any) -> Any:
        if value is None:
            return self._null(obj, attr)
        return self._type.coerce(obj, attr, value)

    def from_primitive(self, obj: Any, attr: str, value: Any) -> Any:
        if value is None:
            return self._null(obj, attr)
        return self._type.from_primitive(obj, attr, value)

    def to_primitive(self, obj: Any, attr: str, value: Any) -> Any:
        if value is None:
            return None
        return self._type.to_primitive(obj, attr, value)

    def stringify(self, value: Any) -> str:
        return "None" if value is None else self._type.stringify(value)

    def get_schema(self) -> dict[str, Any]:
        """The JSON schema of this field's values, in oslo's shape: the type's
        schema, ``readonly``, ``"null"`` among the types when nullable, and the
        default when there is one."""
        schema = self._type.get_schema()
        schema["readonly"] = self._read_only
        if self._nullable:
            if "type" in schema:
                schema["type"].append("null")
            else:  # a oneOf schema: null is one more choice
                schema.setdefault("oneOf", []).append({"type": ["null"]})
        if self._default is not UnspecifiedDefault:
            schema["default"] = self._default
        return schema

    def __getstate__(self) -> dict[str, Any]:
        # The compiled paths are closures: a copy or a pickle compiles its own.
        state = self.__dict__.copy()
        state.pop("_paths", None)
        return state

    @cached_property
    def _paths(self) -> FieldPaths:
        """The compiled paths objects use (see :mod:`podium.objects.fields._paths`).

        A Field subclass's own ``coerce`` (a StateMachine's), ``from_primitive``
        or ``to_primitive`` is always called: the type's fast path would skip it.
        """
        own = [
            name for name in _CONVERSIONS if getattr(type(self), name) is not getattr(Field, name)
        ]
        return compile_paths(self, own)


class AutoTypedField(Field[T_co]):
    """A field whose type is the class's ``AUTO_TYPE`` (oslo's base of ``StringField``...)."""

    def __init__(
        self, nullable: bool = False, default: Any = UnspecifiedDefault, read_only: bool = False
    ) -> None:
        super().__init__(self.AUTO_TYPE, nullable=nullable, default=default, read_only=read_only)
