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
from typing import Any

import pika
import pytest
from rpc_helpers import delete_queues

from podium.rpc import RPCClient, RPCServer, Target, Transport, get_transport
from podium.rpc import _codec as codec
from podium.rpc._server import MAX_HEADER_BYTES

pytestmark = pytest.mark.rabbit

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


@pytest.fixture
def rabbit(rabbit_url: str, topic: str) -> Iterator[Transport]:
    t = get_transport(f"{rabbit_url}?max_attempts={MAX_ATTEMPTS}")
    yield t
    t.cleanup()
    delete_queues(rabbit_url, [topic, f"{topic}.a", f"{topic}.dead"])


def raw_connection(url: str) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(url.replace("rabbit://", "amqp://", 1)))


def dead_letters(url: str, topic: str) -> list[tuple[dict[str, Any], bytes]]:
    return [(dict(props.headers or {}), body) for props, body in dead_messages(url, topic)]


def dead_messages(url: str, topic: str) -> list[tuple[pika.BasicProperties, bytes]]:
    found = []
    with contextlib.closing(raw_connection(url)) as conn:
        ch = conn.channel()
        while True:
            method, props, body = ch.basic_get(f"{topic}.dead", auto_ack=True)
            if method is None:
                return found
            found.append((props, body))


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
    rabbit: Transport, rabbit_url: str, topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="podium.rpc")
    # One worker: a single delivery left unsettled would silence the server.
    with RPCServer(rabbit, Target(topic=topic, server="a"), [Endpoint()], max_workers=1):
        with contextlib.closing(raw_connection(rabbit_url)) as conn:
            ch = conn.channel()
            for body in POISONED.values():
                ch.basic_publish("openstack", topic, body)
        client = RPCClient(rabbit, Target(topic=topic), timeout=10)
        for i in range(3):
            assert client.call({}, "echo", value=i) == i
    dead = dead_letters(rabbit_url, topic)
    assert sorted(body for _headers, body in dead) == sorted(POISONED.values())
    for headers, _body in dead:
        assert headers["x-podium-queue"] == topic
        assert "header" in headers["x-podium-reason"]
    logged = [r for r in caplog.records if "dead-letter" in r.getMessage()]
    assert len(logged) == len(POISONED)  # once each


def test_a_server_started_on_a_poisoned_queue_serves(
    rabbit: Transport, rabbit_url: str, topic: str
) -> None:
    with RPCServer(rabbit, Target(topic=topic, server="a"), [Endpoint()], max_workers=1):
        pass  # declares the queues
    with contextlib.closing(raw_connection(rabbit_url)) as conn:
        ch = conn.channel()
        for _ in range(2):
            ch.basic_publish("openstack", topic, POISONED["msg_id too long"])
    with RPCServer(rabbit, Target(topic=topic, server="a"), [Endpoint()], max_workers=1):
        assert RPCClient(rabbit, Target(topic=topic), timeout=10).call({}, "echo", value=7) == 7
    assert len(dead_letters(rabbit_url, topic)) == 2


def test_a_request_whose_handling_keeps_failing_is_dead_lettered_after_bounded_attempts(
    rabbit: Transport, rabbit_url: str, topic: str
) -> None:
    endpoint = Endpoint()
    with ExplodingServer(rabbit, Target(topic=topic, server="a"), [endpoint], max_workers=1):
        client = RPCClient(rabbit, Target(topic=topic), timeout=10)
        with contextlib.closing(raw_connection(rabbit_url)) as conn:
            # Sent again, a request keeps its expiration (a call's caller waits
            # only so long); set aside, it is kept for ever, and persistent.
            props = pika.BasicProperties(expiration="60000", delivery_mode=1)
            conn.channel().basic_publish("openstack", topic, request(method="explode"), props)
        # Served only once the failing request has gone to the dead-letter queue or
        # is waiting behind us: either way the worker is free again.
        for i in range(MAX_ATTEMPTS + 2):
            assert client.call({}, "echo", value=i) == i
        with contextlib.closing(raw_connection(rabbit_url)) as conn:
            ch = conn.channel()
            for _ in range(200):
                if ch.queue_declare(f"{topic}.dead", passive=True).method.message_count:
                    break
                conn.sleep(0.05)
    [(props, body)] = dead_messages(rabbit_url, topic)
    assert props.expiration is None and props.delivery_mode == 2
    headers = props.headers
    assert headers["x-podium-attempts"] == MAX_ATTEMPTS
    assert "boom while finishing the request" in headers["x-podium-reason"]
    assert codec.decode(body)["method"] == "explode"
    assert endpoint.runs == ["explode"] * MAX_ATTEMPTS


def test_undecodable_bodies_are_dead_lettered_not_dropped(
    rabbit: Transport, rabbit_url: str, topic: str
) -> None:
    garbage = [b"\xff\xfe not json", b"[1, 2]", b'{"oslo.version": "9.0", "oslo.message": "{}"}']
    with RPCServer(rabbit, Target(topic=topic, server="a"), [Endpoint()], max_workers=1):
        with contextlib.closing(raw_connection(rabbit_url)) as conn:
            ch = conn.channel()
            for body in garbage:
                ch.basic_publish("openstack", topic, body)
        assert RPCClient(rabbit, Target(topic=topic), timeout=10).call({}, "echo", value=1) == 1
    dead = dead_letters(rabbit_url, topic)
    assert sorted(body for _h, body in dead) == sorted(garbage)
    assert all(h["x-podium-attempts"] == 0 for h, _b in dead)  # never run
