"""Test helpers shipped as public API: the version checker and an in-process
indirection API.

:class:`ObjectVersionChecker` makes "changed an object, forgot to bump its
VERSION" a failing test. Keep a table of expected fingerprints in your repo
(``podium objects versions --module myapp.objects --json > object_hashes.json``)
and assert it::

    def test_versions():
        checker = ObjectVersionChecker()
        expected, actual = checker.test_hashes(load_expected("object_hashes.json"))
        assert expected == actual, checker.explain(expected, actual)

:class:`FakeIndirectionAPI` plays the conductor in one process: every call
goes through the real serializer and a JSON encode/decode, the method runs
with :func:`podium.objects.local_method`, and the reply is built as a
conductor builds it. Install it for a block with :func:`indirection_api_set`
or, as in oslo, with ``IndirectionFixture()`` (a ``fixtures.Fixture``; it is
built on first access and needs the ``fixtures`` library, a test dependency
that podium itself does not require, so it is not in ``__all__``).

As in oslo: ``ObjectVersionChecker(obj_classes=...)``, its ``get_hashes``,
``test_hashes``, ``get_dependency_tree``, ``test_relationships``,
``test_compatibility_routines`` and ``test_relationships_in_order``, and
:func:`compare_obj`.
"""

from __future__ import annotations

import datetime
import hashlib
import inspect
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple, cast

import orjson

from podium.objects import base as _base
from podium.objects import fields as obj_fields
from podium.objects import registry as _registry_module
from podium.objects.base import ObjectListBase, VersionedObject
from podium.objects.indirection import IndirectionAPI, object_action_updates
from podium.objects.registry import VersionedObjectRegistry, default_registry, version_tuple
from podium.objects.remotable import is_remotable, local_method
from podium.objects.serializer import VersionedObjectSerializer

__all__ = [
    "ArgSpec",
    "CompatArgSpec",
    "FakeIndirectionAPI",
    "ObjClasses",
    "ObjectHashMismatch",
    "ObjectVersionChecker",
    "compare_obj",
    "compute_updates",
    "get_method_spec",
    "indirection_api_set",
    "isolated_default_registry",
    "load_expected",
    "obj_fingerprint",
]


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


def compare_obj(
    test: Any,
    obj: VersionedObject,
    db_obj: Mapping[str, Any],
    subs: Mapping[str, str] | None = None,
    allow_missing: Sequence[str] | None = None,
    comparators: Mapping[str, Callable[[Any, Any], None]] | None = None,
) -> None:
    """Compare a VersionedObject with a dict-like database row, as oslo's does.

    ``test`` is a ``unittest.TestCase`` (its ``assertEqual`` is used) or None
    (a plain ``assert``, for pytest). ``subs`` maps object field -> row key;
    fields in ``allow_missing`` may be missing on either side; ``comparators``
    maps a field to ``comparator(db_value, obj_value)``. Datetimes are compared
    without their tzinfo. One deliberate difference: oslo compares a datetime
    row value by mistake with the object's own value (so any two datetimes
    match); here the row's value is compared.
    """
    subs = subs or {}
    allow_missing = allow_missing or ()
    comparators = comparators or {}
    for key in obj.fields:
        db_key = subs.get(key, key)
        is_set, in_db = obj.obj_attr_is_set(key), db_key in db_obj
        if key in allow_missing and not (is_set and in_db):
            continue
        if not is_set and not in_db:
            continue
        if not in_db:
            raise AssertionError(
                f"{key} (db_key: {db_key}) is set on the object, but not on the "
                "db_obj, so the objects are not equal"
            )
        if not is_set:
            raise AssertionError(
                f"{key} (db_key: {db_key}) is set on the db_obj, but not on the "
                "object, so the objects are not equal"
            )
        obj_val = getattr(obj, key)
        db_val = db_obj[db_key]
        if isinstance(obj_val, datetime.datetime):
            obj_val = obj_val.replace(tzinfo=None)
        if isinstance(db_val, datetime.datetime):
            db_val = db_val.replace(tzinfo=None)
        if key in comparators:
            comparators[key](db_val, obj_val)
        elif test is not None:
            test.assertEqual(db_val, obj_val)
        else:
            assert db_val == obj_val, f"{key}: db_obj has {db_val!r}, the object {obj_val!r}"


#: The ``updates`` of an ``object_action`` reply, as every indirection API builds them.
compute_updates = object_action_updates


class FakeIndirectionAPI:
    """An in-process conductor: the real serializers and JSON on every hop.

    ``registry`` is the conductor's, ``client_registry`` the caller's (both
    default to the global one); make them differ to test backports. Calls
    are recorded in ``calls`` as ``(api_method, object_method)``.
    """

    def __init__(
        self,
        registry: VersionedObjectRegistry | None = None,
        client_registry: VersionedObjectRegistry | None = None,
    ) -> None:
        self.registry = registry or default_registry()
        self.server = VersionedObjectSerializer(registry=self.registry)
        self.client = VersionedObjectSerializer(
            registry=client_registry or default_registry(), indirection_api=self
        )
        self.calls: list[tuple[str, str]] = []

    @staticmethod
    def _json(primitive: Any) -> Any:
        return orjson.loads(orjson.dumps(primitive))

    def _to_server(self, context: Any, entity: Any) -> Any:
        wire = self._json(self.client.serialize_entity(context, entity))
        return self.server.deserialize_entity(context, wire)

    def _to_client(
        self, context: Any, entity: Any, manifest: Mapping[str, str] | None = None
    ) -> Any:
        wire = self._json(self.server.serialize_entity(context, entity, manifest))
        return self.client.deserialize_entity(context, wire)

    def _server_context(self, context: Any) -> Any:
        wire = self._json(self.client.serialize_context(context))
        return self.server.deserialize_context(wire)

    def object_action(
        self,
        context: Any,
        objinst: VersionedObject,
        objmethod: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> tuple[dict[str, Any], Any]:
        self.calls.append(("object_action", objmethod))
        ctx = self._server_context(context)
        obj, args, kwargs = self._to_server(ctx, [objinst, list(args), kwargs])
        before = obj.obj_clone()
        result = local_method(obj, objmethod)(*args, **kwargs)
        updates, result = self._to_client(context, [compute_updates(before, obj), result])
        return updates, result

    def object_class_action_versions(
        self,
        context: Any,
        objname: str,
        objmethod: str,
        object_versions: dict[str, str],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        self.calls.append(("object_class_action_versions", objmethod))
        ctx = self._server_context(context)
        cls = self.registry.newest(objname)
        args, kwargs = self._to_server(ctx, [list(args), kwargs])
        result = local_method(cls, objmethod)(ctx, *args, **kwargs)
        return self._to_client(context, result, object_versions)

    def object_backport_versions(
        self, context: Any, objinst: dict[str, Any], object_versions: dict[str, str]
    ) -> Any:
        self.calls.append(
            ("object_backport_versions", str(objinst.get(self.server.OBJ_BASE_CLASS._obj_keys[0])))
        )
        ctx = self._server_context(context)
        obj = self.server.deserialize_entity(ctx, self._json(objinst))
        return self._json(self.server.serialize_entity(ctx, obj, object_versions))


@contextmanager
def indirection_api_set(
    api: IndirectionAPI | None, target: type[VersionedObject] = VersionedObject
) -> Iterator[IndirectionAPI | None]:
    """Set ``target.indirection_api`` for a block, then restore exactly what was there.

    The counterpart of oslo's ``IndirectionFixture``::

        with indirection_api_set(FakeIndirectionAPI()):
            instance.save()      # goes through the fake conductor
    """
    had_own = "indirection_api" in target.__dict__
    previous = target.__dict__.get("indirection_api")
    target.indirection_api = api
    try:
        yield api
    finally:
        if had_own:
            target.indirection_api = previous
        else:
            del target.indirection_api


def __getattr__(name: str) -> Any:
    # PEP 562: these subclass fixtures.Fixture, and the fixtures library is a
    # test-only dependency, so each class is built on first use and this
    # module imports without it.
    builder = _FIXTURE_BUILDERS.get(name)
    if builder is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    cls = builder(_fixtures_module(name))
    cls.__module__ = __name__
    cls.__qualname__ = name
    globals()[name] = cls
    return cls


def _fixtures_module(name: str) -> Any:
    try:
        import fixtures  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError as exc:
        raise ImportError(
            f"podium.objects.fixture.{name} needs the 'fixtures' library "
            "(pip install fixtures); the context managers of this module "
            "(indirection_api_set, isolated_default_registry) do the same without it"
        ) from exc
    return fixtures


def _indirection_fixture_class(fixtures: Any) -> type[Any]:
    class IndirectionFixture(fixtures.Fixture):  # type: ignore[misc,unused-ignore]
        """oslo's fixture: ``target.indirection_api`` set for the test, then restored.

        ``IndirectionFixture()`` installs a :class:`FakeIndirectionAPI`; pass
        ``indirection_api`` for another, ``target`` for a base other than
        ``VersionedObject``. ``self.useFixture(IndirectionFixture())`` in a
        testtools test, or ``with IndirectionFixture():`` anywhere.
        """

        def __init__(
            self,
            indirection_api: IndirectionAPI | None = None,
            target: type[VersionedObject] = VersionedObject,
        ) -> None:
            super().__init__()
            self.indirection_api = indirection_api or FakeIndirectionAPI()
            self.target = target

        def _setUp(self) -> None:
            # The context manager restores exactly what was there (a class's
            # own value, or none), which a plain attribute patch would not.
            manager = indirection_api_set(self.indirection_api, self.target)
            manager.__enter__()
            self.addCleanup(manager.__exit__, None, None, None)

    return IndirectionFixture


def _registry_fixture_class(fixtures: Any) -> type[Any]:
    class VersionedObjectRegistryFixture(fixtures.Fixture):  # type: ignore[misc,unused-ignore]
        """oslo's fixture: classes registered during the test vanish after it.

        The global registry is replaced by a copy of itself for the test, so
        what was registered before stays readable; ``register(cls)`` (or
        ``@VersionedObjectRegistry.register``) registers in the copy.
        """

        @staticmethod
        def register(cls: type[VersionedObject]) -> None:
            default_registry().register_class(cls)

        def _setUp(self) -> None:
            copied = _copy_of(default_registry())
            manager = isolated_default_registry(copied)
            manager.__enter__()
            self.addCleanup(manager.__exit__, None, None, None)
            # Registered only here, a class remembers this registry as its
            # own (and reads from it); afterwards it is unregistered, as in oslo.
            self.addCleanup(_forget_registry, copied)

    return VersionedObjectRegistryFixture


def _forget_registry(registry: VersionedObjectRegistry) -> None:
    for versions in registry.obj_classes().values():
        for cls in versions:
            if cls.__dict__.get("_obj_registry") is registry:
                del cls._obj_registry


def _stable_json_fixture_class(fixtures: Any) -> type[Any]:
    class StableObjectJsonFixture(fixtures.Fixture):  # type: ignore[misc,unused-ignore]
        """oslo's fixture: ``obj_to_primitive`` lists changed fields sorted by name.

        podium lists them in field order, already the same on every run; this
        gives the alphabetical order that tests written for oslo compare with.
        """

        def _setUp(self) -> None:
            original = VersionedObject.obj_to_primitive

            def sorted_changes(obj: VersionedObject, *args: Any, **kwargs: Any) -> Any:
                result = original(obj, *args, **kwargs)
                changes = result.get(obj._obj_keys[4])
                if changes is not None:
                    changes.sort()
                return result

            self.useFixture(
                fixtures.MonkeyPatch(
                    "podium.objects.base.VersionedObject.obj_to_primitive", sorted_changes
                )
            )

    return StableObjectJsonFixture


_FIXTURE_BUILDERS: dict[str, Callable[[Any], type[Any]]] = {
    "IndirectionFixture": _indirection_fixture_class,
    "StableObjectJsonFixture": _stable_json_fixture_class,
    "VersionedObjectRegistryFixture": _registry_fixture_class,
}


def _copy_of(registry: VersionedObjectRegistry) -> VersionedObjectRegistry:
    copied = VersionedObjectRegistry()
    for versions in registry.obj_classes().values():
        for cls in reversed(versions):
            copied.register_class(cls)
    return copied


@contextmanager
def isolated_default_registry(
    registry: VersionedObjectRegistry | None = None,
) -> Iterator[VersionedObjectRegistry]:
    """Make ``registry`` (default: a new, empty one) the global registry for a block.

    Classes registered with ``@VersionedObjectRegistry.register`` inside the
    block land there and vanish with it, so a test does not leak objects into
    other tests' registry (and their fingerprint tables).
    """
    replacement = registry or VersionedObjectRegistry()
    previous = default_registry()
    _registry_module._DEFAULT = replacement
    try:
        yield replacement
    finally:
        _registry_module._DEFAULT = previous
