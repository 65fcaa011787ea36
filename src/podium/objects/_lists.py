"""``ObjectListBase``: a versioned object that is a list of objects."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, overload

from podium.objects import fields as obj_fields
from podium.objects._versioned import (
    UNCHANGED,
    VersionedObject,
    backport_child,
    child_version_for,
)

if TYPE_CHECKING:
    from typing import Self

_VO = TypeVar("_VO", bound=VersionedObject)


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
            backport_child("1.0", self, "objects", primitive)
            return
        child_version = child_version_for(target_version, relationships)
        if child_version is None:
            del primitive["objects"]
        elif child_version is not UNCHANGED:
            backport_child(child_version, self, "objects", primitive)


Sequence.register(ObjectListBase)
