"""Messages at and beyond the nesting limit, and remote exceptions carrying odd values."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podium.exceptions import MalformedMessage, NotFound, ObjectFormatError, RemoteError
from podium.objects import VersionedObjectSerializer
from podium.rpc import _codec as codec
from podium.rpc._server import RPCDispatcher


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for i in range(depth):
        value = {"k": value} if i % 2 else [value]
    return value


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    return 0


def call_with(arg: Any) -> dict[str, Any]:
    return {"method": "echo", "args": {"value": arg}, "_context_user_id": "u"}


def deep_text(depth: int) -> str:
    """JSON nested ``depth`` deep, written directly: json.dumps() itself would recurse."""
    return "[" * depth + "]" * depth


def test_a_message_nested_1000_deep_is_a_malformed_message() -> None:
    body = codec.encode(call_with(nested(10)))
    deep_inner = '{"method": "echo", "args": {"value": ' + deep_text(1000) + "}}"
    deep_body = json.dumps({"oslo.version": "2.0", "oslo.message": deep_inner})
    assert codec.decode(body)["args"]["value"] == nested(10)
    with pytest.raises(MalformedMessage, match="nested more than 128 levels"):
        codec.decode(deep_body)
    with pytest.raises(MalformedMessage, match="nested more than 128 levels"):
        codec.decode(deep_inner)  # the pre-envelope format: the bare message


def test_nesting_limit_counts_the_message_itself_and_is_inclusive() -> None:
    # The message is level 1, "args" level 2, so the value may be 126 deep.
    fits = codec.encode(call_with(nested(126)))
    assert depth_of(codec.decode(fits)) == 128
    with pytest.raises(MalformedMessage, match="nested more than 128"):
        codec.decode(codec.encode(call_with(nested(127))))


def test_nesting_limit_is_configurable() -> None:
    body = codec.encode(call_with(nested(3)))
    assert codec.decode(body, max_depth=5)["args"]["value"] == nested(3)
    with pytest.raises(MalformedMessage, match="nested more than 4"):
        codec.decode(body, max_depth=4)


def test_orjsons_own_depth_limit_is_a_malformed_message_too() -> None:
    inner = "[" * 2000 + "]" * 2000
    with pytest.raises(MalformedMessage):
        codec.decode(json.dumps({"oslo.version": "2.0", "oslo.message": inner}))
    with pytest.raises(MalformedMessage):
        codec.decode(inner)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    message = call_with(["[" * 500, "{" * 500, "]]]" * 100, {"[[[[": "{{{{"}])
    assert codec.decode(codec.encode(message)) == message
    # Strings cannot hide real depth either.
    deep = call_with(["]" * 300, nested(200), "[" * 300])
    with pytest.raises(MalformedMessage, match="nested more than"):
        codec.decode(codec.encode(deep))


def test_a_wide_shallow_message_is_accepted() -> None:
    message = call_with([{"a": [1, {"b": [2]}]} for _ in range(2000)])
    assert codec.decode(codec.encode(message)) == message


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None, database=None)
@given(value=json_values, limit=st.integers(1, 12))
def test_depth_check_agrees_with_a_plain_recursive_count(value: Any, limit: int) -> None:
    message = {"v": value}
    assert codec.deeper_than(message, limit) == (depth_of(message) > limit)


@pytest.mark.parametrize("depth", [1, 2, 120, 127, 128, 129, 130, 200, 253, 254, 255, 300])
def test_depth_check_agrees_around_orjsons_serializer_limit(depth: int) -> None:
    for leaf in (1, [], {}):
        value = nested(depth - depth_of(leaf), leaf)
        assert depth_of(value) == depth
        for limit in (1, 64, 127, 128, 129, 253, 254, 255, 400):
            assert codec.deeper_than(value, limit) == (depth > limit), (limit, leaf)


# -- remote exceptions --------------------------------------------------------------


class StrFails(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


@pytest.mark.parametrize(
    "exc",
    [
        ValueError(nested(1000)),
        ValueError(nested(200)),
        KeyError({"k": nested(1000)}),
        ValueError(10**5000),
        StrFails("x"),
        ValueError(object()),
    ],
    ids=["deep", "past-orjson", "deep-dict", "huge-int", "str-fails", "not-json"],
)
def test_any_exception_serializes_to_a_failure_the_caller_can_read(exc: Exception) -> None:
    failure = codec.serialize_remote_exception(exc)
    data = orjson.loads(failure)
    assert data["class"] == type(exc).__name__
    assert depth_of(data) <= codec.MAX_MESSAGE_DEPTH
    # The failure travels inside a reply; the reply must decode on the caller.
    reply = {"result": None, "failure": failure, "ending": True}
    assert codec.decode(codec.encode(reply))["failure"] == failure
    rebuilt = codec.deserialize_remote_exception(failure, ["podium.exceptions"])
    assert isinstance(rebuilt, type(exc) | RemoteError)
    str(rebuilt)


def test_serialized_exception_keeps_plain_arguments() -> None:
    failure = codec.serialize_remote_exception(NotFound("gone", 3, [1, {"a": 2}]))
    assert orjson.loads(failure)["args"] == ["gone", 3, [1, {"a": 2}]]


def test_a_deep_failure_from_the_wire_becomes_a_remote_error() -> None:
    failure = '{"class": "ValueError", "module": "builtins", "args": [' + deep_text(1000) + "]}"
    rebuilt = codec.deserialize_remote_exception(failure, [])
    assert isinstance(rebuilt, RemoteError)
    str(rebuilt)
    tb_failure = '{"class": "X", "module": "m", "tb": [' + deep_text(900) + "]}"
    str(codec.deserialize_remote_exception(tb_failure, []))
    for odd_trace in ("5", "{}", '"one line"', "null"):
        failure = '{"class": "X", "module": "m", "tb": ' + odd_trace + "}"
        assert isinstance(codec.deserialize_remote_exception(failure, []), RemoteError)


# -- the dispatcher -------------------------------------------------------------------


class Echo:
    def echo(self, ctxt: Any, value: Any) -> Any:
        return value


def test_dispatcher_with_the_object_serializer_refuses_deep_arguments() -> None:
    dispatcher = RPCDispatcher([Echo()], VersionedObjectSerializer())
    with pytest.raises(ObjectFormatError, match="nested more than"):
        dispatcher.dispatch(call_with(nested(1000)))
    assert dispatcher.dispatch(call_with(nested(5)))[1] == nested(5)
