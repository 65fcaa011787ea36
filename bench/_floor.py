"""The floor: podium's messages on a bare pika connection, the least a round trip can cost.

``Recorder`` captures the bodies podium's own clients put on the wire (the
same serializer, context and envelope); ``FloorClient`` sends such bodies on
one bare pika connection and waits for each answer on RabbitMQ's direct
reply-to, as podium's calls do. What answers them is the suite's own server:
an echo of canned replies (bench_cloud) or one SQL statement (bench_floor).
"""

from __future__ import annotations

import uuid
from typing import Any

import pika


class Recorder:
    """A transport driver that keeps each message instead of sending it.

    Podium's own clients and objects build the messages (the same serializer,
    context and envelope as on the wire); the reply handed back is ``reply``.
    """

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.reply: Any = None

    def send(
        self,
        target: Any,
        message: dict[str, Any],
        *,
        wait_for_reply: bool,
        timeout: float,
        deadline: float,
    ) -> dict[str, Any] | None:
        from podium.rpc import _codec

        # What the rabbit driver adds before it encodes (the transport set the unique id).
        if wait_for_reply:
            message["_msg_id"] = _codec.new_id()
            message["_reply_q"] = "amq.rabbitmq.reply-to.g1hkABJyYWJiaXRAbG9jYWxob3N0AAAA"
        self.sent.append(_codec.encode(message))
        return {"result": self.reply, "failure": None, "ending": True} if wait_for_reply else None

    def is_recoverable(self, exc: BaseException) -> bool:
        return False  # nothing is sent: nothing to try again

    def describe_error(self, exc: BaseException) -> str:
        return str(exc)

    def close(self) -> None:
        pass


def reply_body(result: Any) -> bytes:
    """The body of podium's reply carrying ``result`` (already primitives)."""
    from podium.rpc import _codec

    reply = {"result": result, "failure": None, "ending": True, "_msg_id": _codec.new_id()}
    reply[_codec.UNIQUE_ID] = _codec.new_id()
    return _codec.encode(reply)


def pika_parameters(url: str) -> pika.URLParameters:
    return pika.URLParameters(url.replace("rabbit://", "amqp://", 1))


class FloorClient:
    """One caller's bare pika connection; ``send()`` sends its bodies in turn.

    ``bodies``: (request, is_call). Calls go as podium sends them (transient,
    straight to the queue); casts persistent, as podium's are. Each waits for
    its answer on direct reply-to; the correlation id is the body's index.
    """

    def __init__(
        self, url: str, queue: str, bodies: list[tuple[bytes, bool]], fresh_ids: bool = False
    ) -> None:
        self.conn = pika.BlockingConnection(pika_parameters(url))
        self.ch = self.conn.channel()
        self.got: list[bytes] = []
        self.ch.basic_consume(
            "amq.rabbitmq.reply-to",
            lambda _c, _m, _p, body: self.got.append(body),
            auto_ack=True,
        )
        self.queue = queue
        # Each send a new request: an AMQP message id of its own, the body unchanged.
        self.fresh_ids = fresh_ids
        self.sends = [
            (
                body,
                pika.BasicProperties(
                    reply_to="amq.rabbitmq.reply-to",
                    correlation_id=str(index),
                    content_type="application/json",
                    delivery_mode=1 if call else 2,
                ),
            )
            for index, (body, call) in enumerate(bodies)
        ]

    def send(self, _i: int = 0) -> None:
        for body, props in self.sends:
            if self.fresh_ids:
                props.message_id = uuid.uuid4().hex
            self.ch.basic_publish("", self.queue, body, props)
            while not self.got:
                self.conn.process_data_events(time_limit=None)
            self.got.clear()

    def close(self) -> None:
        self.conn.close()
