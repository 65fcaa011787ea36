"""Fuzzing what crosses a trust boundary: any input, a documented podium error or success.

Targets: the wire decoder (any bytes, any nested JSON), the RPC dispatcher (any
message dict), object deserialization (any primitive, through the class and
the serializer) and the conductor's three object endpoints (any JSON-ish
arguments, against a ConductorManager on SQLite). The property is the same
everywhere: what escapes is a :class:`podium.exceptions.PodiumError`, never a
RecursionError, TypeError, KeyError or AttributeError from inside. The one
exception: once the conductor has called the object's own remotable method,
what that raises (a TypeError for arguments it does not take included) is
what the same call raises in-process, and the caller rightly gets it as such.

Every property runs 500 examples in the default run and 10,000 with
``pytest -m nightly`` (every test here carries the ``nightly`` marker, so that
command runs only these); ``PODIUM_FUZZ_EXAMPLES=<n>`` sets any other number.
Under ``CI=true`` hypothesis keeps no example database.
"""

from __future__ import annotations

import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podium.cloud.objects import Instance, InstanceList
from podium.conductor import ConductorManager
from podium.context import RequestContext
from podium.db import Database
from podium.db.migration import sync
from podium.exceptions import MalformedMessage, PodiumError
from podium.objects import VersionedObject, VersionedObjectRegistry, VersionedObjectSerializer
from podium.objects import fields as f
from podium.rpc import _codec as codec
from podium.rpc._server import RPCDispatcher

pytestmark = pytest.mark.nightly

FUZZ = settings(settings.get_profile("podium-fuzz"))
LIMIT = codec.MAX_MESSAGE_DEPTH


def depth_of(value: Any) -> int:
    """Levels of dicts, lists and tuples (iterative: values here nest past the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            node = list(node.values())
        if isinstance(node, list | tuple):
            deepest = max(deepest, depth)
            stack.extend((item, depth + 1) for item in node)
    return deepest


def nested(depth: int, leaf: Any, shape: str) -> Any:
    value = leaf
    for level in range(depth):
        as_list = shape == "list" or (shape == "mixed" and level % 2)
        value = [value] if as_list else {"k": value}
    return value


def nested_text(depth: int, leaf: str, shape: str) -> str:
    """The JSON text of :func:`nested`, written directly (no encoder recurses that deep)."""
    opens, closes = [], []
    for level in range(depth):
        as_list = shape == "list" or (shape == "mixed" and level % 2)
        opens.append("[" if as_list else '{"k":')
        closes.append("]" if as_list else "}")
    return "".join(reversed(opens)) + leaf + "".join(closes)


# -- values ------------------------------------------------------------------------

EDGE_INTS = st.sampled_from(
    [2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**30, 10**400]
)
EDGE_FLOATS = st.sampled_from([1e308, -1e308, 9.223372036854775807e18, 1.5, -0.0])
EDGE_TEXTS = st.sampled_from(
    [
        "1." + "9" * 5000,
        "9" * 5000,
        "[" * 300,
        "{" * 300 + "]" * 300,
        "1.0",
        "1.0.1",
        "\u005b\u007b",
        "save",
        "Instance",
        "podium_object.name",
        "_context_user_id",
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    EDGE_INTS,
    st.floats(allow_nan=False, allow_infinity=False),
    EDGE_FLOATS,
    st.text(max_size=12),
    EDGE_TEXTS,
)
SHAPES = st.sampled_from(["list", "dict", "mixed"])
DEEP = st.builds(nested, st.integers(LIMIT - 8, 1100), SCALARS, SHAPES)
# One leaf in ten is a deep chain: crossing 64, 128, 254 (orjson's writer),
# 1000 (Python's recursion limit) and 1024 (orjson's reader).
LEAVES = st.one_of(*[SCALARS] * 9, DEEP)
KEYS = st.text(max_size=8) | EDGE_TEXTS
JSONISH = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=6,
)

# -- the wire decoder --------------------------------------------------------------

MARK = "\x00deep\x00"
MARK_JSON = orjson.dumps(MARK).decode()
WIRE_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["[", "{", "]", "}", '"', "\\", "[[[{{{", "]]]}}}", MARK]),
)
WIRE_VALUES = st.recursive(
    WIRE_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=16,
)


@st.composite
def json_texts(draw: st.DrawFn) -> str:
    """JSON text of a value with, where MARK was drawn, a chain up to 1,500 deep."""
    text = orjson.dumps(draw(WIRE_VALUES)).decode()
    while MARK_JSON in text:
        depth = draw(st.integers(0, 1500) | st.integers(LIMIT - 4, LIMIT + 4))
        leaf = orjson.dumps(draw(WIRE_SCALARS)).decode()
        text = text.replace(MARK_JSON, nested_text(depth, leaf, draw(SHAPES)), 1)
    return text


def envelope(inner: str, escape_brackets: bool = False) -> bytes:
    quoted = orjson.dumps(inner).decode()
    if escape_brackets:
        # Legal JSON escapes: the brackets become real ones once the envelope is read.
        quoted = quoted.replace("[", "\\u005b").replace("{", "\\u007b")
    return f'{{"oslo.version": "2.0", "oslo.message": {quoted}}}'.encode()


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["bytes", "text", "bare", "envelope", "escaped", "mutated"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "text":
        return draw(st.text(max_size=300)).encode("utf-8", "surrogatepass")
    message = '{"method": "m", "args": {"v": ' + draw(json_texts()) + "}}"
    if kind == "bare":
        return message.encode()
    body = envelope(message, escape_brackets=kind == "escaped")
    if kind == "mutated":
        data = bytearray(body)
        for _ in range(draw(st.integers(1, 4))):
            where = draw(st.integers(0, len(data)))
            data[where:where] = draw(st.binary(min_size=1, max_size=3))
        body = bytes(data)
    return body


@FUZZ
@given(body=bodies())
def test_decode_takes_any_bytes(body: bytes) -> None:
    try:
        message = codec.decode(body)
    except MalformedMessage:
        return
    assert isinstance(message, dict)
    assert depth_of(message) <= LIMIT


@FUZZ
@given(text=json_texts(), escaped=st.booleans())
def test_decode_refuses_exactly_the_messages_nested_too_deep(text: str, escaped: bool) -> None:
    inner = '{"method": "m", "args": {"v": ' + text + "}}"
    try:
        expected = orjson.loads(inner)
    except orjson.JSONDecodeError:
        expected = None  # beyond orjson's own limit of 1024
    try:
        message = codec.decode(envelope(inner, escaped))
    except MalformedMessage:
        assert expected is None or depth_of(expected) > LIMIT
        return
    assert message == expected
    assert depth_of(message) <= LIMIT


@FUZZ
@given(value=WIRE_VALUES, limit=st.integers(0, 300), wrap=st.integers(0, 300))
def test_depth_check_is_exact(value: Any, limit: int, wrap: int) -> None:
    for _ in range(wrap):
        value = [value]
    assert codec.deeper_than(value, limit) == (depth_of(value) > limit)


# -- the dispatcher ------------------------------------------------------------------


class Endpoint:
    """Takes any arguments, so that what the fuzzer meets is the dispatcher's own code."""

    def echo(self, ctxt: Any, **kwargs: Any) -> Any:
        return kwargs

    def fail(self, ctxt: Any, **kwargs: Any) -> Any:
        raise MalformedMessage("the endpoint's own documented error")


MESSAGE_KEYS = st.sampled_from(
    [
        "method",
        "args",
        "namespace",
        "version",
        "_unique_id",
        "_msg_id",
        "_reply_q",
        "_context_user_id",
        "_context_roles",
        "_context_is_admin",
        "_context_request_id",
        "_context_read_deleted",
        "_context_project",
        "_context_tenant",
    ]
)
METHODS = st.sampled_from(["echo", "fail", "_private", "missing", "__init__"]) | JSONISH


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    message: dict[str, Any] = draw(st.dictionaries(MESSAGE_KEYS | KEYS, JSONISH, max_size=4))
    if draw(st.booleans()):
        message["method"] = draw(METHODS)
    if draw(st.booleans()):
        message["args"] = draw(st.dictionaries(KEYS, JSONISH | PRIMITIVES, max_size=3))
    if draw(st.booleans()):
        message["version"] = draw(st.sampled_from(["1.0", "1.5", "2.0", "1", "x.y"]) | JSONISH)
    return message


def primitives() -> Any:
    """Object primitives, well-formed or nearly so, of classes the registry knows."""

    def build(name: Any, version: Any, data: Any, changes: Any, drop: Any) -> Any:
        primitive = {
            "podium_object.name": name,
            "podium_object.namespace": "podium",
            "podium_object.version": version,
            "podium_object.data": data,
            "podium_object.changes": changes,
        }
        for key in drop:
            primitive.pop(key, None)
        return primitive

    field_names = st.sampled_from(sorted(Everything.fields)) | KEYS
    return st.builds(
        build,
        st.sampled_from(["Everything", "Child", "Instance", "InstanceList"]) | JSONISH,
        st.sampled_from(["1.0", "1.1", "2.0", "1.0.1", "1." + "9" * 5000]) | JSONISH,
        st.dictionaries(field_names, JSONISH, max_size=4) | JSONISH,
        st.lists(field_names, max_size=3) | JSONISH,
        st.sets(st.sampled_from(["podium_object.name", "podium_object.data"]), max_size=1),
    )


REG = VersionedObjectRegistry()


@REG.register
class Child(VersionedObject):
    fields = {"id": f.IntegerField(), "name": f.StringField(nullable=True)}


@REG.register
class Everything(VersionedObject):
    fields = {
        "integer": f.IntegerField(),
        "nonneg": f.NonNegativeIntegerField(),
        "float": f.FloatField(),
        "string": f.StringField(),
        "boolean": f.BooleanField(),
        "uuid": f.UUIDField(),
        "when": f.DateTimeField(),
        "ip": f.IPAddressField(),
        "net": f.IPNetworkField(),
        "state": f.EnumField(["a", "b"]),
        "ints": f.ListOfIntegersField(),
        "strings": f.ListOfStringsField(),
        "int_set": f.SetOfIntegersField(),
        "int_dict": f.DictOfIntegersField(),
        "flex": f.FlexibleDictField(),
        "child": f.ObjectField("Child", nullable=True),
        "children": f.ListOfObjectsField("Child"),
        "parent": f.ObjectField("Everything", nullable=True),
    }


PRIMITIVES = primitives()


@FUZZ
@given(message=messages(), objects=st.booleans())
def test_dispatcher_raises_only_podium_errors(message: dict[str, Any], objects: bool) -> None:
    serializer = VersionedObjectSerializer(registry=REG) if objects else None
    dispatcher = RPCDispatcher([Endpoint()], serializer)
    try:
        _ctxt, result = dispatcher.dispatch(message)
    except PodiumError:
        return
    # The reply carrying the result fails only as documented, if at all.
    only_podium_errors(lambda: codec.encode({"result": result, "failure": None}))


# -- objects -------------------------------------------------------------------------


def check_accepted(obj: VersionedObject) -> None:
    """An object that was accepted goes out on the wire as it came in."""
    primitive = obj.obj_to_primitive()
    back = VersionedObject.obj_from_primitive(orjson.loads(orjson.dumps(primitive)), registry=REG)
    assert back.obj_to_primitive() == primitive


@FUZZ
@given(primitive=PRIMITIVES | JSONISH)
def test_object_from_any_primitive(primitive: Any) -> None:
    try:
        obj = VersionedObject.obj_from_primitive(primitive, registry=REG)
    except PodiumError:
        return
    check_accepted(obj)


@FUZZ
@given(entity=JSONISH | PRIMITIVES | st.lists(PRIMITIVES, max_size=3))
def test_serializer_reads_any_entity(entity: Any) -> None:
    serializer = VersionedObjectSerializer(registry=REG)
    try:
        value = serializer.deserialize_entity(None, entity)
    except PodiumError:
        return
    # Back out again: only documented errors there too (an int the wire cannot
    # carry is a MalformedMessage when encoded).
    only_podium_errors(lambda: codec.dumps(serializer.serialize_entity(None, value)))


@FUZZ
@given(
    values=st.dictionaries(
        st.sampled_from(sorted(Everything.fields)), EDGE_INTS | EDGE_FLOATS | JSONISH, max_size=4
    ),
)
def test_any_field_assignment(values: dict[str, Any]) -> None:
    try:
        obj = Everything(**values)
    except PodiumError:
        return
    check_accepted(obj)


# -- the conductor ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConductorManager]:
    path: Path = tmp_path_factory.mktemp("fuzz") / "conductor.sqlite"
    database = Database(f"sqlite:///{path}")
    sync(database)
    yield ConductorManager(database)
    database.dispose()


CTX = RequestContext(user_id="fuzz", project_id="p1")


@st.composite
def instances(draw: st.DrawFn) -> Instance:
    instance = Instance(CTX, uuid=str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)))))
    for name in draw(st.sets(st.sampled_from(["hostname", "task_state", "memory_mb", "id"]))):
        value = draw(
            st.text(max_size=8) if name in ("hostname", "task_state") else st.integers(0, 9)
        )
        setattr(instance, name, value)
    return instance


def wire(value: Any) -> Any:
    """What a value is after the serializer and the wire: how the conductor receives it."""
    return VersionedObjectSerializer().serialize_entity(None, value)


OBJINST = instances() | instances().map(wire) | JSONISH
OBJMETHODS = st.sampled_from(["create", "save", "destroy", "refresh", "get_by_uuid", "_from_row"])
ARGS = st.lists(JSONISH, max_size=3) | JSONISH
KWARGS = (
    st.dictionaries(
        st.sampled_from(["expected_task_state", "uuid", "host", "x"]) | KEYS, JSONISH, max_size=3
    )
    | JSONISH
)
VERSIONS = (
    st.fixed_dictionaries(
        {"Instance": st.sampled_from(["1.0", "1.1", "2.0"]) | JSONISH},
        optional={"InstanceList": st.sampled_from(["1.0", "1.1"]) | JSONISH},
    )
    | st.dictionaries(KEYS, JSONISH, max_size=3)
    | JSONISH
)


def only_podium_errors(call: Any) -> Any:
    try:
        return call()
    except PodiumError:
        return None


def reached_the_method(exc: BaseException) -> bool:
    """Was the object's own method called? Then what it raised is its own business:
    the caller gets the same error the call would raise in-process."""
    return any(
        frame.f_code.co_name == "call" and frame.f_code.co_filename.endswith("remotable.py")
        for frame, _ in traceback.walk_tb(exc.__traceback__)
    )


def endpoint_outcome(call: Any) -> Any:
    try:
        return call()
    except PodiumError:
        return None
    except Exception as exc:
        if reached_the_method(exc):
            return None
        raise


@FUZZ
@given(
    objinst=OBJINST,
    objmethod=OBJMETHODS | JSONISH,
    args=ARGS,
    kwargs=KWARGS,
)
def test_conductor_object_action(
    manager: ConductorManager, objinst: Any, objmethod: Any, args: Any, kwargs: Any
) -> None:
    endpoint_outcome(lambda: manager.object_action(CTX, objinst, objmethod, args, kwargs))


@FUZZ
@given(
    objname=st.sampled_from(["Instance", "InstanceList", "Nope"]) | JSONISH,
    objmethod=st.sampled_from(["get_by_uuid", "get_all", "get_by_host", "save"]) | JSONISH,
    object_versions=VERSIONS,
    args=ARGS,
    kwargs=KWARGS,
)
def test_conductor_object_class_action_versions(
    manager: ConductorManager,
    objname: Any,
    objmethod: Any,
    object_versions: Any,
    args: Any,
    kwargs: Any,
) -> None:
    endpoint_outcome(
        lambda: manager.object_class_action_versions(
            CTX, objname, objmethod, object_versions, args, kwargs
        )
    )


@FUZZ
@given(
    objinst=OBJINST | st.builds(InstanceList, objects=st.lists(instances(), max_size=2)),
    object_versions=VERSIONS,
)
def test_conductor_object_backport_versions(
    manager: ConductorManager, objinst: Any, object_versions: Any
) -> None:
    result = only_podium_errors(
        lambda: manager.object_backport_versions(CTX, objinst, object_versions)
    )
    if result is not None:
        codec.dumps(result)
