"""``VersionedObject``: typed fields, change tracking, primitives and backports.

Storage layout, chosen for speed: a set field lives in the instance
``__dict__`` under its own name, so reading it is a plain attribute lookup.
The class holds, per field, a non-data descriptor that only runs when the
field is *not* set (lazy load or a clear error). Assignment goes through
``__setattr__``, which coerces with a per-class table compiled once when the
class is created; so do ``obj_to_primitive`` and ``obj_from_primitive``.
"""

from __future__ import annotations

import copy
import itertools
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, overload

from podium._text import short_repr
from podium.exceptions import (
    InvalidTargetVersion,
    ObjectActionError,
    ObjectAttributeNotSet,
    ObjectFieldError,
    ObjectFieldInvalid,
    ObjectFormatError,
    PodiumError,
    ReadOnlyFieldError,
    UnregisteredSubobject,
    UnsupportedObjectError,
)
from podium.objects import fields as obj_fields
from podium.objects.fields._core import IMMUTABLE_TYPES
from podium.objects.fields._paths import Path
from podium.objects.registry import VersionedObjectRegistry, default_registry, version_tuple

if TYPE_CHECKING:
    from typing import Self

    from podium.objects.indirection import IndirectionAPI

__all__ = [
    "ComparableVersionedObject",
    "ObjectListBase",
    "TimestampedObject",
    "VersionedObject",
    "VersionedObjectDictCompat",
    "VersionedObjectMixin",
    "obj_equal_prims",
    "obj_make_list",
    "obj_tree_get_versions",
    "set_wire_namespace",
]

LOG = logging.getLogger(__name__)

_IMMUTABLE = IMMUTABLE_TYPES
_INT64_MIN, _INT64_MAX = obj_fields.INT64_MIN, obj_fields.INT64_MAX
_CHILD_FIELD_TYPES = (obj_fields.ObjectField, obj_fields.ListOfObjectsField)
_VO = TypeVar("_VO", bound="VersionedObject")
_VOL = TypeVar("_VOL", bound="ObjectListBase[Any]")


def _short(value: Any) -> str:
    return short_repr(value)


class _FieldSlot:
    """Class-level stand-in for a field; reached only while the field is unset."""

    __slots__ = ("field", "name")

    def __init__(self, name: str, field: obj_fields.Field[Any]) -> None:
        self.name = name
        self.field = field

    def __get__(self, obj: VersionedObject | None, owner: type | None = None) -> Any:
        if obj is None:
            return self.field
        return obj._obj_load_and_get(self.name)


# Names a field may not take: they would hide the object's own machinery.
_RESERVED: frozenset[str] = frozenset()


class VersionedObject:
    """Base of every versioned object. Subclass, set ``VERSION`` and ``fields``."""

    #: None: remotable methods run here. Set it (on a base class, a class, or
    #: one instance) to an :class:`IndirectionAPI` to run them remotely.
    indirection_api: IndirectionAPI | None = None

    VERSION: str = "1.0"
    OBJ_SERIAL_NAMESPACE: ClassVar[str] = "podium_object"
    OBJ_PROJECT_NAMESPACE: ClassVar[str] = "podium"

    fields: ClassVar[dict[str, obj_fields.Field[Any]]] = {}
    obj_extra_fields: ClassVar[Sequence[str]] = ()
    #: field -> [(my_version, child_version), ...] oldest first; see obj_make_compatible.
    obj_relationships: ClassVar[dict[str, list[tuple[str, str]]]] = {}

    # Compiled per class by __init_subclass__.
    _obj_coercers: ClassVar[dict[str, Path]] = {}
    _obj_decoders: ClassVar[dict[str, Path]] = {}
    _obj_encoders: ClassVar[tuple[tuple[str, Path], ...]] = ()
    #: Fields whose values are their own primitives (str, int, bool, ...).
    _obj_plain_fields: ClassVar[tuple[str, ...]] = ()
    #: name -> the one type a primitive may have to be taken as is.
    _obj_exact_types: ClassVar[dict[str, type]] = {}
    _obj_child_fields: ClassVar[tuple[str, ...]] = ()
    _obj_read_only: ClassVar[frozenset[str]] = frozenset()
    _obj_keys: ClassVar[tuple[str, str, str, str, str]] = ("", "", "", "", "")
    #: Set by the registry a class is first registered in.
    _obj_registry: ClassVar[VersionedObjectRegistry | None] = None
    #: True when a class overrides obj_class_from_name (read on every primitive).
    _obj_own_lookup: ClassVar[bool] = False

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
        reserved = _reserved_names()
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
        paths = {name: f._paths for name, f in merged.items()}
        cls._obj_coercers = {name: p.coerce for name, p in paths.items()}
        cls._obj_decoders = {name: p.decode for name, p in paths.items()}
        cls._obj_plain_fields = tuple(name for name, p in paths.items() if p.encode is None)
        cls._obj_encoders = tuple(
            (name, p.encode) for name, p in paths.items() if p.encode is not None
        )
        cls._obj_exact_types = {name: p.inline for name, p in paths.items() if p.inline is not None}
        cls._obj_child_fields = tuple(
            name for name, f in merged.items() if isinstance(f, _CHILD_FIELD_TYPES)
        )
        cls._obj_read_only = frozenset(name for name, f in merged.items() if f.read_only)
        cls._obj_own_lookup = any(
            "obj_class_from_name" in klass.__dict__
            for klass in cls.__mro__
            if klass is not VersionedObject
        )
        cls._obj_compile_keys()

    @classmethod
    def _obj_compile_keys(cls) -> None:
        ns = cls.OBJ_SERIAL_NAMESPACE
        cls._obj_keys = (
            f"{ns}.name",
            f"{ns}.namespace",
            f"{ns}.version",
            f"{ns}.data",
            f"{ns}.changes",
        )

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
                f"{self.obj_name()}.{name}: bad value {_short(value)}: {exc}"
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
            if self.__dict__.pop(name, _MISSING) is _MISSING:
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
            if isinstance(value, VersionedObject):
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
                if isinstance(value, VersionedObject):
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

    # -- primitives ------------------------------------------------------------

    def obj_to_primitive(
        self, target_version: str | None = None, version_manifest: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """This object as a JSON-ready dict, optionally backported.

        ``version_manifest`` (name -> version, see :func:`obj_tree_get_versions`)
        backports children too; with it and no ``target_version`` the object's
        own entry in the manifest is the target.
        """
        d = self.__dict__
        data: dict[str, Any] = {name: d[name] for name in self._obj_plain_fields if name in d}
        for name, encode in self._obj_encoders:
            if name in d:
                value = d[name]
                data[name] = None if value is None else encode(self, name, value)
        version = self.VERSION
        if target_version is None and version_manifest:
            target_version = version_manifest.get(self.obj_name())
        if target_version is None:
            target_version = version
        elif target_version != version and version_tuple(target_version) > version_tuple(version):
            raise InvalidTargetVersion(self.obj_name(), target_version, version)
        if target_version != version or version_manifest:
            self.obj_make_compatible_from_manifest(data, target_version, version_manifest)
        k_name, k_ns, k_ver, k_data, k_changes = self._obj_keys
        primitive = {
            k_name: self.obj_name(),
            k_ns: self.OBJ_PROJECT_NAMESPACE,
            k_ver: target_version,
            k_data: data,
        }
        changed = self.obj_what_changed() if self._obj_child_fields else self._changed_fields
        if changed:
            # Field order, not set order: the output is the same on every run.
            changes = [name for name in data if name in changed]
            if changes:
                primitive[k_changes] = changes
        return primitive

    @classmethod
    def obj_from_primitive(
        cls,
        primitive: Mapping[str, Any],
        context: Any = None,
        registry: VersionedObjectRegistry | None = None,
    ) -> VersionedObject:
        """Build the object a primitive describes, from ``registry`` (default: global).

        Every malformed input raises a :class:`podium.exceptions.ObjectError`.
        """
        k_name, k_ns, k_ver, k_data, k_changes = cls._obj_keys
        if not isinstance(primitive, dict):
            raise ObjectFormatError(
                f"an object primitive must be a dict, not {type(primitive).__name__}"
            )
        try:
            objns = primitive[k_ns]
            objname = primitive[k_name]
            objver = primitive[k_ver]
            data = primitive[k_data]
        except KeyError as exc:
            # Keys of any type, in any number: neither sorted nor all shown.
            keys = short_repr(list(itertools.islice(primitive, 8)), 200)
            raise ObjectFormatError(
                f"object primitive has no {exc.args[0]!r} key (keys: {keys})"
            ) from None
        if objns != cls.OBJ_PROJECT_NAMESPACE:
            raise UnsupportedObjectError(
                f"object namespace {_short(objns)} is not {cls.OBJ_PROJECT_NAMESPACE!r} "
                f"(object {_short(objname)})"
            )
        if not isinstance(objname, str) or not isinstance(objver, str):
            raise ObjectFormatError(
                f"object name and version must be strings: {_short(objname)} {_short(objver)}"
            )
        if not isinstance(data, dict):
            raise ObjectFormatError(f"{_short(objname)}: {k_data} must be a dict")
        if registry is None:
            registry = cls._obj_registry or default_registry()
        if cls._obj_own_lookup:
            # The class overrides the lookup: call it as oslo does.
            objclass = cls.obj_class_from_name(objname, objver)
        else:
            objclass = registry.obj_class_from_name(objname, objver)
        return objclass._obj_from_primitive(
            context, objver, data, primitive.get(k_changes), registry
        )

    @classmethod
    def _obj_from_primitive(
        cls,
        context: Any,
        objver: str,
        data: dict[str, Any],
        changes: Any,
        registry: VersionedObjectRegistry,
    ) -> Self:
        self = cls.__new__(cls)
        d = self.__dict__
        d["_context"] = context
        if registry is not cls._obj_registry:
            d["_obj_registry"] = registry
        if objver != cls.VERSION:
            # As in oslo: the object remembers the version it arrived at.
            d["VERSION"] = objver
        decoders = self._obj_decoders
        exact = self._obj_exact_types
        name = value = None
        try:
            for name, value in data.items():
                # Most values already have their exact type: skip the call. An
                # int only in the signed 64-bit range that int fields hold at least.
                kind = value.__class__
                if kind is exact.get(name) and (
                    kind is not int or _INT64_MIN <= value <= _INT64_MAX
                ):
                    d[name] = value
                    continue
                decode = decoders.get(name)
                if decode is not None:
                    d[name] = decode(self, name, value)
        except PodiumError:
            raise
        except RecursionError:
            raise ObjectFormatError(f"{cls.obj_name()}: primitive nested too deeply") from None
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            raise ObjectFieldError(
                f"{cls.obj_name()}.{name}: bad value {_short(value)}: {exc}"
            ) from exc
        if changes is None:
            d["_changed_fields"] = set()
        else:
            try:
                if not isinstance(changes, list):
                    raise TypeError(type(changes).__name__)
                d["_changed_fields"] = self.fields.keys() & changes
            except TypeError:
                raise ObjectFormatError(
                    f"{cls.obj_name()}: changes must be a list of field names"
                ) from None
        return self

    @classmethod
    def _obj_primitive_key(cls, field: str) -> str:
        """The key of ``field`` (name, namespace, version, data, changes) in a primitive."""
        return f"{cls.OBJ_SERIAL_NAMESPACE}.{field}"

    @classmethod
    def _obj_primitive_schema(cls) -> dict[str, Any]:
        """The JSON schema of this class's primitive (what ``Object.get_schema`` gives)."""
        k_name, k_ns, k_ver, k_data, k_changes = cls._obj_keys
        data: dict[str, Any] = {
            "type": "object",
            "description": f"fields of {cls.obj_name()}",
            "properties": {name: field.get_schema() for name, field in cls.fields.items()},
        }
        required = [name for name, field in sorted(cls.fields.items()) if not field.nullable]
        if required:
            data["required"] = required
        return {
            "type": ["object"],
            "properties": {
                k_ns: {"type": "string"},
                k_name: {"type": "string"},
                k_ver: {"type": "string"},
                k_changes: {"type": "array", "items": {"type": "string"}},
                k_data: data,
            },
            "required": [k_ns, k_name, k_ver, k_data],
        }

    @classmethod
    def to_json_schema(cls) -> dict[str, Any]:
        """A JSON schema (draft 4) of this class's primitive, as oslo's.

        Every field type of podium has a schema; a type of your own gets one
        by defining ``get_schema()``.
        """
        schema: dict[str, Any] = {
            "$schema": "http://json-schema.org/draft-04/schema#",
            "title": cls.obj_name(),
        }
        schema.update(cls._obj_primitive_schema())
        return schema

    @classmethod
    def obj_class_from_name(
        cls, objname: str, objver: str, registry: VersionedObjectRegistry | None = None
    ) -> type[VersionedObject]:
        reg = registry or cls._obj_registry or default_registry()
        return reg.obj_class_from_name(objname, objver)

    # -- backports -------------------------------------------------------------

    def obj_make_compatible(self, primitive: dict[str, Any], target_version: str) -> None:
        """Rewrite ``primitive`` (the data dict) for ``target_version``, in place.

        Override to drop fields added after ``target_version`` (call super()
        too: it backports child objects per ``obj_relationships`` or the
        version manifest).
        """
        d = self.__dict__
        for name in self._obj_child_fields:
            if name in d and name in primitive:
                self._obj_make_obj_compatible(primitive, target_version, name)

    def obj_make_compatible_from_manifest(
        self,
        primitive: dict[str, Any],
        target_version: str,
        version_manifest: Mapping[str, str] | None,
    ) -> None:
        d = self.__dict__
        # Stashed on the object, as oslo does, because obj_make_compatible()'s
        # signature is public API that user overrides call with two arguments.
        d["_obj_version_manifest"] = version_manifest
        try:
            self.obj_make_compatible(primitive, target_version)
        finally:
            d.pop("_obj_version_manifest", None)

    def _obj_relationship_for(
        self, field: str, target_version: str
    ) -> Sequence[tuple[str, str]] | None:
        manifest = self.__dict__.get("_obj_version_manifest")
        if manifest is None:
            try:
                return self.obj_relationships[field]
            except KeyError:
                raise ObjectActionError(
                    f"{self.obj_name()}: cannot backport field {field!r} to "
                    f"{target_version}: no rule in obj_relationships and no version manifest"
                ) from None
        objname = getattr(self.fields[field], "objname", None)
        if objname not in manifest:
            return None
        return [(target_version, manifest[objname])]

    def _obj_make_obj_compatible(
        self, primitive: dict[str, Any], target_version: str, field: str
    ) -> None:
        relationships = self._obj_relationship_for(field, target_version)
        if not relationships:
            return
        child_version = _child_version_for(target_version, relationships)
        if child_version is None:
            del primitive[field]
        elif child_version is not _UNCHANGED:
            _backport_child(child_version, self, field, primitive)


class _Unchanged:
    pass


_UNCHANGED: Any = _Unchanged()
_MISSING: Any = object()


def set_wire_namespace(
    serial: str = "podium_object",
    project: str = "podium",
    base: type[VersionedObject] | None = None,
) -> None:
    """Choose the namespace objects are written and read in, for a whole hierarchy.

    ``serial`` prefixes the primitive's keys (``<serial>.name``, ``.data``...);
    ``project`` is the value of ``<serial>.namespace``, which a reader checks.
    A service whose peers still run oslo.versionedobjects calls, once at
    start-up, ``set_wire_namespace("versioned_object", "versionedobjects")``
    (oslo's own), or Nova's ``("nova_object", "nova")``; the default is
    podium's own. ``base`` (default: ``VersionedObject``) and every subclass
    that does not set a namespace of its own switch, classes defined before
    and after the call alike; a serializer follows its ``OBJ_BASE_CLASS``.
    Setting ``OBJ_SERIAL_NAMESPACE`` / ``OBJ_PROJECT_NAMESPACE`` on a base class
    when it is defined, as oslo projects do, still works too.
    """
    for name, value in (("serial", serial), ("project", project)):
        if not isinstance(value, str) or not value or (name == "serial" and "." in value):
            raise ValueError(f"{name} namespace must be a non-empty string, not {value!r}")
    root = VersionedObject if base is None else base
    root.OBJ_SERIAL_NAMESPACE = serial
    root.OBJ_PROJECT_NAMESPACE = project
    # Subclasses without a namespace of their own now inherit the new one;
    # their compiled primitive keys are rebuilt from it.
    root._obj_compile_keys()
    for cls in _subclasses_of(root):
        cls._obj_compile_keys()


def _subclasses_of(cls: type[VersionedObject]) -> list[type[VersionedObject]]:
    found: dict[type[VersionedObject], None] = {}  # a class can be reached twice (diamonds)
    pending = list(cls.__subclasses__())
    while pending:
        klass = pending.pop()
        if klass not in found:
            found[klass] = None
            pending.extend(klass.__subclasses__())
    return list(found)


def _reserved_names() -> frozenset[str]:
    global _RESERVED
    if not _RESERVED:
        _RESERVED = frozenset(dir(VersionedObject))
    return _RESERVED


VersionedObject._obj_compile()


def _child_version_for(target: str, relationships: Sequence[tuple[str, str]]) -> Any:
    """Child version for a parent ``target``; None if the child did not exist yet."""
    tgt = version_tuple(target)
    ordered = sorted(relationships, key=lambda pair: version_tuple(pair[0]))
    previous: str | None = None
    for parent_version, child_version in ordered:
        parent = version_tuple(parent_version)
        if tgt < parent:
            return previous
        if tgt == parent:
            return child_version
        previous = child_version
    return _UNCHANGED


def _backport_child(
    to_version: str, parent: VersionedObject, field: str, primitive: dict[str, Any]
) -> None:
    value = parent.__dict__.get(field)
    if value is None or primitive.get(field) is None:
        return
    manifest = parent.__dict__.get("_obj_version_manifest")
    if isinstance(value, VersionedObject):
        _backport_one(value, primitive[field], to_version, manifest)
    else:
        for child, child_primitive in zip(value, primitive[field], strict=False):
            _backport_one(child, child_primitive, to_version, manifest)


def _backport_one(
    child: VersionedObject,
    child_primitive: dict[str, Any],
    to_version: str,
    manifest: Mapping[str, str] | None,
) -> None:
    k_ver = child._obj_keys[2]
    current = child_primitive.get(k_ver, child.VERSION)
    # Never claim a version newer than the child is: the receiver would trust it.
    if version_tuple(to_version) >= version_tuple(current):
        if not manifest:
            return
        to_version = current
    child.obj_make_compatible_from_manifest(
        child_primitive[child._obj_keys[3]], to_version, version_manifest=manifest
    )
    child_primitive[k_ver] = to_version


def obj_tree_get_versions(
    objname: str,
    registry: VersionedObjectRegistry | None = None,
    tree: dict[str, str] | None = None,
) -> dict[str, str]:
    """Name -> newest registered version, for ``objname`` and every object it can hold."""
    reg = registry or default_registry()
    if tree is None:
        tree = {}
    if objname in tree:
        return tree
    objclass = reg.newest(objname)
    tree[objname] = objclass.VERSION
    for field in objclass.fields.values():
        child = getattr(field, "objname", None)
        if isinstance(field, _CHILD_FIELD_TYPES) and child is not None:
            if child not in reg:
                raise UnregisteredSubobject(child_objname=child, parent_objname=objname)
            obj_tree_get_versions(child, reg, tree)
    return tree


def obj_make_list(
    context: Any,
    list_obj: _VOL,
    item_cls: type[VersionedObject],
    db_list: Iterable[Any],
    **extra: Any,
) -> _VOL:
    """Fill ``list_obj`` with ``item_cls._from_db_object(context, item_cls(), row, **extra)``.

    The usual helper of DB-backed list classes, as in oslo.
    """
    from_db = getattr(item_cls, "_from_db_object", None)
    if from_db is None:
        raise ObjectActionError(f"{item_cls.obj_name()} has no _from_db_object()")
    list_obj.objects = [from_db(context, item_cls(), row, **extra) for row in db_list]
    list_obj._context = context
    list_obj.obj_reset_changes()
    return list_obj


def obj_equal_prims(obj_1: Any, obj_2: Any, ignore: Sequence[str] | None = None) -> bool:
    """Compare two objects (or primitives) by their primitives, ignoring some fields."""

    def strip(value: Any) -> Any:
        if isinstance(value, VersionedObject):
            value = value.obj_to_primitive()
        if isinstance(value, dict):
            return {
                key: strip(item) for key, item in value.items() if not ignore or key not in ignore
            }
        if isinstance(value, list):
            return [strip(item) for item in value]
        return value

    return bool(strip(obj_1) == strip(obj_2))


class ComparableVersionedObject:
    """Mixin: equal when the primitives are equal (handy in tests)."""

    def __eq__(self, other: object) -> bool:
        if isinstance(self, VersionedObject) and isinstance(other, VersionedObject):
            return bool(self.obj_to_primitive() == other.obj_to_primitive())
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result


class VersionedObjectDictCompat:
    """Mixin: dict-style access to the fields (``obj['name']``), for ported code."""

    def __iter__(self) -> Iterator[str]:
        obj = _as_object(self)
        return (name for name in obj.obj_fields if name in obj.__dict__)

    def keys(self) -> list[str]:
        return list(self)

    def values(self) -> list[Any]:
        return [getattr(self, name) for name in self]

    def items(self) -> list[tuple[str, Any]]:
        return [(name, getattr(self, name)) for name in self]

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)

    def __setitem__(self, name: str, value: Any) -> None:
        if name not in _as_object(self).fields:
            raise ObjectAttributeNotSet(f"{_as_object(self).obj_name()} has no field {name!r}")
        setattr(self, name, value)

    def get(self, key: str, default: Any = _MISSING) -> Any:
        obj = _as_object(self)
        if key not in obj.obj_fields:
            raise ObjectAttributeNotSet(f"{obj.obj_name()} has no field {key!r}")
        if default is not _MISSING and not obj.obj_attr_is_set(key):
            return default
        return getattr(self, key)

    def update(self, updates: Mapping[str, Any]) -> None:
        for name, value in updates.items():
            self[name] = value


def _as_object(mixin: object) -> VersionedObject:
    if not isinstance(mixin, VersionedObject):
        raise TypeError(f"{type(mixin).__name__} must also be a VersionedObject")
    return mixin


class VersionedObjectMixin:
    """oslo's marker base of a mixin that contributes ``fields``.

    Nothing needs it here (any class in the bases may hold a ``fields`` dict,
    and the fields are merged); ported mixins may keep it.
    """


class TimestampedObject(VersionedObjectMixin):
    """Mixin: ``created_at`` and ``updated_at`` (nullable datetimes), as in oslo."""

    fields: ClassVar[dict[str, obj_fields.Field[Any]]] = {
        "created_at": obj_fields.DateTimeField(nullable=True),
        "updated_at": obj_fields.DateTimeField(nullable=True),
    }


class _ObjectListMeta(type):
    """Lets oslo's base order, ``class L(VersionedObject, ObjectListBase)``, build.

    oslo's ``ObjectListBase`` is a mixin, so ported code often lists
    ``VersionedObject`` first. Here ``ObjectListBase`` is itself a
    ``VersionedObject`` (so ``class L(ObjectListBase[X])`` alone is a complete,
    typed object), and a base listed before its own subclass has no consistent
    MRO. Such a base adds nothing the later one does not already bring, so it
    is dropped; the list then behaves fully as a list whichever the order
    (where oslo, with ``VersionedObject`` first, shadows the mixin's
    ``__init__`` and ``obj_make_compatible``: ``L()`` has no ``objects``).
    Static type checkers still see the conflict: typed code should write
    ``class L(ObjectListBase[X], VersionedObject)``, oslo's own order in its tests.
    """

    def __new__(
        mcls, name: str, bases: tuple[type, ...], namespace: dict[str, Any], /, **kwargs: Any
    ) -> _ObjectListMeta:
        kept = tuple(
            base
            for i, base in enumerate(bases)
            if not (
                base in _LIST_REDUNDANT_BASES
                and any(later is not base and issubclass(later, base) for later in bases[i + 1 :])
            )
        )
        return super().__new__(mcls, name, kept, namespace, **kwargs)


# Only the list's own ancestors are dropped: any other order problem is the
# user's to see, as Python reports it.
_LIST_REDUNDANT_BASES: tuple[type, ...] = (VersionedObject, object)


class ObjectListBase(VersionedObject, Generic[_VO], metaclass=_ObjectListMeta):
    """A versioned object that is a list of objects (in its ``objects`` field).

    Subclass with ``fields = {'objects': fields.ListOfObjectsField('Thing')}``.
    Either base order builds: ``class L(ObjectListBase[X], VersionedObject)``
    or oslo's mixin order ``class L(VersionedObject, ObjectListBase[X])``.
    ``child_versions`` maps this list's versions to its children's (oldest
    first); without it, ``obj_relationships['objects']`` or a version manifest
    is used, and without either the children are backported to ``1.0`` as oslo
    does.
    """

    fields: ClassVar[dict[str, obj_fields.Field[Any]]] = {
        "objects": obj_fields.ListOfObjectsField("VersionedObject"),
    }
    child_versions: ClassVar[Mapping[str, str]] = {}

    if TYPE_CHECKING:
        objects: list[_VO]

    def __init__(self, context: Any = None, **kwargs: Any) -> None:
        super().__init__(context, **kwargs)
        if "objects" not in kwargs:
            self.__dict__["objects"] = []

    def __len__(self) -> int:
        return len(self.objects)

    def __iter__(self) -> Iterator[_VO]:
        return iter(self.objects)

    def __contains__(self, value: object) -> bool:
        return value in self.objects

    @overload
    def __getitem__(self, index: int) -> _VO: ...
    @overload
    def __getitem__(self, index: slice) -> Self: ...
    def __getitem__(self, index: int | slice) -> _VO | Self:
        if isinstance(index, slice):
            new = type(self)(self._context)
            new.__dict__["objects"] = self.objects[index]
            return new
        return self.objects[index]

    def __bool__(self) -> bool:
        return bool(self.objects)

    def index(self, value: object) -> int:
        return self.objects.index(value)  # type: ignore[arg-type]

    def count(self, value: object) -> int:
        return self.objects.count(value)  # type: ignore[arg-type]

    def sort(self, key: Callable[[_VO], Any] | None = None, reverse: bool = False) -> None:
        self.objects.sort(key=key, reverse=reverse)

    def __add__(self, other: ObjectListBase[_VO]) -> Self:
        if type(other) is not type(self) or list(self.fields) != ["objects"]:
            # A TypeError, as oslo raises and as Python's own sequences do.
            raise TypeError(
                "only lists of the same class, with no field but 'objects', can be added"
            )
        return type(self)(self._context, objects=self.objects + other.objects)

    def obj_make_compatible(self, primitive: dict[str, Any], target_version: str) -> None:
        d = self.__dict__
        for name in self._obj_child_fields:
            if name != "objects" and name in d and name in primitive:
                self._obj_make_obj_compatible(primitive, target_version, name)
        if "objects" not in primitive or "objects" not in d:
            return
        manifest = d.get("_obj_version_manifest")
        objname = getattr(self.fields["objects"], "objname", None)
        relationships: Sequence[tuple[str, str]] | None
        if manifest and objname in manifest:
            relationships = [(target_version, manifest[objname])]
        elif self.child_versions:
            relationships = list(self.child_versions.items())
        else:
            relationships = self.obj_relationships.get("objects")
        if not relationships:
            _backport_child("1.0", self, "objects", primitive)
            return
        child_version = _child_version_for(target_version, relationships)
        if child_version is None:
            del primitive["objects"]
        elif child_version is not _UNCHANGED:
            _backport_child(child_version, self, "objects", primitive)


Sequence.register(ObjectListBase)


# oslo.versionedobjects' base module also holds these; they live in their own
# modules here (remotable and the serializer import this one).
_ELSEWHERE = {
    "remotable": "podium.objects.remotable",
    "remotable_classmethod": "podium.objects.remotable",
    "VersionedObjectSerializer": "podium.objects.serializer",
    "VersionedObjectIndirectionAPI": "podium.objects.indirection",
}


def __getattr__(name: str) -> Any:
    module_name = _ELSEWHERE.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    module = importlib.import_module(module_name)
    value = getattr(module, name)
    globals()[name] = value
    return value
