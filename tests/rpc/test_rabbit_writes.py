"""How many writes a call costs on rabbit://: one for the request, one for the reply and its ack.

pika sends every frame with a send() of its own (a message is three frames),
and the broker wakes up for each; the driver marshals a message's frames (a
reply's with its ack) and sends them at once. These tests count pika's socket
sends on a real broker, so they also fail if pika's internals move and the
single write silently stops happening.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pika
import pytest
from pika.adapters.utils import io_services_utils
from rpc_helpers import delete_queues

from podium.rpc import RPCClient, RPCServer, Target, get_transport
from podium.rpc._rabbit.amqp import publish_frames, send_now

pytestmark = pytest.mark.rabbit


class Echo:
    def echo(self, ctxt: Any, value: Any) -> Any:
        return value


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The size of every send() pika makes in this process, in order."""
    sizes: list[int] = []
    original = io_services_utils._AsyncTransportBase._sigint_safe_send

    def counting(sock: Any, data: bytes) -> int:
        sizes.append(len(data))
        return int(original(sock, data))

    monkeypatch.setattr(
        io_services_utils._AsyncTransportBase, "_sigint_safe_send", staticmethod(counting)
    )
    yield sizes


@pytest.fixture
def channel(rabbit_url: str, topic: str) -> Iterator[Any]:
    """A channel of a fresh connection, with the queue ``topic`` declared."""
    params = pika.URLParameters(rabbit_url.replace("rabbit://", "amqp://", 1))
    connection = pika.BlockingConnection(params)
    try:
        channel = connection.channel()
        channel.queue_declare(topic, auto_delete=True)
        yield channel
    finally:
        connection.close()


def test_a_message_leaves_in_one_send(channel: Any, topic: str, sends: list[int]) -> None:
    sends.clear()
    frames = publish_frames(channel, "", topic, b"payload", pika.BasicProperties())
    assert len(frames) == 3  # method, header, body
    send_now(channel.connection, frames)  # no poll of pika's loop in between
    assert sends == [len(b"".join(frames))]
    assert channel.connection._impl._get_write_buffer_size() == 0
    assert _get(channel, topic)[2] == b"payload"


def test_a_body_larger_than_a_frame_is_split_and_arrives_whole(
    channel: Any, topic: str, sends: list[int]
) -> None:
    payload = bytes(range(256)) * 2000  # 512 kB, several frames, more than one send may take
    frames = publish_frames(channel, "", topic, payload, pika.BasicProperties())
    assert len(frames) > 3
    send_now(channel.connection, frames)
    assert _get(channel, topic)[2] == payload


def test_frames_queued_in_pika_go_first(channel: Any, topic: str, sends: list[int]) -> None:
    sends.clear()
    channel._impl.basic_publish("", topic, b"first", pika.BasicProperties())  # queued only
    send_now(
        channel.connection, publish_frames(channel, "", topic, b"second", pika.BasicProperties())
    )
    assert sends == []  # behind pika's queue, not beside it
    channel.connection.process_data_events(0)
    assert [_get(channel, topic)[2] for _ in range(2)] == [b"first", b"second"]


def _get(channel: Any, queue: str) -> tuple[Any, Any, bytes]:
    for _ in range(200):
        method, props, body = channel.basic_get(queue, auto_ack=True)
        if method is not None:
            return method, props, body
        channel.connection.sleep(0.01)
    raise AssertionError(f"nothing arrived on {queue}")


def test_a_call_costs_one_send_each_way(rabbit_url: str, topic: str, sends: list[int]) -> None:
    transport = get_transport(rabbit_url)
    try:
        with RPCServer(transport, Target(topic=topic, server="a"), [Echo()], max_workers=1):
            client = RPCClient(transport, Target(topic=topic, server="a"), timeout=10)
            for _ in range(5):  # connect, declare, probe for consumers
                client.call({}, "echo", value="warm")
            sends.clear()
            calls = 20
            for i in range(calls):
                assert client.call({}, "echo", value=i) == i
            # The request from the caller, the reply with the ack from the
            # server; a probe for consumers may fall in the window once.
            assert len(sends) <= 2 * calls + 1, sends
    finally:
        transport.cleanup()
        delete_queues(rabbit_url, [topic, f"{topic}.a"])
