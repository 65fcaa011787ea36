"""A delivery handed to an RPCServer by hand, as a driver would: what it replied, how it settled."""

from __future__ import annotations

import copy
from typing import Any

from podium.rpc._transport import IncomingMessage


class Delivery(IncomingMessage):
    """One delivery of a message to a server: what it replied and how it settled."""

    def __init__(self, message: dict[str, Any]) -> None:
        self.message = copy.deepcopy(message)
        self.replies: list[dict[str, Any]] = []
        self.settled: list[str] = []

    def reply(self, reply: dict[str, Any]) -> None:
        self.replies.append(reply)

    def ack(self) -> None:
        self.settled.append("ack")

    def requeue(self) -> None:
        self.settled.append("requeue")

    def fail(self, reason: str) -> None:
        self.settled.append(f"fail: {reason}")

    def dead_letter(self, reason: str) -> None:
        self.settled.append(f"dead: {reason}")

    @property
    def answer(self) -> dict[str, Any]:
        """The one reply's result and failure, of a delivery that was acknowledged."""
        assert len(self.replies) == 1 and self.settled == ["ack"], (self.replies, self.settled)
        return {key: self.replies[0][key] for key in ("result", "failure")}
