"""``memory://``: an in-process bus, for the embedded deployment and fast tests.

It keeps AMQP's shapes (a shared queue per topic with competing consumers, a
queue per server, a fanout set, reply queues) and encodes every message with
the real codec, so whatever passes here passes on RabbitMQ. ``memory://name``
is a separate bus; plain ``memory://`` is the process-wide one.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from podium.exceptions import InvalidTarget, TransportError

from . import _codec
from ._target import Target
from ._transport import (
    DEFAULT_EXCHANGE,
    Driver,
    IncomingMessage,
    Listener,
    TransportURL,
    no_consumer_error,
    timeout_error,
)

LOG = logging.getLogger(__name__)


class _Consumer:
    def __init__(self, driver: MemoryDriver, callback: Callable[[IncomingMessage], None]) -> None:
        self.driver = driver
        self.bus = driver.bus
        self.callback = callback
        self.active = True

    def deliver(self, body: bytes) -> None:
        try:
            message = _codec.decode(body, self.driver.max_message_bytes)
        except Exception as exc:
            LOG.error("dead-lettering an undecodable message: %s", exc)
            self.bus.dead.append((str(exc), body))
            return
        self.callback(_MemoryIncoming(self.driver, message))


class _Queue:
    def __init__(self) -> None:
        self.consumers: list[_Consumer] = []
        self.backlog: deque[bytes] = deque()
        self.turn = itertools.count()

    def pick(self) -> _Consumer | None:
        if not self.consumers:
            return None
        return self.consumers[next(self.turn) % len(self.consumers)]


class _Waiter:
    __slots__ = ("event", "reply")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reply: dict[str, Any] | None = None


class _Bus:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.queues: dict[str, _Queue] = {}
        self.fanout: dict[str, list[_Consumer]] = {}
        self.waiters: dict[str, _Waiter] = {}
        # (reason, message) of requests set aside unrun, oldest first; bounded
        # so a flood of bad messages cannot grow an embedded process without end.
        self.dead: deque[tuple[str, Any]] = deque(maxlen=1000)

    def queue(self, name: str) -> _Queue:
        queue = self.queues.get(name)
        if queue is None:
            queue = self.queues[name] = _Queue()
        return queue

    def exists(self, name: str) -> bool:
        with self.lock:
            return name in self.queues

    def publish(self, name: str, body: bytes, *, must_route: bool) -> bool:
        with self.lock:
            queue = self.queues.get(name)
            consumer = queue.pick() if queue is not None else None
            if consumer is None:
                if must_route:
                    return False
                self.queue(name).backlog.append(body)
                return True
        consumer.deliver(body)
        return True

    def publish_fanout(self, name: str, body: bytes) -> None:
        with self.lock:
            consumers = list(self.fanout.get(name, ()))
        for consumer in consumers:
            consumer.deliver(body)

    def subscribe(self, names: list[str], fanout: str, consumer: _Consumer) -> None:
        backlog: list[bytes] = []
        with self.lock:
            for name in names:
                queue = self.queue(name)
                queue.consumers.append(consumer)
                backlog.extend(queue.backlog)
                queue.backlog.clear()
            self.fanout.setdefault(fanout, []).append(consumer)
        for body in backlog:
            consumer.deliver(body)

    def unsubscribe(self, consumer: _Consumer) -> None:
        with self.lock:
            for queue in self.queues.values():
                if consumer in queue.consumers:
                    queue.consumers.remove(consumer)
            for consumers in self.fanout.values():
                if consumer in consumers:
                    consumers.remove(consumer)

    def deliver_reply(self, reply_q: str, body: bytes) -> None:
        with self.lock:
            waiter = self.waiters.get(reply_q)
        reply = _codec.decode(body)
        if waiter is None or waiter.event.is_set():
            LOG.warning(
                "dropping reply to message %s: its caller stopped waiting", reply.get("_msg_id")
            )
            return
        waiter.reply = reply
        waiter.event.set()


_BUSES: dict[str, _Bus] = {}
_BUSES_LOCK = threading.Lock()


def _get_bus(name: str) -> _Bus:
    with _BUSES_LOCK:
        bus = _BUSES.get(name)
        if bus is None:
            bus = _BUSES[name] = _Bus()
        return bus


class _MemoryIncoming(IncomingMessage):
    __slots__ = ("bus", "driver", "message", "reply_q")

    def __init__(self, driver: MemoryDriver, message: dict[str, Any]) -> None:
        self.driver = driver
        self.bus = driver.bus
        self.message = message
        self.reply_q = message.get("_reply_q")

    def reply(self, reply: dict[str, Any]) -> None:
        if isinstance(self.reply_q, str):
            self.bus.deliver_reply(self.reply_q, self.driver.encode(reply, "reply"))

    def ack(self) -> None:
        pass

    def requeue(self) -> None:
        # The in-process bus hands every message to a consumer at once; a
        # stopping server has nobody to give it back to, so it is dropped.
        LOG.warning("memory:// drops a requeued message %s", self.message.get("_unique_id"))

    # Nothing is delivered again on the in-process bus: a failure is final.
    def fail(self, reason: str) -> None:
        self.dead_letter(reason)

    def dead_letter(self, reason: str) -> None:
        LOG.error("dead-lettering message %.80r: %s", self.message.get("_unique_id"), reason)
        self.bus.dead.append((reason, self.message))


class _MemoryListener(Listener):
    def __init__(self, bus: _Bus, consumer: _Consumer) -> None:
        self.bus = bus
        self.consumer = consumer

    def stop(self) -> None:
        self.bus.unsubscribe(self.consumer)

    def close(self) -> None:
        self.stop()


def _queue_names(target: Target) -> tuple[str, str]:
    exchange = target.exchange or DEFAULT_EXCHANGE
    topic = f"{exchange}/{target.topic}"
    return topic, f"{topic}.{target.server}"


class MemoryDriver(Driver):
    def __init__(self, url: TransportURL) -> None:
        name = url.hosts[0].hostname if url.hosts else ""
        self.bus = _get_bus(name)
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise TransportError("transport is closed")

    def send(
        self,
        target: Target,
        message: dict[str, Any],
        *,
        wait_for_reply: bool,
        timeout: float | None,
        retry: int | None,
        resend_lost: bool = False,  # the in-process bus loses no connection
    ) -> dict[str, Any] | None:
        self._check_open()
        if not target.topic:
            raise InvalidTarget("a message needs a topic")
        message[_codec.UNIQUE_ID] = _codec.new_id()
        waiter: _Waiter | None = None
        reply_q = ""
        if wait_for_reply:
            msg_id = _codec.new_id()
            reply_q = f"reply_{msg_id}"
            message["_msg_id"] = msg_id
            message["_reply_q"] = reply_q
            waiter = _Waiter()
            with self.bus.lock:
                self.bus.waiters[reply_q] = waiter
        try:
            body = self.encode(message)
            topic_q, server_q = _queue_names(target)
            if target.fanout:
                self.bus.publish_fanout(topic_q, body)
                return None
            name = server_q if target.server else topic_q
            if target.server and not wait_for_reply and not self.bus.exists(name):
                # As on RabbitMQ: only a server makes its own queue.
                key = f"{target.topic}.{target.server}"
                raise no_consumer_error(
                    target, str(message.get("method")), f"queue {key!r} does not exist"
                )
            if not self.bus.publish(name, body, must_route=wait_for_reply):
                raise no_consumer_error(target, str(message.get("method")))
            if waiter is None:
                return None
            if not waiter.event.wait(timeout):
                waiter.event.set()  # a reply arriving now is late: drop it
                raise timeout_error(target, str(message.get("method")), timeout)
            assert waiter.reply is not None
            return waiter.reply
        finally:
            if reply_q:
                with self.bus.lock:
                    self.bus.waiters.pop(reply_q, None)

    def listen(
        self, target: Target, callback: Callable[[IncomingMessage], None], prefetch: int
    ) -> Listener:
        self._check_open()
        if not target.topic:
            raise InvalidTarget("a server's target needs a topic")
        consumer = _Consumer(self, callback)
        topic_q, server_q = _queue_names(target)
        names = [topic_q, server_q] if target.server else [topic_q]
        self.bus.subscribe(names, topic_q, consumer)
        return _MemoryListener(self.bus, consumer)

    def close(self) -> None:
        self._closed = True
