"""The callers' side: connections a caller checks out of a pool, and drives itself
while it waits for its reply."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from podium.exceptions import MalformedMessage, TransportError

from .. import _codec
from .._retry import BrokerUnavailable
from . import amqp
from .amqp import (
    bounded,
    close_connection,
    consume_inline,
    declare_tolerantly,
    describe,
    publish_frames,
    run_until,
    send_now,
)
from .routing import REPLY_EXCHANGE, names, refused_destination

if TYPE_CHECKING:
    from .driver import RabbitDriver

LOG = logging.getLogger("podium.rpc._rabbit")

REPLY_TO = "amq.rabbitmq.reply-to"
CONFIRM_WINDOW = 256
# Callbacks set on the client's underlying channel (publisher confirms) do not
# end a blocking wait early: a wait for them polls in slices this long.
CONFIRM_POLL = 0.002
JSON = "application/json"


class Cast:
    __slots__ = ("body", "exchange", "key", "mandatory", "props")

    def __init__(
        self, exchange: str, key: str, body: bytes, props: amqp.Properties, mandatory: bool
    ) -> None:
        self.exchange = exchange
        self.key = key
        self.body = body
        self.props = props
        self.mandatory = mandatory


class _Slot:
    __slots__ = ("channel", "expired", "partial", "reply", "returned")

    def __init__(self, channel: amqp.Channel) -> None:
        self.channel = channel
        self.reply: dict[str, Any] | None = None
        self.partial: dict[str, Any] | None = None
        self.returned = False
        self.expired = False

    def expire(self) -> None:
        self.expired = True

    def settled(self) -> bool:
        return self.reply is not None or self.returned or self.expired or not self.channel.is_open


class Conn:
    """One connection with its channels; used by one thread at a time."""

    def __init__(self, driver: RabbitDriver, deadline: float) -> None:
        self.driver = driver
        self.connection = amqp.open_connection(driver.connection_parameters(deadline))
        try:
            with self.bounded_by(deadline):
                self._open(driver)
        except BaseException:
            self.close(grace=0)
            raise

    def _open(self, driver: RabbitDriver) -> None:
        self.pending: dict[str, _Slot] = {}
        self._call_props = amqp.Properties(
            content_type=JSON, content_encoding="utf-8", delivery_mode=1
        )
        self.declared: set[tuple[str, str]] = set()
        self._cast_ch: amqp.Channel | None = None
        self._cast_seq = 0
        self.unconfirmed: dict[int, Cast] = {}
        # The cast inside basic_publish: if its channel closes meanwhile, the
        # publish raises and the caller sends it again, not the orphans too.
        self._publishing: int | None = None
        self._probe_ch: amqp.Channel | None = None
        self.call_ch = self.connection.channel()
        # Replies and returns reach us from pika's frame handling (see run_until).
        amqp.on_return(self.call_ch, self._on_return)
        capabilities = amqp.server_capabilities(self.connection)
        if driver.reply_mode == "direct" and capabilities.get("direct_reply_to", True):
            consume_inline(self.call_ch, REPLY_TO, self._on_reply, auto_ack=True)
            self.reply_to = self._discover_reply_address()
        else:
            # oslo.messaging's layout: a reply queue named reply_<uuid>. Ours
            # is exclusive, so it lives and dies with this connection.
            self.reply_to = driver.routing.reply_queue()
            self.call_ch.queue_declare(self.reply_to, exclusive=True, auto_delete=True)
            if driver.routing.restricted:
                # Servers restricted per service reply through it, by this name.
                self.call_ch.queue_bind(self.reply_to, REPLY_EXCHANGE, routing_key=self.reply_to)
            consume_inline(self.call_ch, self.reply_to, self._on_reply, auto_ack=True)

    # RabbitMQ rewrites "amq.rabbitmq.reply-to" into this channel's own address
    # only in a message's reply_to property; an oslo.messaging server reads
    # the address from the body (_reply_q), so learn it once by sending
    # ourselves a message.
    def _discover_reply_address(self) -> str:
        ch = self.call_ch
        queue = ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
        try:
            ch.basic_publish("", queue, b"", amqp.Properties(reply_to=REPLY_TO))
            for _ in range(100):
                method, props, _body = ch.basic_get(queue, auto_ack=True)
                if method is not None:
                    address = props.reply_to
                    if isinstance(address, str) and address.startswith(REPLY_TO + "."):
                        return address
                    break
                time.sleep(0.001)
        finally:
            ch.queue_delete(queue)
        raise BrokerUnavailable("the broker did not assign a direct reply-to address")

    @property
    def usable(self) -> bool:
        return bool(self.connection.is_open and self.call_ch.is_open)

    def bounded_by(self, deadline: float) -> contextlib.AbstractContextManager[None]:
        return bounded(self.connection, deadline)

    def close(self, grace: float = 1.0) -> None:
        """Close, waiting at most ``grace`` seconds for the broker to agree."""
        if getattr(self, "unconfirmed", None):
            self.orphan_unconfirmed()
        close_connection(self.connection, grace)

    def _on_reply(self, _ch: Any, _method: Any, _props: amqp.Properties, body: bytes) -> None:
        try:
            reply = _codec.decode(body, self.driver.max_message_bytes)
        except MalformedMessage as exc:
            LOG.error("dropping undecodable reply: %s", exc)
            return
        slot = self.pending.get(str(reply.get("_msg_id")))
        if slot is None:
            LOG.warning(
                "dropping reply to message %s: its caller stopped waiting", reply.get("_msg_id")
            )
            return
        if not reply.get("ending", True):
            # Older oslo.messaging servers send the result, then an end marker.
            slot.partial = reply
            return
        if slot.partial is not None and reply.get("result") is None and not reply.get("failure"):
            reply = slot.partial
        slot.reply = reply

    def _on_return(self, _ch: Any, _method: Any, props: amqp.Properties, _body: bytes) -> None:
        slot = self.pending.get(str(props.correlation_id))
        if slot is not None:
            slot.returned = True

    def channel_for_casts(self) -> amqp.Channel:
        """The channel casts go out on, in publisher-confirm mode.

        Confirms are taken asynchronously (pika's blocking channel would wait
        for each one): a cast returns once written, stays in ``unconfirmed``
        until the broker confirms it, and is published again if the broker
        nacks it or the connection dies first (the server drops the duplicate
        by its unique id). ``CONFIRM_WINDOW`` bounds what may be in flight.
        """
        if self._cast_ch is None or not self._cast_ch.is_open:
            self.orphan_unconfirmed()
            ch = self.connection.channel()
            selected: list[bool] = []
            amqp.enable_confirms(ch, self._on_confirm, lambda _frame: selected.append(True))
            amqp.on_return(ch, self._on_cast_return)
            amqp.on_close(ch, self._on_cast_channel_closed)
            if not self._wait_for_confirms(lambda: bool(selected), 10):
                raise BrokerUnavailable("the broker did not enable publisher confirms")
            self._cast_ch = ch
            self._cast_seq = 0
        return self._cast_ch

    def publish_cast(self, ch: amqp.Channel, cast: Cast) -> None:
        # Tracked before it is written: pika reads what the broker sent in the
        # same turn of its loop as it writes, so on a loaded machine the
        # confirm of this very cast can arrive inside basic_publish.
        self._cast_seq += 1
        tag = self._cast_seq
        self.unconfirmed[tag] = cast
        self._publishing = tag
        try:
            ch.basic_publish(
                cast.exchange, cast.key, cast.body, cast.props, mandatory=cast.mandatory
            )
        except amqp.ChannelClosedByBroker as exc:
            self.unconfirmed.pop(tag, None)
            refused = refused_destination(exc.reply_text)
            if refused is not None and not names(refused, cast.exchange, cast.key):
                # Closed for a cast written before this one, which the broker
                # refused: this one was not, and goes again on a new channel.
                raise BrokerUnavailable(
                    f"the cast channel was closed for another cast ({exc.reply_text})"
                ) from exc
            raise
        except BaseException:
            # The caller retries a failed publish; as an orphan too, it would go twice.
            self.unconfirmed.pop(tag, None)
            raise
        finally:
            self._publishing = None
        if len(self.unconfirmed) >= CONFIRM_WINDOW and not self._wait_for_confirms(
            lambda: len(self.unconfirmed) < CONFIRM_WINDOW // 2, 30
        ):
            raise BrokerUnavailable("the broker confirms no casts")

    def _wait_for_confirms(self, done: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                return False
            self.connection.process_data_events(time_limit=CONFIRM_POLL)
        return True

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        tag = method.delivery_tag
        tags = [t for t in self.unconfirmed if t <= tag] if method.multiple else [tag]
        nacked = type(method).__name__ == "Nack"
        for t in tags:
            cast = self.unconfirmed.pop(t, None)
            if cast is not None and nacked:
                LOG.warning("broker nacked a cast to %s; sending it again", cast.key)
                self.driver.orphans.append(cast)

    def _on_cast_return(self, _ch: Any, method: Any, _props: Any, _body: bytes) -> None:
        LOG.error(
            "cast to %r dropped: nobody consumes it (%s)", method.routing_key, method.reply_text
        )

    def _on_cast_channel_closed(self, _ch: Any, reason: BaseException) -> None:
        """Drop the casts the broker refused (it closed the channel for them).

        Sent again they would be refused again, and close each new channel
        with them; the others go again as usual.
        """
        if not isinstance(reason, amqp.ChannelClosedByBroker):
            return
        refused = refused_destination(reason.reply_text)
        if refused is not None and reason.reply_code in (403, 404):
            for tag, cast in list(self.unconfirmed.items()):
                if names(refused, cast.exchange, cast.key):
                    del self.unconfirmed[tag]
                    LOG.error(
                        "cast to %r on exchange %r dropped: the broker refused it (%s)",
                        cast.key,
                        cast.exchange,
                        reason.reply_text,
                    )
        # The broker discards what reaches a channel it closed: the casts
        # written after the one it refused are never confirmed, but sent again
        # (the one being written by its own caller).
        self.orphan_unconfirmed(keep=self._publishing)

    def orphan_unconfirmed(self, keep: int | None = None) -> None:
        """Hand casts the broker never confirmed back to the driver, to resend (but ``keep``)."""
        kept = {keep: self.unconfirmed.pop(keep)} if keep in self.unconfirmed else {}
        if self.unconfirmed:
            if not self.driver.pool.closing:
                LOG.warning("%d unconfirmed casts will be sent again", len(self.unconfirmed))
            self.driver.orphans.extend(self.unconfirmed.values())
            self.unconfirmed.clear()
        self.unconfirmed.update(kept)

    def flush_casts(self, timeout: float) -> None:
        """Wait until the broker confirmed every cast, sending again what a closed channel lost."""
        deadline = time.monotonic() + timeout
        while True:
            self._wait_for_confirms(lambda: not self.unconfirmed, deadline - time.monotonic())
            if not self.driver.orphans or time.monotonic() >= deadline:
                return
            self.driver._resend_orphans(self)

    def consumer_count(self, queue: str) -> int | None:
        """Consumers on ``queue``; ``None`` when it does not exist."""
        if self._probe_ch is None or not self._probe_ch.is_open:
            self._probe_ch = self.connection.channel()
        try:
            frame = self._probe_ch.queue_declare(queue, passive=True)
        except amqp.ChannelClosedByBroker as exc:
            self._probe_ch = None
            if exc.reply_code == 404:
                return None
            raise
        count: int = frame.method.consumer_count
        return count

    def exchange_exists(self, name: str) -> bool:
        """Whether the exchange ``name`` exists (asked without the right to create it)."""
        if self._probe_ch is None or not self._probe_ch.is_open:
            self._probe_ch = self.connection.channel()
        try:
            self._probe_ch.exchange_declare(name, passive=True)
        except amqp.ChannelClosedByBroker as exc:
            self._probe_ch = None
            if exc.reply_code == 404:
                return False
            raise
        return True

    def declare(self, ch: amqp.Channel, kind: str, name: str, **how: Any) -> amqp.Channel:
        """:func:`declare_tolerantly` on the cast channel, once per connection.

        An account restricted per service (``routing=exchange``) declares no
        exchange another service uses: it uses it as it exists.
        """
        key = (kind, name)
        if key in self.declared:
            return ch
        if kind == "exchange" and self.driver.routing.restricted:
            ch = amqp.declare_existing(ch, name, self.channel_for_casts, **how)
        else:
            ch = declare_tolerantly(ch, kind, name, self.channel_for_casts, **how)
        self.declared.add(key)
        return ch

    def call(self, exchange: str, key: str, body: bytes, msg_id: str, timeout: float) -> _Slot:
        """Publish a request for ``key``'s queue and wait for its reply.

        It goes where the driver's routing says: by default straight to the
        queue, on the default exchange (see :class:`.routing.Routing`).
        """
        exchange, key = self.driver.routing.request(exchange, key)
        slot = _Slot(self.call_ch)
        self.pending[msg_id] = slot
        try:
            # pika encodes the properties as it publishes: one object per
            # connection serves every call.
            props = self._call_props
            props.correlation_id = msg_id
            # An unanswered request must not run long after its caller gave up.
            props.expiration = str(max(1, int(timeout * 1000)))
            send_now(
                self.connection,
                publish_frames(self.call_ch, exchange, key, body, props, mandatory=True),
            )
            with amqp.call_later(self.connection, timeout, slot.expire):
                # run_until also returns for another thread's callback.
                while not slot.settled():
                    run_until(self.connection, slot.settled)
            if slot.reply is None and not slot.returned and not self.call_ch.is_open:
                refusal = amqp.closed_by_broker(self.call_ch)
                if refusal is not None:
                    raise refusal  # an ACCESS_REFUSED says which topic
                raise BrokerUnavailable("reply channel closed by the broker")
            return slot
        finally:
            self.pending.pop(msg_id, None)


class Pool:
    """Idle connections, most recently used first, kept alive by a keeper thread."""

    def __init__(self, driver: RabbitDriver, max_idle: int = 64) -> None:
        self.driver = driver
        self.max_idle = max_idle
        self._idle: list[Conn] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.final = False  # set once close() has flushed the idle connections
        self._keeper: threading.Thread | None = None

    @property
    def closing(self) -> bool:
        return self._closed.is_set()

    def get(self, deadline: float) -> Conn:
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if conn.usable:
                    return conn
                conn.close()
            if self._closed.is_set():
                raise TransportError("transport is closed")
            if self._keeper is None:
                self._keeper = threading.Thread(
                    target=self._keep, name="podium-rabbit-keeper", daemon=True
                )
                self._keeper.start()
        return Conn(self.driver, deadline)

    def put(self, conn: Conn) -> None:
        with self._lock:
            if conn.usable and not self.final and len(self._idle) < self.max_idle:
                self._idle.append(conn)
                return
        conn.close()

    def _keep(self) -> None:
        interval = max(1.0, self.driver.heartbeat / 4)
        while not self._closed.wait(interval):
            with self._lock:
                batch, self._idle = self._idle, []
            for conn in batch:
                try:
                    conn.connection.process_data_events(0)
                except Exception as exc:
                    LOG.info("idle connection to RabbitMQ lost: %s", describe(exc))
                    conn.close()
                    continue
                self.put(conn)

    def discard_idle(self, grace: float = 1.0) -> None:
        with self._lock:
            batch, self._idle = self._idle, []
        for conn in batch:
            conn.close(grace)

    def close(self) -> None:
        self._closed.set()
        keeper = self._keeper
        if keeper is not None and keeper is not threading.current_thread():
            keeper.join(10)  # it may hold idle connections (and their unconfirmed casts)
        with self._lock:
            batch = list(self._idle)
        for conn in batch:
            # Let the broker confirm what this process cast before it goes.
            with contextlib.suppress(Exception):
                self.driver._resend_orphans(conn)
                conn.flush_casts(5)
            if not conn.usable:
                conn.orphan_unconfirmed()
        if self.driver.orphans:
            # No idle connection could take them (a broker restart took them
            # all): one more connection, for them alone.
            with contextlib.suppress(Exception):
                spare = Conn(self.driver, time.monotonic() + 5)
                try:
                    self.driver._resend_orphans(spare)
                    spare.flush_casts(5)
                finally:
                    spare.close()
        with self._lock:
            self.final = True
        self.discard_idle()
        if self.driver.orphans:
            LOG.error("%d casts were never confirmed by the broker", len(self.driver.orphans))
