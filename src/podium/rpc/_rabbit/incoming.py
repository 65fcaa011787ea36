"""A request as a server worker received it, and the handle its runtime answers through."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._transport import IncomingMessage
from . import amqp

if TYPE_CHECKING:
    from .servers import Worker

# Headers of a request sent again after its handling failed, or set aside.
ATTEMPTS_HEADER = "x-podium-attempts"
REASON_HEADER = "x-podium-reason"
QUEUE_HEADER = "x-podium-queue"


class Delivery:
    """A request as the broker handed it over, before it is decoded."""

    __slots__ = ("body", "generation", "props", "queue", "tag")

    def __init__(
        self, generation: int, tag: int, body: bytes, queue: str, props: amqp.Properties
    ) -> None:
        self.generation = generation
        self.tag = tag
        self.body = body
        self.queue = queue
        self.props = props

    @property
    def headers(self) -> dict[str, Any]:
        headers = self.props.headers
        return headers if isinstance(headers, dict) else {}

    @property
    def attempts(self) -> int:
        """How many times handling this request failed before (kept in the message)."""
        value = self.headers.get(ATTEMPTS_HEADER, 0)
        return value if isinstance(value, int) and value >= 0 else 0


class RabbitIncoming(IncomingMessage):
    __slots__ = ("delivery", "message", "pending_reply", "reply_q", "settled", "worker")

    def __init__(self, worker: Worker, delivery: Delivery, message: dict[str, Any]) -> None:
        self.worker = worker
        self.delivery = delivery
        self.message = message
        self.reply_q = message.get("_reply_q")
        self.pending_reply: tuple[str, str, bytes] | None = None
        self.settled = False

    def reply(self, reply: dict[str, Any]) -> None:
        if not isinstance(self.reply_q, str) or not self.reply_q:
            return
        body = self.worker.driver.encode(reply, "reply")
        # Sent with the ack, in one write: RPCServer always acks after replying.
        self.pending_reply = (self.reply_q, str(reply.get("_msg_id")), body)

    def ack(self) -> None:
        if self.settled:
            return
        self.settled = True
        pending, self.pending_reply = self.pending_reply, None
        self.worker.finish(self.delivery, reply=pending)

    def requeue(self) -> None:
        if self.settled:
            return
        self.settled = True
        self.worker.settle(self.delivery, ack=False)

    def fail(self, reason: str) -> None:
        if self.settled:
            return
        self.settled = True
        self.worker.fail(self.delivery, reason)

    def dead_letter(self, reason: str) -> None:
        if self.settled:
            return
        self.settled = True
        self.worker.dead_letter(self.delivery, reason)
