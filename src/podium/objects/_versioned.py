"""``VersionedObject``: the wire layer over the fields, primitives and backports.

``obj_to_primitive`` and ``obj_from_primitive`` use per-class tables compiled
once when the class is created, as the field layer's ``__setattr__`` does
(see :mod:`podium.objects._object_core`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from podium._text import short_repr
from podium.exceptions import (
    InvalidTargetVersion,
    ObjectActionError,
    ObjectFieldError,
    ObjectFormatError,
    PodiumError,
    UnsupportedObjectError,
)
from podium.objects import fields as obj_fields
from podium.objects._object_core import ObjectCore, short
from podium.objects.fields._paths import Path
from podium.objects.registry import VersionedObjectRegistry, default_registry, version_tuple

if TYPE_CHECKING:
    from typing import Self

    from podium.objects.indirection import IndirectionAPI

_INT64_MIN, _INT64_MAX = obj_fields.INT64_MIN, obj_fields.INT64_MAX


class VersionedObject(ObjectCore):
    """Base of every versioned object. Subclass, set ``VERSION`` and ``fields``."""

    #: None: remotable methods run here. Set it (on a base class, a class, or
    #: one instance) to an :class:`IndirectionAPI` to run them remotely.
    indirection_api: IndirectionAPI | None = None

    VERSION: str = "1.0"
    OBJ_SERIAL_NAMESPACE: ClassVar[str] = "podium_object"
    OBJ_PROJECT_NAMESPACE: ClassVar[str] = "podium"

    #: field -> [(my_version, child_version), ...] oldest first; see obj_make_compatible.
    obj_relationships: ClassVar[dict[str, list[tuple[str, str]]]] = {}

    # Compiled per class by __init_subclass__.
    _obj_decoders: ClassVar[dict[str, Path]] = {}
    _obj_encoders: ClassVar[tuple[tuple[str, Path], ...]] = ()
    #: Fields whose values are their own primitives (str, int, bool, ...).
    _obj_plain_fields: ClassVar[tuple[str, ...]] = ()
    #: name -> the one type a primitive may have to be taken as is.
    _obj_exact_types: ClassVar[dict[str, type]] = {}
    _obj_keys: ClassVar[tuple[str, str, str, str, str]] = ("", "", "", "", "")
    #: Set by the registry a class is first registered in.
    _obj_registry: ClassVar[VersionedObjectRegistry | None] = None
    #: True when a class overrides obj_class_from_name (read on every primitive).
    _obj_own_lookup: ClassVar[bool] = False

    @classmethod
    def _obj_compile(cls) -> None:
        super()._obj_compile()
        paths = {name: f._paths for name, f in cls.fields.items()}
        cls._obj_decoders = {name: p.decode for name, p in paths.items()}
        cls._obj_plain_fields = tuple(name for name, p in paths.items() if p.encode is None)
        cls._obj_encoders = tuple(
            (name, p.encode) for name, p in paths.items() if p.encode is not None
        )
        cls._obj_exact_types = {name: p.inline for name, p in paths.items() if p.inline is not None}
        # While VersionedObject itself is being created its name is not bound
        # yet: cls is then VersionedObject.
        root = globals().get("VersionedObject", cls)
        cls._obj_own_lookup = any(
            "obj_class_from_name" in klass.__dict__ for klass in cls.__mro__ if klass is not root
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
                f"object namespace {short(objns)} is not {cls.OBJ_PROJECT_NAMESPACE!r} "
                f"(object {short(objname)})"
            )
        if not isinstance(objname, str) or not isinstance(objver, str):
            raise ObjectFormatError(
                f"object name and version must be strings: {short(objname)} {short(objver)}"
            )
        if not isinstance(data, dict):
            raise ObjectFormatError(f"{short(objname)}: {k_data} must be a dict")
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
                f"{cls.obj_name()}.{name}: bad value {short(value)}: {exc}"
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
        child_version = child_version_for(target_version, relationships)
        if child_version is None:
            del primitive[field]
        elif child_version is not UNCHANGED:
            backport_child(child_version, self, field, primitive)


class _Unchanged:
    pass


UNCHANGED: Any = _Unchanged()


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


# Every name the class has, fields and wire layers both, now exists.
VersionedObject._obj_reserved = frozenset(dir(VersionedObject))


def child_version_for(target: str, relationships: Sequence[tuple[str, str]]) -> Any:
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
    return UNCHANGED


def backport_child(
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
