"""The object version checker: "changed an object, forgot to bump its VERSION"
made a failing test. Public through :mod:`podium.objects.fixture`.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, cast

from podium.objects import base as _base
from podium.objects import fields as obj_fields
from podium.objects.base import ObjectListBase, VersionedObject
from podium.objects.registry import VersionedObjectRegistry, default_registry, version_tuple
from podium.objects.remotable import is_remotable


class ObjectHashMismatch(AssertionError):
    """oslo's error for fingerprints that changed: ``expected`` and ``actual``
    are the two sides :meth:`ObjectVersionChecker.test_hashes` returns."""

    def __init__(
        self, expected: Mapping[str, str | None], actual: Mapping[str, str | None]
    ) -> None:
        self.expected = dict(expected)
        self.actual = dict(actual)
        super().__init__(str(self))

    def __str__(self) -> str:
        return (
            f"Hashes have changed for {','.join(sorted(self.expected.keys() | self.actual.keys()))}"
        )


class ArgSpec(NamedTuple):
    """``inspect.getargspec``'s shape, which oslo's recorded hashes were made from."""

    args: list[str]
    varargs: str | None
    keywords: str | None
    defaults: tuple[Any, ...] | None


CompatArgSpec = ArgSpec


def get_method_spec(method: Callable[..., Any]) -> inspect.FullArgSpec | ArgSpec:
    """oslo's stable description of a method's signature.

    An :class:`ArgSpec` when the method has no keyword-only arguments and no
    annotations, else the full ``inspect.getfullargspec``. podium's own
    fingerprints use :func:`obj_fingerprint` instead, which leaves
    annotations out.
    """
    spec = inspect.getfullargspec(method)
    if spec.kwonlyargs or spec.kwonlydefaults or spec.annotations:
        return spec
    return ArgSpec(spec.args, spec.varargs, spec.varkw, spec.defaults)


def _method_spec(func: Callable[..., Any]) -> str:
    # Names, kinds and defaults; annotations left out so that typing changes
    # (which do not change the wire) do not force a version bump.
    parts = []
    for param in inspect.signature(func).parameters.values():
        text = f"{param.kind.name}:{param.name}"
        if param.default is not inspect.Parameter.empty:
            text += f"={param.default!r}"
        parts.append(text)
    return f"({', '.join(parts)})"


def _remotable_methods(cls: type[VersionedObject]) -> list[tuple[str, str]]:
    methods = []
    for name in dir(cls):
        try:
            attr = inspect.getattr_static(cls, name)
        except AttributeError:
            continue
        if not is_remotable(attr):
            continue
        func = attr.__func__ if isinstance(attr, (classmethod, staticmethod)) else attr
        while is_remotable(func):
            func = cast(Any, func).original_fn
        methods.append((name, _method_spec(func)))
    return sorted(methods)


def obj_fingerprint(
    cls: type[VersionedObject],
    extra_data_func: Callable[[type[VersionedObject]], Any] | None = None,
) -> str:
    """``"<VERSION>-<hash>"``; the hash covers fields (names, types,
    nullability, defaults), remotable method signatures and, for lists,
    ``child_versions``."""
    fields = sorted((name, field.fingerprint_data()) for name, field in cls.fields.items())
    data: list[Any] = [fields, _remotable_methods(cls)]
    if issubclass(cls, ObjectListBase):
        data.append(sorted(cls.child_versions.items()))
    if extra_data_func is not None:
        data.append(extra_data_func(cls))
    digest = hashlib.sha256(repr(data).encode()).hexdigest()[:32]
    return f"{cls.VERSION}-{digest}"


def load_expected(path: str | Path) -> dict[str, str]:
    """Read an expected-fingerprint table (JSON object: name -> fingerprint)."""
    table = json.loads(Path(path).read_text())
    if not isinstance(table, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in table.items()
    ):
        raise ValueError(f"{path}: expected a JSON object of name -> fingerprint")
    return table


ObjClasses = Mapping[str, Sequence[type[VersionedObject]]]
"""oslo's ``obj_classes`` table: name -> registered versions, newest first."""


class ObjectVersionChecker:
    """Fingerprints of the newest registered version of every object.

    ``ObjectVersionChecker()`` reads the global registry, as oslo's does;
    ``ObjectVersionChecker(registry)`` another registry; and, as in oslo,
    ``ObjectVersionChecker(obj_classes={name: [cls, ...]})`` an explicit table
    (newest class first). The fingerprints are podium's (:func:`obj_fingerprint`),
    not oslo's md5 of oslo's field reprs: a table recorded with oslo is
    recorded again once, with ``podium objects versions --json``.
    """

    def __init__(
        self,
        obj_classes: ObjClasses | VersionedObjectRegistry | None = None,
        *,
        registry: VersionedObjectRegistry | None = None,
    ) -> None:
        if isinstance(obj_classes, VersionedObjectRegistry):
            # podium's positional form: ObjectVersionChecker(registry).
            registry, obj_classes = obj_classes, None
        self.registry = registry or default_registry()
        self._obj_classes = obj_classes

    @property
    def obj_classes(self) -> ObjClasses:
        """The table checked; without an explicit one, the registry's, read live
        (as oslo's is) so classes registered after the checker was made count."""
        if self._obj_classes is not None:
            return self._obj_classes
        return self.registry.obj_classes()

    @obj_classes.setter
    def obj_classes(self, value: ObjClasses) -> None:
        self._obj_classes = value

    def _get_fingerprint(
        self,
        obj_name: str,
        extra_data_func: Callable[[type[VersionedObject]], Any] | None = None,
    ) -> str:
        return obj_fingerprint(self.obj_classes[obj_name][0], extra_data_func)

    def get_hashes(
        self, extra_data_func: Callable[[type[VersionedObject]], Any] | None = None
    ) -> dict[str, str]:
        """Name -> ``"<VERSION>-<hash>"`` for every object, sorted by name.

        ``extra_data_func(cls)`` adds data of your own to each hash.
        """
        return {
            name: self._get_fingerprint(name, extra_data_func=extra_data_func)
            for name in sorted(self.obj_classes)
        }

    def test_hashes(
        self,
        expected_hashes: Mapping[str, str],
        extra_data_func: Callable[[type[VersionedObject]], Any] | None = None,
    ) -> tuple[dict[str, str | None], dict[str, str | None]]:
        """The entries that differ, as ``(expected, actual)``; equal when all match.

        A name missing on one side appears with ``None`` on that side.
        """
        actual = self.get_hashes(extra_data_func=extra_data_func)
        expected_diff: dict[str, str | None] = {}
        actual_diff: dict[str, str | None] = {}
        for name in sorted(set(actual) | set(expected_hashes)):
            want = expected_hashes.get(name)
            have = actual.get(name)
            if want != have:
                expected_diff[name] = want
                actual_diff[name] = have
        return expected_diff, actual_diff

    def _get_dependencies(
        self, tree: dict[str, dict[str, str]], obj_class: type[VersionedObject]
    ) -> None:
        obj_name = obj_class.obj_name()
        if obj_name in tree:
            return
        for field in obj_class.fields.values():
            # As oslo: only single-object fields (an Object type) are
            # dependencies; a list of objects is covered by child_versions.
            child_type = field._type
            if isinstance(child_type, obj_fields.Object):
                child_class = self.obj_classes[child_type.obj_name][0]
                self._get_dependencies(tree, child_class)
                tree.setdefault(obj_name, {})[child_type.obj_name] = child_class.VERSION

    def get_dependency_tree(self) -> dict[str, dict[str, str]]:
        """Object name -> {child object name: child's newest version}, as oslo's.

        Objects without object fields are left out.
        """
        tree: dict[str, dict[str, str]] = {}
        for versions in self.obj_classes.values():
            self._get_dependencies(tree, versions[0])
        return tree

    def test_relationships(
        self, expected_tree: Mapping[str, Mapping[str, str]]
    ) -> tuple[dict[str, dict[str, str] | None], dict[str, dict[str, str] | None]]:
        """The entries of :meth:`get_dependency_tree` that differ, as ``(expected, actual)``."""
        actual_tree = self.get_dependency_tree()
        expected: dict[str, dict[str, str] | None] = {}
        actual: dict[str, dict[str, str] | None] = {}
        for name in sorted(set(expected_tree) | set(actual_tree)):
            want = expected_tree.get(name)
            have = actual_tree.get(name)
            if (None if want is None else dict(want)) != have:
                expected[name] = None if want is None else dict(want)
                actual[name] = have
        return expected, actual

    def _test_object_compatibility(
        self,
        obj_class: type[VersionedObject],
        manifest: Mapping[str, str] | None = None,
        init_args: Sequence[Any] | None = None,
        init_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        major, minor = version_tuple(obj_class.VERSION)[:2]
        for n in range(minor + 1):
            obj = obj_class(*(init_args or ()), **(init_kwargs or {}))
            # Called as oslo calls it (no manifest argument without one): tests
            # written for oslo's checker assert these calls.
            if manifest:
                obj.obj_to_primitive(target_version=f"{major}.{n}", version_manifest=manifest)
            else:
                obj.obj_to_primitive(target_version=f"{major}.{n}")

    def test_compatibility_routines(
        self,
        use_manifest: bool = False,
        init_args: Mapping[type[VersionedObject], Sequence[Any]] | None = None,
        init_kwargs: Mapping[type[VersionedObject], Mapping[str, Any]] | None = None,
    ) -> None:
        """Backport a fresh instance of every class to each older minor version.

        Catches an ``obj_make_compatible`` that fails outright (the data it
        writes is not checked). ``use_manifest`` passes the version manifest
        of the object's tree; ``init_args`` / ``init_kwargs`` map a class to
        the arguments to build it with.
        """
        init_args = init_args or {}
        init_kwargs = init_kwargs or {}
        for obj_name, versions in self.obj_classes.items():
            manifest = self._manifest_of(obj_name) if use_manifest else None
            for obj_class in versions:
                self._test_object_compatibility(
                    obj_class,
                    manifest=manifest,
                    init_args=init_args.get(obj_class, []),
                    init_kwargs=init_kwargs.get(obj_class, {}),
                )

    def _manifest_of(self, obj_name: str) -> dict[str, str]:
        # Through the module, and without the registry when it is the global
        # one, as oslo calls it: tests written for oslo patch it there.
        if self.registry is default_registry():
            return _base.obj_tree_get_versions(obj_name)
        return _base.obj_tree_get_versions(obj_name, self.registry)

    def test_relationships_in_order(self) -> None:
        """Raise AssertionError where ``obj_relationships`` is not in increasing order."""
        for versions in self.obj_classes.values():
            for obj_class in versions:
                self._test_relationships_in_order(obj_class)

    def _test_relationships_in_order(self, obj_class: type[VersionedObject]) -> None:
        for field, pairs in obj_class.obj_relationships.items():
            last_mine: tuple[int, ...] = (0, 0)
            last_child: tuple[int, ...] = (0, 0)
            for mine, child in pairs:
                mine_t, child_t = version_tuple(mine), version_tuple(child)
                if not (last_mine < mine_t and last_child <= child_t):
                    raise AssertionError(
                        f"Object {obj_class.obj_name()} relationship "
                        f"{mine}->{child} for field {field} is out of order"
                    )
                last_mine, last_child = mine_t, child_t

    @staticmethod
    def explain(expected: Mapping[str, str | None], actual: Mapping[str, str | None]) -> str:
        lines = ["object fingerprints changed:"]
        for name in sorted(expected):
            want, have = expected[name], actual.get(name)
            lines.append(f"  {name}: expected {want}, now {have}")
            if want and have and want.split("-")[0] == have.split("-")[0]:
                lines.append(f"    -> {name} changed but VERSION did not: bump it")
        lines.append(
            "Then refresh the table: podium objects versions --module <your.module> --json"
        )
        return "\n".join(lines)
