"""podium and the real oslo.messaging on one RabbitMQ, calling each other both ways."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import Any

import oslo_messaging
import pytest
from oslo_config import cfg
from oslo_messaging._metrics import client as oslo_metrics
from oslo_messaging._tracing import client as oslo_tracing
from rpc_helpers import SERVERS, delete_queues

from podium.context import RequestContext
from podium.exceptions import NoSuchMethod, NotFound, RemoteError
from podium.rpc import RPCClient, RPCServer, Target, Transport, get_transport

pytestmark = [pytest.mark.rabbit, pytest.mark.interop]

CTX = RequestContext(user_id="u1", project_id="p1", request_id="req-interop")


class Endpoint:
    """The same endpoint serves on both sides; ``side`` says which one answered."""

    def __init__(self, side: str, events: queue.Queue[Any]) -> None:
        self.side = side
        self.events = events

    def echo(self, ctxt: Any, value: Any) -> Any:
        return value

    def who(self, ctxt: Any) -> dict[str, Any]:
        user = ctxt["user_id"] if isinstance(ctxt, dict) else ctxt.user_id
        return {"side": self.side, "user_id": user}

    def record(self, ctxt: Any, value: Any) -> None:
        self.events.put((self.side, value))

    def not_found(self, ctxt: Any) -> None:
        raise NotFound("row gone")

    def value_error(self, ctxt: Any) -> None:
        raise ValueError("bad input")

    def custom(self, ctxt: Any) -> None:
        raise KeyboardInterruptLike("not allowed remotely")


class KeyboardInterruptLike(Exception):
    pass


@pytest.fixture(params=["direct", "queue"])
def reply_mode(request: pytest.FixtureRequest) -> str:
    """How podium callers take replies: RabbitMQ direct reply-to, or a reply queue."""
    return str(request.param)


@pytest.fixture
def oslo_transport(rabbit_url: str, topic: str, reply_mode: str) -> Iterator[Any]:
    conf = cfg.ConfigOpts()
    conf([], project="podium-interop")
    # oslo.messaging registers these groups on the global CONF only; a private
    # ConfigOpts needs them too, or its server silently drops every request.
    conf.register_opts(oslo_tracing.oslo_messaging_tracing, group="oslo_messaging_tracing")
    conf.register_opts(oslo_metrics.oslo_messaging_metrics, group="oslo_messaging_metrics")
    transport = oslo_messaging.get_rpc_transport(
        conf, url=rabbit_url, allowed_remote_exmods=["podium.exceptions"]
    )
    # podium declares durable topic queues; oslo must be configured alike to share them.
    conf.set_override("amqp_durable_queues", True, group="oslo_messaging_rabbit")
    if reply_mode == "direct":
        # RabbitMQ before 3.11 returns a mandatory publish to a direct reply-to
        # address although it delivered it; oslo then re-sends the reply for a
        # minute. Its (deprecated) switch turns the mandatory flag off.
        conf.set_override("direct_mandatory_flag", False, group="oslo_messaging_rabbit")
    yield transport
    transport.cleanup()
    delete_queues(rabbit_url, [topic, *(f"{topic}.{s}" for s in SERVERS)])


@pytest.fixture
def podium_transport(rabbit_url: str, reply_mode: str) -> Iterator[Transport]:
    t = get_transport(f"{rabbit_url}?reply={reply_mode}")
    yield t
    t.cleanup()


@pytest.fixture
def events() -> queue.Queue[Any]:
    return queue.Queue()


@pytest.fixture
def oslo_server(oslo_transport: Any, topic: str, events: queue.Queue[Any]) -> Iterator[Any]:
    server = oslo_messaging.get_rpc_server(
        oslo_transport,
        oslo_messaging.Target(topic=topic, server="a"),
        [Endpoint("oslo", events)],
    )  # threading is oslo.messaging's default (and only non-deprecated) executor
    server.start()
    yield server
    server.stop()
    server.wait()


@pytest.fixture
def podium_server(
    podium_transport: Transport, topic: str, events: queue.Queue[Any]
) -> Iterator[RPCServer]:
    with RPCServer(
        podium_transport,
        Target(topic=topic, server="b"),
        [Endpoint("podium", events)],
        max_workers=4,
    ) as server:
        yield server


# -- podium client -> oslo.messaging server ------------------------------------


def test_podium_calls_oslo(oslo_server: Any, podium_transport: Transport, topic: str) -> None:
    client = RPCClient(podium_transport, Target(topic=topic, server="a"), timeout=20)
    assert client.call(CTX, "echo", value={"k": [1, "two"]}) == {"k": [1, "two"]}
    assert client.call(CTX, "who") == {"side": "oslo", "user_id": "u1"}


def test_podium_casts_to_oslo(
    oslo_server: Any, podium_transport: Transport, topic: str, events: queue.Queue[Any]
) -> None:
    RPCClient(podium_transport, Target(topic=topic)).cast(CTX, "record", value=5)
    assert events.get(timeout=20) == ("oslo", 5)


def test_oslo_exceptions_reach_podium(
    oslo_server: Any, podium_transport: Transport, topic: str
) -> None:
    client = RPCClient(podium_transport, Target(topic=topic, server="a"), timeout=20)
    with pytest.raises(NotFound, match="row gone"):
        client.call(CTX, "not_found")
    with pytest.raises(ValueError, match="bad input"):
        client.call(CTX, "value_error")
    with pytest.raises(RemoteError) as info:
        client.call(CTX, "custom")
    assert info.value.exc_type == "KeyboardInterruptLike"
    with pytest.raises(RemoteError) as info:
        client.call(CTX, "no_such_thing")
    assert info.value.exc_type == "NoSuchMethod"


# -- oslo.messaging client -> podium server ------------------------------------


def test_oslo_calls_podium(oslo_transport: Any, podium_server: RPCServer, topic: str) -> None:
    client = oslo_messaging.get_rpc_client(
        oslo_transport, oslo_messaging.Target(topic=topic, server="b"), timeout=20
    )
    assert client.call(CTX.to_dict(), "echo", value=[1, {"a": None}]) == [1, {"a": None}]
    assert client.call(CTX.to_dict(), "who") == {"side": "podium", "user_id": "u1"}


def test_oslo_casts_to_podium(
    oslo_transport: Any, podium_server: RPCServer, topic: str, events: queue.Queue[Any]
) -> None:
    client = oslo_messaging.get_rpc_client(oslo_transport, oslo_messaging.Target(topic=topic))
    client.cast(CTX.to_dict(), "record", value="from oslo")
    assert events.get(timeout=20) == ("podium", "from oslo")


def test_podium_exceptions_reach_oslo(
    oslo_transport: Any, podium_server: RPCServer, topic: str
) -> None:
    client = oslo_messaging.get_rpc_client(
        oslo_transport, oslo_messaging.Target(topic=topic, server="b"), timeout=20
    )
    with pytest.raises(NotFound, match="row gone"):
        client.call(CTX.to_dict(), "not_found")
    with pytest.raises(NoSuchMethod):
        client.call(CTX.to_dict(), "no_such_thing")
    with pytest.raises(oslo_messaging.RemoteError) as info:
        client.call(CTX.to_dict(), "custom")
    assert info.value.exc_type == "KeyboardInterruptLike"


# -- both kinds of server on one topic ------------------------------------------


def test_fanout_reaches_oslo_and_podium_servers_from_either_client(
    oslo_server: Any,
    podium_server: RPCServer,
    oslo_transport: Any,
    podium_transport: Transport,
    topic: str,
    events: queue.Queue[Any],
) -> None:
    RPCClient(podium_transport, Target(topic=topic, fanout=True)).cast(CTX, "record", value="p")
    got = {events.get(timeout=20), events.get(timeout=20)}
    assert got == {("oslo", "p"), ("podium", "p")}
    oslo_client = oslo_messaging.get_rpc_client(
        oslo_transport, oslo_messaging.Target(topic=topic, fanout=True)
    )
    oslo_client.cast(CTX.to_dict(), "record", value="o")
    got = {events.get(timeout=20), events.get(timeout=20)}
    assert got == {("oslo", "o"), ("podium", "o")}


def test_mixed_servers_compete_on_the_topic_queue(
    oslo_server: Any, podium_server: RPCServer, podium_transport: Transport, topic: str
) -> None:
    client = RPCClient(podium_transport, Target(topic=topic), timeout=20)
    sides = {client.call(CTX, "who")["side"] for _ in range(12)}
    assert sides == {"oslo", "podium"}
