"""Poison messages: whatever a request carries, its delivery ends, and the server keeps serving.

A delivery that is neither acknowledged nor rejected holds the worker's one
prefetch slot for ever: with one worker, the server goes deaf, and the message
stays in the durable queue to deafen the next server too. So requests whose
headers cannot be echoed are set aside in ``<topic>.dead`` before they run,
and requests whose handling keeps failing go there after a bounded number of
attempts, with the reason in the message's headers.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pika
import pytest
from rpc_helpers import delete_queues

from podium.rpc import MemoryBroker, RPCClient, RPCServer, Target, Transport, get_transport
from podium.rpc import _codec as codec
from podium.rpc._server import MAX_HEADER_BYTES
from polling import wait_for

MAX_ATTEMPTS = 3


class Endpoint:
    def __init__(self) -> None:
        self.runs: list[Any] = []
        self.lock = threading.Lock()

    def echo(self, ctxt: Any, value: Any) -> Any:
        return value

    def record(self, ctxt: Any, value: Any) -> None:
        with self.lock:
            self.runs.append(value)


class ExplodingServer(RPCServer):
    """A server whose own machinery fails on one method, after running it."""

    def _handle(self, incoming: Any) -> None:
        if incoming.message.get("method") == "explode":
            endpoint = self.dispatcher.endpoints[0]
            endpoint.record(None, "explode")
            raise RuntimeError("boom while finishing the request")
        super()._handle(incoming)


@dataclass(frozen=True)
class Dead:
    reason: str
    body: bytes
    queue: str
    attempts: int


class Broker:
    """What a test does to a transport's broker behind podium's back, on either transport."""

    def __init__(
        self, transport: Transport, url: str, topic: str, memory: MemoryBroker | None = None
    ) -> None:
        self.transport = transport
        self.url = url
        self.topic = topic
        self.memory = memory

    def publish(self, body: bytes, props: pika.BasicProperties | None = None) -> None:
        """Put raw bytes on the topic's queue, as a foreign or broken client would."""
        if self.memory is not None:
            self.memory.bus().publish(f"openstack/{self.topic}", body, must_route=False)
            return
        with contextlib.closing(raw_connection(self.url)) as conn:
            conn.channel().basic_publish("openstack", self.topic, body, props)

    def dead(self) -> list[Dead]:
        """The requests set aside from the topic's queue (taken off the broker)."""
        if self.memory is not None:
            queue = f"openstack/{self.topic}"
            letters = [d for d in self.memory.dead_letters() if d.queue == queue]
            self.memory.bus().dead.clear()
            return [Dead(d.reason, d.body, self.topic, d.attempts) for d in letters]
        return [
            Dead(
                headers["x-podium-reason"],
                body,
                headers["x-podium-queue"],
                headers["x-podium-attempts"],
            )
            for props, body in dead_messages(self.url, self.topic)
            for headers in [dict(props.headers or {})]
        ]


@pytest.fixture(params=["memory", pytest.param("rabbit", marks=pytest.mark.rabbit)])
def broker(request: pytest.FixtureRequest, topic: str) -> Iterator[Broker]:
    memory = MemoryBroker() if request.param == "memory" else None
    url = "memory://" if memory else request.getfixturevalue("rabbit_url")
    t = get_transport(f"{url}?max_attempts={MAX_ATTEMPTS}", broker=memory)
    yield Broker(t, url, topic, memory)
    t.cleanup()
    if request.param == "rabbit":
        delete_queues(url, [topic, f"{topic}.a", f"{topic}.dead"])


def raw_connection(url: str) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(url.replace("rabbit://", "amqp://", 1)))


def dead_messages(url: str, topic: str) -> list[tuple[pika.BasicProperties, bytes]]:
    found = []
    with contextlib.closing(raw_connection(url)) as conn:
        ch = conn.channel()
        while True:
            method, props, body = ch.basic_get(f"{topic}.dead", auto_ack=True)
            if method is None:
                return found
            found.append((props, body))


def wait_for_dead(broker: Broker, count: int) -> list[Dead]:
    """The dead letters, once ``count`` have been set aside (reading takes them off)."""
    found: list[Dead] = []

    def enough() -> bool:
        found.extend(broker.dead())
        return len(found) >= count

    wait_for(enough, f"{count} dead letters on {broker.topic}")
    return found


def request(**fields: Any) -> bytes:
    return codec.encode({"method": "echo", "args": {"value": 1}, **fields})


POISONED = {
    "msg_id too long": request(_msg_id="m" * 300, _reply_q="reply_x", _unique_id="p1"),
    "reply_q too long": request(_msg_id="m1", _reply_q="r" * 300, _unique_id="p2"),
    "msg_id not a string": request(_msg_id={"a": 1}, _reply_q="reply_x", _unique_id="p3"),
    "reply_q not a string": request(_msg_id="m2", _reply_q=["q"], _unique_id="p4"),
    "unique_id too long": request(_unique_id="u" * 300),
    "multi-byte msg_id over 255 bytes": request(_msg_id="é" * 200, _reply_q="reply_x"),
    "control character in reply_q": request(_msg_id="m3", _reply_q="reply_\x00x"),
}


def test_the_header_limit_is_amqps_short_string() -> None:
    assert MAX_HEADER_BYTES == 255


def test_poisoned_headers_are_dead_lettered_and_the_server_keeps_serving(
    broker: Broker, topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="podium.rpc")
    # One worker: a single delivery left unsettled would silence the server.
    with RPCServer(broker.transport, Target(topic=topic, server="a"), [Endpoint()], max_workers=1):
        for body in POISONED.values():
            broker.publish(body)
        client = RPCClient(broker.transport, Target(topic=topic), timeout=10)
        for i in range(3):
            assert client.call({}, "echo", value=i) == i
    dead = wait_for_dead(broker, len(POISONED))
    assert sorted(d.body for d in dead) == sorted(POISONED.values())
    for d in dead:
        assert d.queue == topic
        assert "header" in d.reason
        assert d.attempts == 0  # never run
    logged = [r for r in caplog.records if "dead-letter" in r.getMessage()]
    assert len(logged) == len(POISONED)  # once each


def test_a_server_started_on_a_poisoned_queue_serves(broker: Broker, topic: str) -> None:
    with RPCServer(broker.transport, Target(topic=topic, server="a"), [Endpoint()], max_workers=1):
        pass  # declares the queues
    for _ in range(2):
        broker.publish(POISONED["msg_id too long"])
    with RPCServer(broker.transport, Target(topic=topic, server="a"), [Endpoint()], max_workers=1):
        client = RPCClient(broker.transport, Target(topic=topic), timeout=10)
        assert client.call({}, "echo", value=7) == 7
    assert len(wait_for_dead(broker, 2)) == 2


def test_a_request_whose_handling_keeps_failing_is_dead_lettered_after_bounded_attempts(
    broker: Broker, topic: str
) -> None:
    endpoint = Endpoint()
    target = Target(topic=topic, server="a")
    with ExplodingServer(broker.transport, target, [endpoint], max_workers=1):
        client = RPCClient(broker.transport, Target(topic=topic), timeout=10)
        # Sent again, a request keeps its expiration (a call's caller waits
        # only so long); set aside, it is kept for ever, and persistent.
        broker.publish(
            request(method="explode"), pika.BasicProperties(expiration="60000", delivery_mode=1)
        )
        # Served only once the failing request has gone to the dead-letter queue or
        # is waiting behind us: either way the worker is free again.
        for i in range(MAX_ATTEMPTS + 2):
            assert client.call({}, "echo", value=i) == i
        [dead] = wait_for_dead(broker, 1)
    assert dead.attempts == MAX_ATTEMPTS
    assert "boom while finishing the request" in dead.reason
    assert codec.decode(dead.body)["method"] == "explode"
    assert endpoint.runs == ["explode"] * MAX_ATTEMPTS


@pytest.mark.rabbit
def test_a_request_set_aside_on_rabbitmq_is_kept_persistent_without_expiry(
    rabbit_url: str, topic: str
) -> None:
    with contextlib.closing(get_transport(f"{rabbit_url}?max_attempts=1")) as transport:
        broker = Broker(transport, rabbit_url, topic)
        with ExplodingServer(transport, Target(topic=topic, server="a"), [Endpoint()]):
            broker.publish(
                request(method="explode"), pika.BasicProperties(expiration="60000", delivery_mode=1)
            )
            wait_for(lambda: raw_queue_depth(rabbit_url, f"{topic}.dead"), "the request set aside")
    try:
        [(props, _body)] = dead_messages(rabbit_url, topic)
        assert props.expiration is None and props.delivery_mode == 2
    finally:
        delete_queues(rabbit_url, [topic, f"{topic}.a", f"{topic}.dead"])


def raw_queue_depth(url: str, queue: str) -> int:
    with contextlib.closing(raw_connection(url)) as conn:
        return int(conn.channel().queue_declare(queue, passive=True).method.message_count)


def test_undecodable_bodies_are_dead_lettered_not_dropped(broker: Broker, topic: str) -> None:
    garbage = [b"\xff\xfe not json", b"[1, 2]", b'{"oslo.version": "9.0", "oslo.message": "{}"}']
    with RPCServer(broker.transport, Target(topic=topic, server="a"), [Endpoint()], max_workers=1):
        for body in garbage:
            broker.publish(body)
        client = RPCClient(broker.transport, Target(topic=topic), timeout=10)
        assert client.call({}, "echo", value=1) == 1
    dead = wait_for_dead(broker, len(garbage))
    assert sorted(d.body for d in dead) == sorted(garbage)
    assert all(d.attempts == 0 for d in dead)  # never run
