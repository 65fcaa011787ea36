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
conductor builds it.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import orjson

from podium.objects import registry as _registry_module
from podium.objects.base import ObjectListBase, VersionedObject
from podium.objects.indirection import IndirectionAPI
from podium.objects.registry import VersionedObjectRegistry, default_registry
from podium.objects.remotable import is_remotable, local_method
from podium.objects.serializer import VersionedObjectSerializer

__all__ = [
    "FakeIndirectionAPI",
    "ObjectVersionChecker",
    "compute_updates",
    "indirection_api_set",
    "isolated_default_registry",
    "load_expected",
    "obj_fingerprint",
]


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


class ObjectVersionChecker:
    """Fingerprints of the newest registered version of every object."""

    def __init__(self, registry: VersionedObjectRegistry | None = None) -> None:
        self.registry = registry or default_registry()

    def get_hashes(
        self, extra_data_func: Callable[[type[VersionedObject]], Any] | None = None
    ) -> dict[str, str]:
        classes = self.registry.obj_classes()
        return {
            name: obj_fingerprint(versions[0], extra_data_func)
            for name, versions in sorted(classes.items())
        }

    def test_hashes(
        self,
        expected_hashes: Mapping[str, str],
        extra_data_func: Callable[[type[VersionedObject]], Any] | None = None,
    ) -> tuple[dict[str, str | None], dict[str, str | None]]:
        """The entries that differ, as ``(expected, actual)``; equal when all match.

        A name missing on one side appears with ``None`` on that side.
        """
        actual = self.get_hashes(extra_data_func)
        expected_diff: dict[str, str | None] = {}
        actual_diff: dict[str, str | None] = {}
        for name in sorted(set(actual) | set(expected_hashes)):
            want = expected_hashes.get(name)
            have = actual.get(name)
            if want != have:
                expected_diff[name] = want
                actual_diff[name] = have
        return expected_diff, actual_diff

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


def compute_updates(before: VersionedObject, after: VersionedObject) -> dict[str, Any]:
    """The ``updates`` of an ``object_action`` reply, as a conductor builds them.

    Every field set on ``after`` whose value differs from ``before`` (or that
    ``before`` did not have), in primitive form, plus ``obj_what_changed``.
    """
    updates: dict[str, Any] = {}
    b, a = before.__dict__, after.__dict__
    for name, field in after.fields.items():
        if name not in a:
            continue
        new = field.to_primitive(after, name, a[name])
        if name not in b or field.to_primitive(before, name, b[name]) != new:
            updates[name] = new
    updates["obj_what_changed"] = sorted(after.obj_what_changed())
    return updates


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
