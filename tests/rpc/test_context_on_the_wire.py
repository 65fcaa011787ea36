"""A malformed request context sent to a server: refused, answered, and the server serves on."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from podium.context import RequestContext
from podium.exceptions import MalformedContext, MalformedMessage
from podium.objects import VersionedObjectSerializer
from podium.rpc import RPCClient, RPCServer, Serializer, Target, Transport
from podium.rpc import _codec as codec


class Recorder:
    def __init__(self) -> None:
        self.calls: list[Any] = []

    def echo(self, ctxt: Any, value: Any) -> Any:
        self.calls.append((ctxt, value))
        return value


@pytest.fixture(params=["default", "objects"])
def serializer(request: pytest.FixtureRequest) -> Serializer | None:
    """The plain server's serializer, and the object serializer a conductor runs."""
    return VersionedObjectSerializer() if request.param == "objects" else None


@pytest.fixture
def served(
    memory_transport: Transport, topic: str, serializer: Serializer | None
) -> Iterator[Recorder]:
    recorder = Recorder()
    # One worker: requests run in the order sent, so a test can tell what came first.
    with RPCServer(
        memory_transport,
        Target(topic=topic, server="a"),
        [recorder],
        serializer=serializer,
        max_workers=1,
    ):
        yield recorder


def _raw_call(transport: Transport, topic: str, context: dict[str, Any]) -> dict[str, Any]:
    """Send a hand-built request, bypassing every client-side serializer."""
    message: dict[str, Any] = {"method": "echo", "args": {"value": "raw"}, "version": "1.0"}
    codec.pack_context(message, context)
    reply = transport.send(
        Target(topic=topic), message, wait_for_reply=True, timeout=10, retry=None
    )
    assert reply is not None
    return reply


def test_is_admin_as_a_string_is_refused_and_the_server_serves_on(
    memory_transport: Transport, topic: str, served: Recorder
) -> None:
    good = RequestContext(user_id="u", request_id="req-good")
    bad = {**good.to_dict(), "is_admin": "false"}
    reply = _raw_call(memory_transport, topic, bad)
    assert reply["result"] is None
    error = codec.deserialize_remote_exception(reply["failure"], ["podium.exceptions"])
    assert isinstance(error, MalformedContext)
    assert isinstance(error, MalformedMessage)
    assert "is_admin" in str(error)
    assert served.calls == []  # the endpoint never ran with the bad context

    client = RPCClient(memory_transport, Target(topic=topic), timeout=10)
    assert client.call(good, "echo", value="next") == "next"
    assert [(c.user_id, c.is_admin, v) for c, v in served.calls] == [("u", False, "next")]


@pytest.mark.parametrize(
    "bad",
    [
        {"is_admin": "false"},
        {"roles": "admin"},
        {"user_id": {"id": "u"}},
        {"user_id": "alice", "user": "mallory"},
        {"request_id": "req-1\nforged log line"},
        {"read_deleted": "sometimes"},
    ],
)
def test_the_caller_gets_the_error_as_its_own_class(
    memory_transport: Transport, topic: str, served: Recorder, bad: dict[str, Any]
) -> None:
    client = RPCClient(memory_transport, Target(topic=topic), timeout=10)
    # A dict context is sent as it is: this is what a foreign peer could send.
    with pytest.raises(MalformedContext, match=next(iter(bad))):
        client.call(bad, "echo", value=1)
    assert served.calls == []
    assert client.call(RequestContext(), "echo", value=2) == 2


def test_a_cast_with_a_bad_context_is_logged_and_dropped(
    memory_transport: Transport, topic: str, served: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="podium.rpc")
    client = RPCClient(memory_transport, Target(topic=topic), timeout=10)
    client.cast({"is_admin": "false"}, "echo", value="cast")
    assert client.call(RequestContext(), "echo", value="after") == "after"
    assert [v for _, v in served.calls] == ["after"]
    assert any("is_admin" in r.getMessage() for r in caplog.records)


def test_an_oslo_context_with_all_its_keys_is_served(
    memory_transport: Transport, topic: str, served: Recorder
) -> None:
    oslo_context = pytest.importorskip("oslo_context.context")
    sent = oslo_context.RequestContext(
        user_id="u", project_id="p", auth_token="tok", roles=["member"], show_deleted=True
    ).to_dict()
    client = RPCClient(memory_transport, Target(topic=topic), timeout=10)
    assert client.call(sent, "echo", value="oslo") == "oslo"
    [(ctxt, _)] = served.calls
    assert (ctxt.user_id, ctxt.project_id, ctxt.roles, ctxt.request_id) == (
        "u",
        "p",
        ["member"],
        sent["request_id"],
    )
    assert ctxt.extra["auth_token"] == "tok"
