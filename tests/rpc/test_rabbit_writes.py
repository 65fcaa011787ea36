"""How many writes a call costs on rabbit://: one for the request, one for the reply and its ack.

pika sends every frame with a send() of its own (a message is three frames),
and the broker wakes up for each; the driver joins what it queued and sends it
at once. These tests count pika's socket sends on a real broker, so they also
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
from podium.rpc._rabbit import write_now

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


def test_queued_frames_leave_at_once_in_one_send(rabbit_url: str, sends: list[int]) -> None:
    params = pika.URLParameters(rabbit_url.replace("rabbit://", "amqp://", 1))
    connection = pika.BlockingConnection(params)
    try:
        channel = connection.channel()
        sends.clear()
        channel._impl.basic_publish("", "nowhere", b"payload", pika.BasicProperties())
        queued = list(connection._impl._transport._tx_buffers)
        assert len(queued) == 3  # method, header, body
        write_now(connection)  # no poll of pika's loop in between
        assert sends == [len(b"".join(queued))]
        assert connection._impl._get_write_buffer_size() == 0
        write_now(connection)  # nothing queued: nothing sent
        assert len(sends) == 1
        connection.process_data_events(0)  # pika's loop agrees nothing is left
        assert connection.is_open
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
