"""``memory://``: an in-process bus, for the embedded deployment and fast tests.

It keeps AMQP's shapes (a shared queue per topic with competing consumers, a
queue per server, a fanout set, reply queues) and encodes every message with
the real codec, so whatever passes here passes on RabbitMQ. ``memory://name``
is a separate bus; plain ``memory://`` the unnamed one; both on the process's
:class:`MemoryBroker` unless a transport is given a broker of its own.

A bus can be taken down for a while (:meth:`MemoryBroker.outage`): while it
is down, sending fails with a recoverable error, calls waiting for a reply
lose it, and servers lose their consumers, as when a RabbitMQ node goes away;
the transport's retry loop then does on ``memory://`` what it does on
``rabbit://``.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

from podium.exceptions import InvalidTarget, TransportError

from . import _codec
from ._retry import BrokerUnavailable, ConsumerOutage, RequestLost, Retrying
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


class _Delivery:
    """One message as a queue holds it: its body, and how often handling it failed."""

    __slots__ = ("attempts", "body", "queue")

    def __init__(self, queue: str, body: bytes, attempts: int = 0) -> None:
        self.queue = queue  # where it goes back to; "" for a fanout copy
        self.body = body
        self.attempts = attempts


class DeadLetter(NamedTuple):
    """A request set aside unrun, as RabbitMQ's ``<topic>.dead`` queue keeps one."""

    reason: str
    body: bytes
    queue: str  # "<exchange>/<topic>" (or "" for a fanout copy)
    attempts: int


class _Consumer:
    def __init__(
        self,
        driver: MemoryDriver,
        callback: Callable[[IncomingMessage], None],
        lost: Callable[[], None],
    ) -> None:
        self.driver = driver
        self.bus = driver.bus
        self.callback = callback
        self.lost = lost  # told when its bus stops

    def deliver(self, delivery: _Delivery) -> None:
        try:
            message = _codec.decode(delivery.body, self.driver.max_message_bytes)
        except Exception as exc:
            self.bus.set_aside(delivery, str(exc))
            return
        self.callback(_MemoryIncoming(self, delivery, message))


class _Queue:
    def __init__(self) -> None:
        self.consumers: list[_Consumer] = []
        self.backlog: deque[_Delivery] = deque()
        self.turn = itertools.count()

    def pick(self, skip: _Consumer | None = None) -> _Consumer | None:
        # Only a requeue skips anyone: every publish takes the list as it is.
        candidates = (
            self.consumers if skip is None else [c for c in self.consumers if c is not skip]
        )
        if not candidates:
            return None
        return candidates[next(self.turn) % len(candidates)]


class _Waiter:
    __slots__ = ("event", "lost", "reply")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reply: dict[str, Any] | None = None
        self.lost = False  # its bus stopped while it waited


class _Bus:
    def __init__(self, name: str) -> None:
        self.name = f"memory://{name}"
        self.down = False
        self.lock = threading.Lock()
        self.queues: dict[str, _Queue] = {}
        self.fanout: dict[str, list[_Consumer]] = {}
        self.waiters: dict[str, _Waiter] = {}
        # Oldest first; bounded so a flood of bad messages cannot grow an
        # embedded process without end.
        self.dead: deque[DeadLetter] = deque(maxlen=1000)

    def queue(self, name: str) -> _Queue:
        queue = self.queues.get(name)
        if queue is None:
            queue = self.queues[name] = _Queue()
        return queue

    def check_up(self) -> None:
        """Raise the recoverable error of a stopped bus (called with the lock held)."""
        if self.down:
            raise BrokerUnavailable(f"{self.name} is stopped")

    def exists(self, name: str) -> bool:
        with self.lock:
            self.check_up()
            return name in self.queues

    def publish(self, name: str, body: bytes, *, must_route: bool) -> bool:
        return self.put(_Delivery(name, body), must_route=must_route, sent=True)

    def put(
        self,
        delivery: _Delivery,
        *,
        must_route: bool = False,
        skip: _Consumer | None = None,
        sent: bool = False,
    ) -> bool:
        """Hand ``delivery`` to one consumer of its queue (never ``skip``), else keep it queued.

        ``sent``: published by a caller, refused while the bus is down (a
        server's own requeue goes back whatever happens, as RabbitMQ requeues
        what a lost consumer held).
        """
        with self.lock:
            if sent:
                self.check_up()
            queue = self.queues.get(delivery.queue)
            consumer = queue.pick(skip) if queue is not None else None
            if consumer is None:
                if must_route:
                    return False
                self.queue(delivery.queue).backlog.append(delivery)
                return True
        consumer.deliver(delivery)
        return True

    def publish_fanout(self, name: str, body: bytes) -> None:
        with self.lock:
            self.check_up()
            consumers = list(self.fanout.get(name, ()))
        for consumer in consumers:
            consumer.deliver(_Delivery("", body))

    def subscribe(self, names: list[str], fanout: str, consumer: _Consumer) -> None:
        backlog: list[_Delivery] = []
        with self.lock:
            self.check_up()
            for name in names:
                queue = self.queue(name)
                queue.consumers.append(consumer)
                backlog.extend(queue.backlog)
                queue.backlog.clear()
            self.fanout.setdefault(fanout, []).append(consumer)
        for delivery in backlog:
            consumer.deliver(delivery)

    def unsubscribe(self, consumer: _Consumer) -> None:
        with self.lock:
            for queue in self.queues.values():
                if consumer in queue.consumers:
                    queue.consumers.remove(consumer)
            for consumers in self.fanout.values():
                if consumer in consumers:
                    consumers.remove(consumer)

    def wait_for_reply(self, reply_q: str, waiter: _Waiter) -> None:
        with self.lock:
            self.check_up()
            self.waiters[reply_q] = waiter

    def stop(self) -> None:
        """Go down: sends fail, waiting calls lose their replies, servers their consumers."""
        with self.lock:
            self.down = True
            waiters = list(self.waiters.values())
            consumers = {id(c): c for q in self.queues.values() for c in q.consumers}
            consumers.update((id(c), c) for cs in self.fanout.values() for c in cs)
            for queue in self.queues.values():
                queue.consumers.clear()  # what they hold stays queued, for their return
            self.fanout.clear()
        for waiter in waiters:
            waiter.lost = True
            waiter.event.set()
        for consumer in consumers.values():
            consumer.lost()

    def start(self) -> None:
        with self.lock:
            self.down = False

    @contextmanager
    def outage(self) -> Iterator[None]:
        self.stop()
        try:
            yield
        finally:
            self.start()

    def set_aside(self, delivery: _Delivery, reason: str) -> None:
        LOG.error("dead-lettering a message from %s: %s", delivery.queue or "a fanout", reason)
        self.dead.append(
            DeadLetter(reason[:1000], delivery.body, delivery.queue, delivery.attempts)
        )

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


class MemoryBroker:
    """What ``memory://`` URLs reach: one bus per name (``memory://name``), made on first use.

    The process has one, used by default. ``get_transport(url, broker=MemoryBroker())``
    puts a transport on a broker of its own, which nothing else in the process
    reaches: isolation for a test or an embedded application without unique names.
    """

    def __init__(self) -> None:
        self._buses: dict[str, _Bus] = {}
        self._lock = threading.Lock()

    def bus(self, name: str = "") -> _Bus:
        with self._lock:
            bus = self._buses.get(name)
            if bus is None:
                bus = self._buses[name] = _Bus(name)
            return bus

    @contextmanager
    def outage(self, name: str = "") -> Iterator[None]:
        """Bus ``name`` is down inside the block, for tests of what fails and what recovers.

        While it is down, a call or cast fails with a recoverable error, which
        the transport retries (the caller's ``retry``, its timeout) as it
        retries a lost RabbitMQ connection; a call waiting for its reply is
        told its request may or may not have run (or sent again, when
        idempotent); servers lose their consumers and reconnect with backoff
        once it is back. Queued requests stay queued.
        """
        with self.bus(name).outage():
            yield

    def dead_letters(self, name: str = "") -> list[DeadLetter]:
        """The requests set aside on bus ``name``, oldest first (the last 1000)."""
        return list(self.bus(name).dead)


DEFAULT_BROKER = MemoryBroker()


class _MemoryIncoming(IncomingMessage):
    """A delivery settled the way RabbitMQ settles one: given back, retried a bounded
    number of times, or set aside with its reason."""

    __slots__ = ("consumer", "delivery", "message", "reply_q")

    def __init__(self, consumer: _Consumer, delivery: _Delivery, message: dict[str, Any]) -> None:
        self.consumer = consumer
        self.delivery = delivery
        self.message = message
        self.reply_q = message.get("_reply_q")

    def reply(self, reply: dict[str, Any]) -> None:
        if isinstance(self.reply_q, str):
            body = self.consumer.driver.encode(reply, "reply")
            self.consumer.bus.deliver_reply(self.reply_q, body)

    def ack(self) -> None:
        pass

    def requeue(self) -> None:
        # Only a stopping server gives a message back: to another consumer of
        # its queue, or kept for the next one to subscribe.
        delivery = self.delivery
        if delivery.queue:
            self.consumer.bus.put(delivery, skip=self.consumer)
        else:
            LOG.warning("memory:// drops a fanout message its stopping server gave back")

    def fail(self, reason: str) -> None:
        delivery = self.delivery
        attempts = delivery.attempts + 1
        limit = self.consumer.driver.max_attempts
        if attempts >= limit or not delivery.queue:
            self.consumer.bus.set_aside(_Delivery(delivery.queue, delivery.body, attempts), reason)
            return
        LOG.warning(
            "handling a message from %s failed (attempt %d of %d): %s",
            delivery.queue,
            attempts,
            limit,
            reason,
        )
        # To the back of its queue, as on RabbitMQ: not straight back to this server.
        self.consumer.bus.put(_Delivery(delivery.queue, delivery.body, attempts))

    def dead_letter(self, reason: str) -> None:
        self.consumer.bus.set_aside(self.delivery, reason)


class _MemoryListener(Listener):
    """A server's consumer, which reconnects through the retry loop when its bus stops."""

    def __init__(
        self,
        driver: MemoryDriver,
        target: Target,
        callback: Callable[[IncomingMessage], None],
    ) -> None:
        self.driver = driver
        self.bus = driver.bus
        self.consumer = _Consumer(driver, callback, self._lost)
        self.topic_q, server_q = _queue_names(target)
        self.names = [self.topic_q, server_q] if target.server else [self.topic_q]
        self.outage = ConsumerOutage(driver, str(target.topic))
        self.closed = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> None:
        Retrying(
            self.driver,
            f"could not start consuming from {self.driver.broker_name}",
            retry=self.driver.connect_retries,
            wait=self.closed.wait,
            report=self.outage.lost,
        ).run(self._subscribe)

    def _subscribe(self) -> None:
        with self._lock:
            if not self.closed.is_set():
                self.bus.subscribe(self.names, self.topic_q, self.consumer)

    def _lost(self) -> None:
        if not self.closed.is_set():
            threading.Thread(
                target=self._reconnect, name=f"podium-memory-{self.topic_q}", daemon=True
            ).start()

    def _reconnect(self) -> None:
        # A running server retries for as long as it runs, as on RabbitMQ.
        Retrying(
            self.driver,
            f"server on {self.topic_q}: cannot consume",
            wait=self.closed.wait,
            report=self.outage.lost,
        ).run(self._subscribe)
        if not self.closed.is_set():
            self.outage.back()

    def stop(self) -> None:
        with self._lock:
            self.closed.set()
            self.bus.unsubscribe(self.consumer)

    def close(self) -> None:
        self.stop()


def _queue_names(target: Target) -> tuple[str, str]:
    exchange = target.exchange or DEFAULT_EXCHANGE
    topic = f"{exchange}/{target.topic}"
    return topic, f"{topic}.{target.server}"


class MemoryDriver(Driver):
    def __init__(self, url: TransportURL, broker: MemoryBroker | None = None) -> None:
        name = url.hosts[0].hostname if url.hosts else ""
        self.bus = (broker or DEFAULT_BROKER).bus(name)
        self.broker_name = self.bus.name
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise TransportError("transport is closed")

    def ensure_connection(self, deadline: float) -> None:
        with self.bus.lock:
            self.bus.check_up()

    def send(
        self,
        target: Target,
        message: dict[str, Any],
        *,
        wait_for_reply: bool,
        timeout: float,
        deadline: float,
    ) -> dict[str, Any] | None:
        self._check_open()
        if not target.topic:
            raise InvalidTarget("a message needs a topic")
        waiter: _Waiter | None = None
        reply_q = ""
        if wait_for_reply:
            msg_id = _codec.new_id()
            reply_q = f"reply_{msg_id}"
            message["_msg_id"] = msg_id
            message["_reply_q"] = reply_q
            waiter = _Waiter()
            self.bus.wait_for_reply(reply_q, waiter)
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
            return self._await_reply(waiter, target, message, timeout, deadline)
        finally:
            if reply_q:
                with self.bus.lock:
                    self.bus.waiters.pop(reply_q, None)

    def _await_reply(
        self,
        waiter: _Waiter,
        target: Target,
        message: dict[str, Any],
        timeout: float,
        deadline: float,
    ) -> dict[str, Any]:
        left = deadline - time.monotonic()
        if not (left > 0 and waiter.event.wait(left)):
            waiter.event.set()  # a reply arriving now is late: drop it
            raise timeout_error(target, str(message.get("method")), timeout)
        if waiter.reply is None:  # its bus stopped first
            raise RequestLost(f"{self.broker_name} stopped while the call waited for its reply")
        return waiter.reply

    def listen(
        self, target: Target, callback: Callable[[IncomingMessage], None], prefetch: int
    ) -> Listener:
        self._check_open()
        if not target.topic:
            raise InvalidTarget("a server's target needs a topic")
        listener = _MemoryListener(self, target, callback)
        listener.start()
        return listener

    def close(self) -> None:
        self._closed = True
