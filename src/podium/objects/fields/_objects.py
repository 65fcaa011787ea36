"""Object field types: a nested versioned object, and lists of them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from podium.objects.fields._containers import List
from podium.objects.fields._core import FieldType, UnspecifiedDefault, bad_value
from podium.objects.fields._field import AutoTypedField

if TYPE_CHECKING:
    from podium.objects.base import VersionedObject


def _versioned_object() -> type[VersionedObject]:
    # podium.objects.base imports this package: the class is looked up when used.
    from podium.objects.base import VersionedObject

    return VersionedObject


class Object(FieldType["VersionedObject"]):
    """A nested versioned object, named by its registered name."""

    def __init__(self, obj_name: str, subclasses: bool = False) -> None:
        self._obj_name = obj_name
        self._subclasses = subclasses

    @property
    def obj_name(self) -> str:
        return self._obj_name

    def _accepts(self, value: Any) -> bool:
        versioned_object = _versioned_object()
        if not isinstance(value, versioned_object):
            return False
        if not self._subclasses:
            return value.obj_name() == self._obj_name
        return any(
            issubclass(klass, versioned_object) and klass.obj_name() == self._obj_name
            for klass in type(value).__mro__
        )

    def coerce(self, obj: VersionedObject | None, attr: str, value: Any) -> Any:
        if self._accepts(value):
            return value
        name = value.obj_name() if hasattr(value, "obj_name") else type(value).__name__
        raise ValueError(f"an object of type {self._obj_name} is required, not {name}")

    def from_primitive(self, obj: VersionedObject | None, attr: str, value: Any) -> Any:
        if value.__class__ is dict and obj is not None:
            # Children are read with the parent's namespace, context and registry.
            child = type(obj).obj_from_primitive(
                value, obj._context, obj.__dict__.get("_obj_registry")
            )
        elif isinstance(value, dict):
            child = _versioned_object().obj_from_primitive(value)
        elif isinstance(value, _versioned_object()):
            child = value
        else:
            raise bad_value(f"a {self._obj_name} object primitive (a dict)", value)
        if child.obj_name() == self._obj_name:
            return child
        return self.coerce(obj, attr, child)

    def to_primitive(self, obj: VersionedObject | None, attr: str, value: Any) -> Any:
        return value.obj_to_primitive()

    def describe(self) -> str:
        return f"Object<{self._obj_name}>"

    def get_schema(self) -> dict[str, Any]:
        """The schema of the object's primitive, from the newest registered class.

        As oslo's: the class comes from the global registry.
        """
        from podium.objects.registry import default_registry

        return default_registry().newest(self._obj_name)._obj_primitive_schema()

    def stringify(self, value: Any) -> str:
        for key in ("uuid", "id"):
            if key in value.fields:
                ident = getattr(value, key) if value.obj_attr_is_set(key) else "UNKNOWN"
                return f"{value.obj_name()}({ident})"
        return str(value.obj_name())


class ObjectField(AutoTypedField["VersionedObject"]):
    def __init__(
        self,
        objtype: str,
        subclasses: bool = False,
        nullable: bool = False,
        default: Any = UnspecifiedDefault,
        read_only: bool = False,
    ) -> None:
        self.AUTO_TYPE = Object(objtype, subclasses)
        self.objname = objtype
        super().__init__(nullable=nullable, default=default, read_only=read_only)


class ListOfObjectsField(AutoTypedField[list["VersionedObject"]]):
    def __init__(
        self,
        objtype: str,
        subclasses: bool = False,
        nullable: bool = False,
        default: Any = UnspecifiedDefault,
        read_only: bool = False,
    ) -> None:
        self.AUTO_TYPE = List(Object(objtype, subclasses))
        self.objname = objtype
        super().__init__(nullable=nullable, default=default, read_only=read_only)
