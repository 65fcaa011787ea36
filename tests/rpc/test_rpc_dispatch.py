"""What a request may reach on an endpoint, and which remote errors a caller may see as its own."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from podium.exceptions import (
    MessagingTimeout,
    NoConsumer,
    NoSuchMethod,
    RemoteError,
    TransportError,
)
from podium.rpc import RPCClient, RPCServer, Target, Transport
from podium.rpc import _codec as codec
from podium.rpc._server import RPCDispatcher


class Base:
    def inherited(self, ctxt: Any) -> str:
        return "inherited"


class Endpoint(Base):
    target = Target(version="1.0")

    def __init__(self) -> None:
        self.callback = lambda ctxt: "instance attribute"
        self.helper = Target(topic="x")  # a callable object held as data

    def echo(self, ctxt: Any, value: Any) -> Any:
        return value

    @staticmethod
    def static(ctxt: Any) -> str:
        return "static"

    @classmethod
    def klass(cls, ctxt: Any) -> str:
        return "class"


def dispatch(method: str, **args: Any) -> Any:
    return RPCDispatcher([Endpoint()]).dispatch({"method": method, "args": args})[1]


def test_methods_defined_on_the_endpoints_class_are_dispatched() -> None:
    assert dispatch("echo", value=3) == 3
    assert dispatch("inherited") == "inherited"
    assert dispatch("static") == "static"
    assert dispatch("klass") == "class"


@pytest.mark.parametrize(
    "method",
    [
        "target",  # a Target is callable: it used to be called with the request's args
        "callback",  # set on the instance, not defined by the class
        "helper",
        "__init__",
        "__class__",
        "__call__",
        "__reduce_ex__",
        "__init_subclass__",
        "mro",
    ],
)
def test_attributes_that_are_not_the_classes_methods_are_not_dispatched(method: str) -> None:
    with pytest.raises(NoSuchMethod):
        dispatch(method)


@pytest.mark.parametrize("error", [TransportError, NoConsumer, MessagingTimeout])
def test_transport_errors_raised_remotely_arrive_as_remote_errors(error: type[Exception]) -> None:
    # Raised locally they mean "your request was not delivered / not answered";
    # the remote side did run the request, so the caller must not read them so.
    failure = codec.serialize_remote_exception(error("the server's own call failed"))
    rebuilt = codec.deserialize_remote_exception(failure, ["podium.exceptions"])
    assert isinstance(rebuilt, RemoteError)
    assert rebuilt.exc_type == error.__name__
    assert "the server's own call failed" in str(rebuilt)


def test_a_handler_whose_own_call_found_no_consumer_does_not_look_undelivered(
    memory_transport: Transport,
) -> None:
    class Forwarder:
        def forward(self, ctxt: Any) -> None:
            raise NoConsumer("nobody serves topic 'elsewhere'")

    with (
        RPCServer(memory_transport, Target(topic="fwd"), [Forwarder()]),
        pytest.raises(RemoteError) as info,
    ):
        RPCClient(memory_transport, Target(topic="fwd")).call({}, "forward")
    assert info.value.exc_type == "NoConsumer"


def test_the_failure_format_is_unchanged_for_other_podium_errors() -> None:
    failure = codec.serialize_remote_exception(NoSuchMethod("nope"))
    assert orjson.loads(failure)["class"] == "NoSuchMethod"
    rebuilt = codec.deserialize_remote_exception(failure, ["podium.exceptions"])
    assert isinstance(rebuilt, NoSuchMethod)
