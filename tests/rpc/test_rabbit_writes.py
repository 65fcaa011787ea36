"""How many writes a call costs on rabbit://: one for the request, one for the reply and its ack.

pika sends every frame with a send() of its own (a message is three frames),
and the broker wakes up for each; the driver joins what it queued into one
write. These tests count pika's socket sends on a real broker, so they also
fail if pika's internals move and the join silently stops happening.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pika
import pytest
from pika.adapters.utils import io_services_utils
from rpc_helpers import delete_queues

from podium.rpc import RPCClient, RPCServer, Target, get_transport
from podium.rpc._rabbit import send_as_one_write

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


def test_queued_frames_are_joined_into_one_buffer(rabbit_url: str) -> None:
    params = pika.URLParameters(rabbit_url.replace("rabbit://", "amqp://", 1))
    connection = pika.BlockingConnection(params)
    try:
        channel = connection.channel()
        channel._impl.basic_publish("", "nowhere", b"payload", pika.BasicProperties())
        buffers = connection._impl._transport._tx_buffers
        frames = list(buffers)
        assert len(frames) == 3  # method, header, body
        send_as_one_write(connection)
        assert list(buffers) == [b"".join(frames)]
        assert connection._impl._get_write_buffer_size() == len(b"".join(frames))
        connection.process_data_events(0)
        assert connection._impl._get_write_buffer_size() == 0
    finally:
        connection.close()


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
