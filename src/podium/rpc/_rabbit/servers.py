"""The servers' side: worker connections that receive, run, reply and acknowledge."""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
from collections import deque
from typing import TYPE_CHECKING, Any

from podium.exceptions import MalformedMessage

from .. import _codec
from .._retry import BrokerUnavailable, Retrying
from .._transport import DEFAULT_EXCHANGE
from . import amqp
from .amqp import (
    RECOVERABLE,
    ack_frame,
    close_connection,
    consume_inline,
    declare_existing,
    declare_tolerantly,
    describe,
    publish_frames,
    run_until,
    send_now,
)
from .callers import JSON
from .incoming import ATTEMPTS_HEADER, QUEUE_HEADER, REASON_HEADER, Delivery, RabbitIncoming
from .routing import unanswerable

if TYPE_CHECKING:
    from .listener import RabbitListener

LOG = logging.getLogger("podium.rpc._rabbit")


class Worker:
    """One consumer connection, and the thread that drives it and runs the handlers.

    The thread that receives a request also runs it, replies on the same
    connection and acknowledges it: no hand-off between threads per request.
    The listener's keeper services the connection's heartbeats while a long
    handler runs (the connection lock makes that safe).
    """

    def __init__(self, listener: RabbitListener, index: int) -> None:
        self.listener = listener
        self.index = index
        self.driver = listener.driver
        self.lock = threading.Lock()
        self.connection: amqp.Connection | None = None
        self.channel: amqp.Channel | None = None
        # routing=exchange: what the worker publishes goes on a channel of its
        # own, so that a refusal by the broker cannot take the acks with it.
        self.out_channel: amqp.Channel | None = None
        self.keys: list[str] = []
        self.generation = 0
        self.backlog: deque[Delivery] = deque()
        self.consumer_tags: list[str] = []
        self.cancelled = ""  # a queue whose consumer the broker cancelled
        self.busy = False
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(
            target=self._run,
            name=f"podium-rabbit-{listener.target.topic}-{index}",
            daemon=True,
        )

    # -- connection (called with self.lock held) ---------------------------

    def _declare(self, ch: amqp.Channel, kind: str, name: str, **how: Any) -> amqp.Channel:
        connection = self.connection
        assert connection is not None
        return declare_tolerantly(ch, kind, name, connection.channel, **how)

    def _setup(self) -> None:
        self.connection = amqp.open_connection(self.driver.connection_parameters())
        ch, keys = self._declare_layout(self.connection.channel())
        self.keys = keys
        if self.driver.routing.restricted:
            self.out_channel = self._open_out_channel()
        fanout_q = self.listener.fanout_queue
        # One unacknowledged request per worker: the broker hands the next one
        # to a free worker (of this server or another).
        ch.basic_qos(prefetch_count=1, global_qos=True)
        self.generation += 1
        generation = self.generation
        backlog = self.backlog
        backlog.clear()

        # Tags of our choosing, so a delivery names its queue from the start.
        prefix = f"podium-{self.listener.tag_prefix}-{self.index}-{generation}"
        queues = {f"{prefix}-{i}": q for i, q in enumerate([*keys, fanout_q])}

        def on_message(_ch: Any, method: Any, props: Any, body: bytes) -> None:
            backlog.append(
                Delivery(
                    generation,
                    method.delivery_tag,
                    body,
                    queues.get(method.consumer_tag, method.routing_key),
                    props,
                )
            )

        self.channel = ch
        # Consumer priorities: the broker gives a request to the first free
        # worker in a fixed order, so a lightly loaded server keeps using the
        # same (warm) few instead of cycling through all of them. The first
        # worker has the default priority 0, so it still shares the load
        # evenly with other servers' first workers, oslo.messaging's included.
        priority = {"x-priority": -self.index}
        self.consumer_tags = [
            consume_inline(ch, q, on_message, arguments=priority, consumer_tag=tag)
            for tag, q in queues.items()
        ]
        self.cancelled = ""

        def on_cancel(frame: Any) -> None:
            # The broker cancels a consumer whose queue was deleted: declare
            # everything again on a new connection rather than go deaf.
            queue = queues.get(frame.method.consumer_tag)
            if queue is not None:
                self.cancelled = queue

        amqp.on_cancel(ch, on_cancel)

    def _declare_layout(self, ch: amqp.Channel) -> tuple[amqp.Channel, list[str]]:
        """Declare the exchanges and queues of the listener's target; its queue names."""
        target = self.listener.target
        exchange = target.exchange or DEFAULT_EXCHANGE
        topic = str(target.topic)
        restricted = self.driver.routing.restricted
        if restricted:
            assert self.connection is not None
            ch = declare_existing(
                ch, exchange, self.connection.channel, exchange_type="topic", durable=True
            )
        else:
            ch = self._declare(ch, "exchange", exchange, exchange_type="topic", durable=True)
        keys = [topic] + ([f"{topic}.{target.server}"] if target.server else [])
        for key in keys:
            ch = self._declare(ch, "queue", key, durable=True)
            ch.queue_bind(key, exchange, routing_key=key)
        fanout = f"{topic}_fanout"
        ch = self._declare(
            ch, "exchange", fanout, exchange_type="fanout", durable=False, auto_delete=True
        )
        # Shared by this server's workers, gone with the last of them.
        fanout_q = self.listener.fanout_queue
        ch.queue_declare(fanout_q, auto_delete=True)
        ch.queue_bind(fanout_q, fanout, routing_key=topic)
        dead = self.listener.dead_queue
        ch = self._declare(ch, "queue", dead, durable=True)
        if restricted:
            # Set aside through the exchange: the default one is out of bounds.
            ch.queue_bind(dead, exchange, routing_key=dead)
        return ch, keys

    def _drop(self) -> None:
        conn, self.connection, self.channel = self.connection, None, None
        self.out_channel = None
        self.consumer_tags = []
        if conn is not None:
            close_connection(conn, grace=1.0)

    # -- the loop ----------------------------------------------------------

    def _run(self) -> None:
        listener = self.listener
        self.retrying = Retrying(
            self.driver,
            f"could not start consuming from {self.driver.broker_name}",
            retry=self.driver.connect_retries,
            wait=listener.closed.wait,
            report=listener.outage.lost,
            recoverable=self._recoverable,
        )
        try:
            self.retrying.run(self._serve)
        except Exception as exc:  # its start failed: listener.start() says why
            self.error = exc
            self.ready.set()
        finally:
            with self.lock:
                self._drop()

    def _recoverable(self, exc: BaseException) -> bool:
        # Once it ran, a server retries whatever cut it off, for as long as it runs.
        return self.ready.is_set() or self.driver.is_recoverable(exc)

    def _serve(self) -> None:
        """Connect, then consume until the listener closes; raise what cut it off."""
        listener = self.listener
        if listener.closed.is_set():
            return
        try:
            with self.lock:
                self._setup()
            self.retrying.reset(retry=None)
            listener.outage.back()
            self.ready.set()
            self._consume()
        except Exception:
            with self.lock:
                self._drop()
            if not listener.closed.is_set():
                raise

    def _consume(self) -> None:
        listener = self.listener
        while not listener.closed.is_set():
            with self.lock:
                assert self.connection is not None and self.channel is not None
                channel = self.channel
                if not listener.consuming and self.consumer_tags:
                    for tag in self.consumer_tags:
                        channel.basic_cancel(tag)
                    self.consumer_tags = []
                if not self.backlog:
                    # Returns on a delivery or a wake() (stop, close).
                    run_until(self.connection, self._has_work)
                if channel.is_closed:
                    raise BrokerUnavailable(
                        f"the broker closed the channel of {listener.target.topic!r}'s consumers"
                    )
                if self.cancelled:
                    raise BrokerUnavailable(
                        f"the broker cancelled the consumer of queue {self.cancelled!r}"
                        " (was it deleted?)"
                    )
            while self.backlog:
                self._handle(self.backlog.popleft())

    def _has_work(self) -> bool:
        return (
            bool(self.backlog)
            or bool(self.cancelled)
            or self.channel is None
            or self.channel.is_closed
        )

    def _handle(self, delivery: Delivery) -> None:
        if not self.listener.consuming:
            self.settle(delivery, ack=False)
            return
        try:
            message = _codec.decode(delivery.body, self.driver.max_message_bytes)
        except MalformedMessage as exc:
            self.dead_letter(delivery, f"malformed message: {exc}")
            return
        incoming = RabbitIncoming(self, delivery, message)
        self.busy = True
        try:
            self.listener.callback(incoming)
        except Exception as exc:
            LOG.exception("could not process a message")
            incoming.fail(f"{type(exc).__name__}: {exc}")
        finally:
            self.busy = False
        # Whatever the handler did, the delivery ends here: left unsettled it
        # would hold this worker's only prefetch slot for ever.
        if not incoming.settled:
            incoming.fail("the handler neither acknowledged nor rejected it")

    # -- called by the handler, on this worker's thread ----------------------

    def settle(self, delivery: Delivery, ack: bool) -> None:
        with self.lock:
            ch = self.channel
            if delivery.generation != self.generation or ch is None or not ch.is_open:
                return  # that channel died: the broker has requeued the message
            try:
                if ack:
                    ch.basic_ack(delivery.tag)
                else:
                    ch.basic_reject(delivery.tag, requeue=True)
            except RECOVERABLE as exc:
                LOG.info("could not settle message %s: %s", delivery.tag, describe(exc))

    def fail(self, delivery: Delivery, reason: str) -> None:
        """Send the request to the back of its queue, counting attempts in the message.

        A plain requeue would put it back at the head, for this same worker at
        once, and would keep no count across restarts of the server.
        """
        attempts = delivery.attempts + 1
        if attempts >= self.driver.max_attempts or self._route(delivery.queue) is None:
            # (No route back: a fanout queue is reached only through its
            # exchange, which would hand the request to every server again.)
            self.dead_letter(delivery, reason, attempts)
            return
        LOG.warning(
            "handling a message from %s failed (attempt %d of %d): %s",
            delivery.queue,
            attempts,
            self.driver.max_attempts,
            reason,
        )
        headers = {**delivery.headers, ATTEMPTS_HEADER: attempts}
        self._forward(delivery, delivery.queue, headers, keep=True)

    def dead_letter(self, delivery: Delivery, reason: str, attempts: int | None = None) -> None:
        """Set the request aside in ``<topic>.dead``, the reason in its headers; log it once."""
        attempts = delivery.attempts if attempts is None else attempts
        dead = self.listener.dead_queue
        LOG.error("dead-lettering a message from %s to %s: %s", delivery.queue, dead, reason)
        headers = {
            **delivery.headers,
            ATTEMPTS_HEADER: attempts,
            REASON_HEADER: reason[:1000],
            QUEUE_HEADER: delivery.queue,
        }
        self._forward(delivery, dead, headers, keep=False)

    def _forward(
        self, delivery: Delivery, queue: str, headers: dict[str, Any], *, keep: bool
    ) -> None:
        # A request sent again keeps its properties, a call's expiration above
        # all: it must never run long after its caller gave up. One set aside
        # is kept until someone looks at it.
        props = copy.copy(delivery.props)
        props.headers = headers
        if not keep:
            props.expiration = None
            props.delivery_mode = 2
        destination = self._route(queue)
        assert destination is not None  # fail() sets aside what has no route back
        self._write(delivery, [(*destination, delivery.body, props)])

    def _route(self, queue: str) -> tuple[str, str] | None:
        """Where a request sent again to this server's ``queue`` is published."""
        if not self.driver.routing.restricted:
            return ("", queue)
        exchange = self.listener.target.exchange or DEFAULT_EXCHANGE
        if queue == self.listener.dead_queue:
            return (exchange, queue)
        if queue in self.keys:
            # To this server's own queue: a restricted account may not send to
            # the topic's shared one, which its peers (other hosts) consume.
            return (exchange, self.keys[-1])
        return None

    def finish(self, delivery: Delivery, reply: tuple[str, str, bytes] | None) -> None:
        """Publish the reply and acknowledge the request, in one write."""
        publishes = []
        if reply is not None:
            reply_q, msg_id, body = reply
            destination = self.driver.routing.reply(reply_q)
            if destination is None:
                LOG.error("%s", unanswerable(reply_q))
                reply = None
            else:
                props = amqp.Properties(
                    content_type=JSON, content_encoding="utf-8", correlation_id=msg_id
                )
                publishes.append((*destination, body, props))
        if not self._write(delivery, publishes) and reply is not None:
            # The channel died: the broker requeues the request; still answer it.
            self.driver.publish_reply(*reply)

    def _write(
        self, delivery: Delivery, publishes: list[tuple[str, str, bytes, amqp.Properties]]
    ) -> bool:
        """Publish (exchange, routing key, body, properties) and acknowledge ``delivery``,
        in one write.

        False when the channel that took the delivery is gone (the broker
        gives the request to a consumer again).
        """
        with self.lock:
            ch = self.channel
            if delivery.generation != self.generation or ch is None or not ch.is_open:
                return False
            out = self._out_channel(ch)
            frames: list[bytes] = []
            for exchange, key, body, props in publishes:
                try:
                    # Through an exchange, a message can miss its queue: say so.
                    frames += publish_frames(
                        out, exchange, key, body, props, mandatory=out is not ch
                    )
                except Exception as exc:
                    # Never leave the delivery unacknowledged for want of a
                    # message built from what it carried.
                    LOG.error("could not publish to %.80r: %s", key, exc)
            frames.append(ack_frame(ch, delivery.tag))
            connection = self.connection
            assert connection is not None
            try:
                send_now(connection, frames)
                amqp.flush_unsent(connection)
                return True
            except RECOVERABLE as exc:
                LOG.info("could not finish message %s: %s", delivery.tag, describe(exc))
                return False

    def _out_channel(self, ch: amqp.Channel) -> amqp.Channel:
        """The channel to publish on (called with the lock held)."""
        out = self.out_channel
        if out is None:
            return ch
        if not out.is_open:
            refusal = amqp.closed_by_broker(out)
            LOG.error(
                "server on %s: the broker refused a message this server sent (%s)",
                self.listener.target.topic,
                describe(refusal) if refusal is not None else "channel closed",
            )
            out = self.out_channel = self._open_out_channel()
        return out

    def _open_out_channel(self) -> amqp.Channel:
        assert self.connection is not None
        out = self.connection.channel()
        amqp.on_return(out, self._on_return)
        return out

    def _on_return(self, _ch: Any, method: Any, _props: Any, _body: bytes) -> None:
        LOG.error(
            "server on %s: nothing took the message it sent to %r (%s): a caller gone, or one "
            "whose reply queue is not bound to %s (a caller without routing=exchange?)",
            self.listener.target.topic,
            method.routing_key,
            method.reply_text,
            method.exchange,
        )

    def wake(self) -> None:
        conn = self.connection
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.add_callback_threadsafe(lambda: None)

    def keep_alive(self) -> None:
        """Service heartbeats while a long handler holds this worker."""
        if not self.busy or not self.lock.acquire(blocking=False):
            return
        try:
            if self.connection is not None and self.connection.is_open:
                self.connection.process_data_events(0)
        except Exception as exc:
            LOG.info("busy worker's connection failed: %s", exc)
        finally:
            self.lock.release()
