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
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import orjson

from podium.objects import registry as _registry_module
from podium.objects._version_checker import (
    ArgSpec,
    CompatArgSpec,
    ObjClasses,
    ObjectHashMismatch,
    ObjectVersionChecker,
    get_method_spec,
    load_expected,
    obj_fingerprint,
)
from podium.objects.base import VersionedObject
from podium.objects.indirection import IndirectionAPI, object_action_updates
from podium.objects.registry import VersionedObjectRegistry, default_registry
from podium.objects.remotable import local_method
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

# Shown, documented and pickled under this module, their public home.
for _public in (ObjectHashMismatch, ObjectVersionChecker, ArgSpec, CompatArgSpec):
    _public.__module__ = __name__


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
