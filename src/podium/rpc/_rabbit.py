"""``rabbit://``: RabbitMQ through pika, in oslo.messaging's queue layout.

Layout (the same names oslo.messaging uses, so both can share a broker):

- exchange ``openstack`` (topic, durable) with durable queues ``<topic>`` and
  ``<topic>.<server>`` bound by those routing keys;
- exchange ``<topic>_fanout`` (fanout, auto-delete) with one exclusive queue
  per server;
- replies: the caller's RabbitMQ direct reply-to address travels as
  ``_reply_q``; a server (podium or oslo) publishes the reply on the default
  exchange with that routing key. Nothing to declare, expire or lose.

Threads: pika connections are not thread-safe, so each one is used by one
thread at a time. Callers check a connection out of a pool and drive its I/O
themselves while waiting for their reply (no hand-off between threads on
the hot path); a keeper thread services idle pooled connections so their
heartbeats never starve. Each server worker owns a connection and a thread
that receives a request, runs it, and replies and acknowledges in one write.

Hot path: requests and replies are marshalled with pika's codec and written
in one send (:func:`send_now`); deliveries reach their consumer from pika's
frame handling (:func:`run_until`), not through the blocking channel's queue.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import random
import re
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pika
import pika.exceptions as pex
from pika import frame, spec
from pika.adapters.blocking_connection import BlockingChannel
from pika.adapters.utils.connection_workflow import (
    AMQPConnectionWorkflowFailed,
    AMQPConnectorException,
)
from pika.adapters.utils.io_services_utils import _AsyncPlaintextTransport as _PlainTransport

from podium.exceptions import InvalidTarget, MalformedMessage, MessagingError, TransportError

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

REPLY_TO = "amq.rabbitmq.reply-to"
_PROBE_TTL = 2.0
_CONFIRM_WINDOW = 256
# Callbacks set on pika's underlying channel (publisher confirms) do not end a
# BlockingConnection wait early: a wait for them polls in slices this long.
_CONFIRM_POLL = 0.002
_JSON = "application/json"
_CONNECT_TIMEOUT = 15.0
# A call's own timer ends its wait for the reply at its deadline; the
# connection is cut only if a broker operation is still stuck a little later.
_DEADLINE_GRACE = 0.25
# Headers of a request sent again after its handling failed, or set aside.
ATTEMPTS_HEADER = "x-podium-attempts"
REASON_HEADER = "x-podium-reason"
QUEUE_HEADER = "x-podium-queue"


# Errors after which a connection is presumed broken and another is tried.
def refused_by_broker(exc: BaseException) -> bool:
    """Bad credentials, a vhost we may not use, a certificate that does not verify:
    retrying cannot help."""
    if isinstance(
        exc,
        (pex.ProbableAuthenticationError, pex.ProbableAccessDeniedError, pex.AuthenticationError),
    ):
        return True
    if _certificate_refused(_root_cause(exc)):
        return True
    return isinstance(exc, pex.ConnectionClosedByBroker) and exc.reply_code in (403, 530)


def _certificate_refused(cause: BaseException) -> bool:
    """The broker's certificate refused by us, or ours (or its absence) by the broker."""
    return isinstance(cause, ssl.SSLCertVerificationError) or _tls_alert(cause) is not None


def _tls_alert(cause: BaseException) -> str | None:
    # Under TLS 1.3 the broker's refusal of a client certificate arrives after
    # the handshake, and pika hands it on only as the text of a lost stream.
    found = _CERTIFICATE_ALERT.search(str(cause))
    return found.group(1) if found else None


_CERTIFICATE_ALERT = re.compile(r"\[SSL: (\w*ALERT\w*CERTIFICATE\w*)\]")


def _root_cause(exc: BaseException) -> BaseException:
    cause = exc
    for _ in range(4):
        # pika keeps the cause in args, in .exception (one connector), or in
        # .exceptions (each host of a failover list: the last one tried).
        tried = getattr(cause, "exceptions", None) or [None]
        inner = next(
            (
                a
                for a in (*cause.args, getattr(cause, "exception", None), tried[-1])
                if isinstance(a, BaseException)
            ),
            None,
        )
        if inner is None:
            break
        cause = inner
    return cause


def describe(exc: BaseException) -> str:
    """A one-line reason for a connection failure.

    pika wraps the cause (a refused or timed-out socket) in exceptions whose
    str() is empty: "could not start consuming: " tells an operator nothing.
    """
    cause = _root_cause(exc)
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"TLS: the broker's certificate does not verify: {cause.verify_message or cause}"
    alert = _tls_alert(cause)
    if alert is not None:
        return f"TLS: the broker refused this client's certificate (or its absence): {alert}"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    if isinstance(cause, pex.ConnectionClosedByBroker):
        return f"closed by the broker: {cause.reply_code} {cause.reply_text}"
    return str(cause) or str(exc) or type(exc).__name__


def publish_frames(
    channel: BlockingChannel,
    exchange: str,
    key: str,
    body: bytes,
    props: pika.BasicProperties,
    *,
    mandatory: bool = False,
) -> list[bytes]:
    """A ``Basic.Publish`` marshalled as pika's channel would, for :func:`send_now`.

    Only for channels not in publisher-confirm mode (pika counts delivery
    tags for those as it publishes).
    """
    if not channel.is_open:
        raise pex.ChannelWrongStateError("Channel is closed.")
    number = channel.channel_number
    publish = spec.Basic.Publish(exchange=exchange, routing_key=key, mandatory=mandatory)
    frames = [
        frame.Method(number, publish).marshal(),
        frame.Header(number, len(body), props).marshal(),
    ]
    step = channel.connection._impl._body_max_length
    frames.extend(
        frame.Body(number, body[i : i + step]).marshal() for i in range(0, len(body), step)
    )
    return frames


def ack_frame(channel: BlockingChannel, delivery_tag: int) -> bytes:
    ack = spec.Basic.Ack(delivery_tag=delivery_tag)
    marshalled: bytes = frame.Method(channel.channel_number, ack).marshal()
    return marshalled


def send_now(connection: pika.BlockingConnection, frames: list[bytes]) -> None:
    """Write ``frames`` to the broker now, in one send().

    pika sends every frame with a send() of its own (a message is three:
    method, header, body; a reply with its ack four), and only once its loop
    has polled the socket for writability, turning the watch for it on and
    off around every message; the broker wakes up for each segment. On a
    call's path that is the larger part of pika's cost. What the socket does
    not take, or anything when frames are already waiting in pika's queue (or
    on TLS), goes through pika's queue and loop as usual, in order.
    """
    impl = connection._impl
    data = b"".join(frames)
    impl.bytes_sent += len(data)
    impl.frames_sent += len(frames)
    transport = impl._transport
    if (
        isinstance(transport, _PlainTransport)
        and not transport._tx_buffers
        and transport._state == transport._STATE_ACTIVE
    ):
        try:
            sent = transport._sigint_safe_send(transport._sock, data)
        except OSError:
            sent = 0  # a full buffer or a failing socket: pika's own write handles both
        data = data[sent:]
        if not data:
            return
    if transport is None:
        raise pex.ConnectionWrongStateError("Connection is closed.")
    impl._adapter_emit_data(data)


def consume_inline(
    channel: BlockingChannel, queue: str, callback: Callable[..., None], **how: Any
) -> str:
    """``basic_consume`` whose deliveries reach ``callback`` from pika's frame handling.

    Drive the connection with :func:`run_until` then; the blocking channel's
    ``process_data_events`` would not return for them.
    """
    tag: str = channel.basic_consume(queue, callback, **how)
    channel._impl._consumers[tag] = callback
    # What arrived before the swap waits in the blocking channel: hand it over.
    channel.connection.process_data_events(0)
    return tag


def run_until(connection: pika.BlockingConnection, done: Callable[[], bool]) -> None:
    """Drive ``connection``'s I/O (heartbeats included) until ``done()``.

    Also returns when another thread's ``add_callback_threadsafe`` is due,
    after running it. Consumers on the hot path are handed their deliveries
    by pika's channel underneath the blocking one (``channel._impl``), inside
    its frame handling: the blocking channel would queue each delivery as an
    event and dispatch it later, a good part of pika's cost per message, and
    ``process_data_events`` only returns for events it queued itself.
    """
    connection._flush_output(done, lambda: bool(connection._ready_events))
    if connection._ready_events:
        connection._dispatch_connection_events()


def declare_tolerantly(
    ch: BlockingChannel,
    kind: str,
    name: str,
    reopen: Callable[[], BlockingChannel],
    **how: Any,
) -> BlockingChannel:
    """Declare an exchange or queue, tolerant of one a peer declared differently.

    oslo.messaging declares with ``durable=False`` unless configured for
    durable queues; RabbitMQ then refuses our durable declare (406) and closes
    the channel. The entity exists and routes, so use it as it is, on the
    channel ``reopen`` gives.
    """
    try:
        if kind == "exchange":
            ch.exchange_declare(name, **how)
        else:
            ch.queue_declare(name, **how)
    except pex.ChannelClosedByBroker as exc:
        if exc.reply_code != 406:
            raise
        LOG.warning("%s %r exists with other settings (%s); using it", kind, name, exc)
        ch = reopen()
    return ch


@contextmanager
def bounded(connection: pika.BlockingConnection, deadline: float) -> Iterator[None]:
    """Cut ``connection`` if the broker operations inside are not done by ``deadline``.

    pika's blocking operations (opening a channel, a passive declare, waiting
    for a confirm) have no timeout of their own: with a frozen broker they
    wait until heartbeats fail, minutes later. Cutting the stream makes the
    one waiting raise (a StreamLostError) at once.
    """
    impl = connection._impl

    def cut() -> None:
        if impl.is_open or impl.is_opening:
            impl._terminate_stream(pex.StreamLostError("the operation's deadline passed"))

    timer = impl._adapter_call_later(max(0.0, deadline - time.monotonic()), cut)
    try:
        yield
    finally:
        impl._adapter_remove_timeout(timer)


def close_connection(connection: pika.BlockingConnection, grace: float) -> None:
    """Close ``connection`` and free its sockets, waiting at most ``grace`` seconds.

    pika frees a connection's loop (a socket pair of its own) only once it
    has seen the close through: one already closing (its stream cut, its
    heartbeat missed) must still be driven until it is closed, or it leaks.
    """
    if connection.is_closed:
        _free_loop(connection)
        return
    try:
        with bounded(connection, time.monotonic() + grace):
            if connection.is_open:
                connection.close()
            elif not connection.is_closed:
                connection.process_data_events(time_limit=grace)
    except Exception:  # closing a broken connection may fail in many ways
        pass
    if connection.is_closed:
        _free_loop(connection)
        return
    # Not seen through within the grace (the deadline cut above acts only on
    # an open connection; this one was already closing, its broker gone): cut
    # its stream here, let pika see that once, and free its loop's socket pair
    # even if it still does not call the connection closed.
    with contextlib.suppress(Exception):
        connection._impl._terminate_stream(pex.StreamLostError("closed after the grace period"))
        connection.process_data_events(time_limit=0)
    if connection.is_closed:
        _free_loop(connection)
    else:
        with contextlib.suppress(Exception):
            connection._cleanup()


def _free_loop(connection: pika.BlockingConnection) -> None:
    """Free the loop of a closed connection unless pika already has.

    pika frees it when its flush sees the close; a close it saw elsewhere (a
    callback that raised in the same poll, the stream cut from outside) makes
    every later flush refuse at once, before freeing anything. A close seen
    and not yet freed is one whose result pika still holds.
    """
    if connection._closed_result.ready:
        with contextlib.suppress(Exception):
            connection._cleanup()


RECOVERABLE: tuple[type[Exception], ...] = (
    pex.AMQPConnectionError,
    # What a failed connection attempt raises (a stack timeout among them);
    # not AMQPConnectionErrors, they would otherwise leave podium raw.
    AMQPConnectorException,
    AMQPConnectionWorkflowFailed,
    pex.ChannelWrongStateError,
    pex.ConnectionWrongStateError,
    ConnectionError,
    OSError,
)


_RETRYABLE: tuple[type[Exception], ...] = (TransportError, *RECOVERABLE)


class _Cast:
    __slots__ = ("body", "exchange", "key", "mandatory", "props")

    def __init__(
        self, exchange: str, key: str, body: bytes, props: pika.BasicProperties, mandatory: bool
    ) -> None:
        self.exchange = exchange
        self.key = key
        self.body = body
        self.props = props
        self.mandatory = mandatory


class _Slot:
    __slots__ = ("channel", "expired", "partial", "reply", "returned")

    def __init__(self, channel: BlockingChannel) -> None:
        self.channel = channel
        self.reply: dict[str, Any] | None = None
        self.partial: dict[str, Any] | None = None
        self.returned = False
        self.expired = False

    def expire(self) -> None:
        self.expired = True

    def settled(self) -> bool:
        return self.reply is not None or self.returned or self.expired or not self.channel.is_open


class _Conn:
    """One connection with its channels; used by one thread at a time."""

    def __init__(self, driver: RabbitDriver, deadline: float) -> None:
        self.driver = driver
        self.connection = pika.BlockingConnection(driver.connection_parameters(deadline))
        try:
            with self.bounded_by(deadline):
                self._open(driver)
        except BaseException:
            self.close(grace=0)
            raise

    def _open(self, driver: RabbitDriver) -> None:
        self.pending: dict[str, _Slot] = {}
        self._call_props = pika.BasicProperties(
            content_type=_JSON, content_encoding="utf-8", delivery_mode=1
        )
        self.declared: set[tuple[str, str]] = set()
        self._cast_ch: BlockingChannel | None = None
        self._cast_seq = 0
        self.unconfirmed: dict[int, _Cast] = {}
        self._probe_ch: BlockingChannel | None = None
        self.call_ch = self.connection.channel()
        # Replies and returns reach us from pika's frame handling (see run_until).
        self.call_ch._impl.add_on_return_callback(self._on_return)
        capabilities = getattr(self.connection._impl, "server_capabilities", None) or {}
        if driver.reply_mode == "direct" and capabilities.get("direct_reply_to", True):
            consume_inline(self.call_ch, REPLY_TO, self._on_reply, auto_ack=True)
            self.reply_to = self._discover_reply_address()
        else:
            # oslo.messaging's layout: a reply queue named reply_<uuid>. Ours
            # is exclusive, so it lives and dies with this connection.
            self.reply_to = f"reply_{_codec.new_id()}"
            self.call_ch.queue_declare(self.reply_to, exclusive=True, auto_delete=True)
            consume_inline(self.call_ch, self.reply_to, self._on_reply, auto_ack=True)

    # RabbitMQ rewrites "amq.rabbitmq.reply-to" into this channel's own address
    # only in a message's reply_to property; an oslo.messaging server reads
    # the address from the body (_reply_q), so learn it once by sending
    # ourselves a message.
    def _discover_reply_address(self) -> str:
        ch = self.call_ch
        queue = ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
        try:
            ch.basic_publish("", queue, b"", pika.BasicProperties(reply_to=REPLY_TO))
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
        raise TransportError("the broker did not assign a direct reply-to address")

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

    def _on_reply(self, _ch: Any, _method: Any, _props: pika.BasicProperties, body: bytes) -> None:
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

    def _on_return(self, _ch: Any, _method: Any, props: pika.BasicProperties, _body: bytes) -> None:
        slot = self.pending.get(str(props.correlation_id))
        if slot is not None:
            slot.returned = True

    def channel_for_casts(self) -> BlockingChannel:
        """The channel casts go out on, in publisher-confirm mode.

        Confirms are taken asynchronously (pika's blocking channel would wait
        for each one): a cast returns once written, stays in ``unconfirmed``
        until the broker confirms it, and is published again if the broker
        nacks it or the connection dies first (the server drops the duplicate
        by its unique id). ``_CONFIRM_WINDOW`` bounds what may be in flight.
        """
        if self._cast_ch is None or not self._cast_ch.is_open:
            self.orphan_unconfirmed()
            ch = self.connection.channel()
            selected: list[bool] = []
            ch._impl.confirm_delivery(
                ack_nack_callback=self._on_confirm, callback=lambda _frame: selected.append(True)
            )
            ch._impl.add_on_return_callback(self._on_cast_return)
            if not self._wait_for_confirms(lambda: bool(selected), 10):
                raise TransportError("the broker did not enable publisher confirms")
            self._cast_ch = ch
            self._cast_seq = 0
        return self._cast_ch

    def publish_cast(self, ch: BlockingChannel, cast: _Cast) -> None:
        # Tracked before it is written: pika reads what the broker sent in the
        # same turn of its loop as it writes, so on a loaded machine the
        # confirm of this very cast can arrive inside basic_publish.
        self._cast_seq += 1
        tag = self._cast_seq
        self.unconfirmed[tag] = cast
        try:
            ch.basic_publish(
                cast.exchange, cast.key, cast.body, cast.props, mandatory=cast.mandatory
            )
        except BaseException:
            # The caller retries a failed publish; as an orphan too, it would go twice.
            self.unconfirmed.pop(tag, None)
            raise
        if len(self.unconfirmed) >= _CONFIRM_WINDOW and not self._wait_for_confirms(
            lambda: len(self.unconfirmed) < _CONFIRM_WINDOW // 2, 30
        ):
            raise TransportError("the broker confirms no casts")

    def _wait_for_confirms(self, done: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                return False
            self.connection.process_data_events(time_limit=_CONFIRM_POLL)
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

    def orphan_unconfirmed(self) -> None:
        """Hand casts the broker never confirmed back to the driver, to resend."""
        if self.unconfirmed:
            if not self.driver.pool.closing:
                LOG.warning("%d unconfirmed casts will be sent again", len(self.unconfirmed))
            self.driver.orphans.extend(self.unconfirmed.values())
            self.unconfirmed.clear()

    def flush_casts(self, timeout: float) -> None:
        self._wait_for_confirms(lambda: not self.unconfirmed, timeout)

    def consumer_count(self, queue: str) -> int | None:
        """Consumers on ``queue``; ``None`` when it does not exist."""
        if self._probe_ch is None or not self._probe_ch.is_open:
            self._probe_ch = self.connection.channel()
        try:
            frame = self._probe_ch.queue_declare(queue, passive=True)
        except pex.ChannelClosedByBroker as exc:
            self._probe_ch = None
            if exc.reply_code == 404:
                return None
            raise
        count: int = frame.method.consumer_count
        return count

    def declare(self, ch: BlockingChannel, kind: str, name: str, **how: Any) -> BlockingChannel:
        """:func:`declare_tolerantly` on the cast channel, once per connection."""
        key = (kind, name)
        if key in self.declared:
            return ch
        ch = declare_tolerantly(ch, kind, name, self.channel_for_casts, **how)
        self.declared.add(key)
        return ch

    def call(self, queue: str, body: bytes, msg_id: str, timeout: float) -> _Slot:
        """Publish a request straight to ``queue`` and wait for its reply.

        The default exchange routes by queue name, which in this layout is the
        routing key (oslo's servers consume the same queues); RabbitMQ routes
        that more cheaply than the topic exchange, on every call's path.
        """
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
                publish_frames(self.call_ch, "", queue, body, props, mandatory=True),
            )
            impl = self.connection._impl
            timer = impl._adapter_call_later(timeout, slot.expire)
            try:
                # run_until also returns for another thread's callback.
                while not slot.settled():
                    run_until(self.connection, slot.settled)
            finally:
                impl._adapter_remove_timeout(timer)
            if slot.reply is None and not slot.returned and not self.call_ch.is_open:
                raise TransportError("reply channel closed by the broker")
            return slot
        finally:
            self.pending.pop(msg_id, None)


class _Pool:
    """Idle connections, most recently used first, kept alive by a keeper thread."""

    def __init__(self, driver: RabbitDriver, max_idle: int = 64) -> None:
        self.driver = driver
        self.max_idle = max_idle
        self._idle: list[_Conn] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.final = False  # set once close() has flushed the idle connections
        self._keeper: threading.Thread | None = None

    @property
    def closing(self) -> bool:
        return self._closed.is_set()

    def get(self, deadline: float) -> _Conn:
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
        return _Conn(self.driver, deadline)

    def put(self, conn: _Conn) -> None:
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
                spare = _Conn(self.driver, time.monotonic() + 5)
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


class _Delivery:
    """A request as the broker handed it over, before it is decoded."""

    __slots__ = ("body", "generation", "props", "queue", "tag")

    def __init__(
        self, generation: int, tag: int, body: bytes, queue: str, props: pika.BasicProperties
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


class _RabbitIncoming(IncomingMessage):
    __slots__ = ("delivery", "message", "pending_reply", "reply_q", "settled", "worker")

    def __init__(self, worker: _Worker, delivery: _Delivery, message: dict[str, Any]) -> None:
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


class _Worker:
    """One consumer connection, and the thread that drives it and runs the handlers.

    The thread that receives a request also runs it, replies on the same
    connection and acknowledges it: no hand-off between threads per request.
    The listener's keeper services the connection's heartbeats while a long
    handler runs (the connection lock makes that safe).
    """

    def __init__(self, listener: _RabbitListener, index: int) -> None:
        self.listener = listener
        self.index = index
        self.driver = listener.driver
        self.lock = threading.Lock()
        self.connection: pika.BlockingConnection | None = None
        self.channel: BlockingChannel | None = None
        self.generation = 0
        self.backlog: deque[_Delivery] = deque()
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

    def _declare(self, ch: BlockingChannel, kind: str, name: str, **how: Any) -> BlockingChannel:
        connection = self.connection
        assert connection is not None
        return declare_tolerantly(ch, kind, name, connection.channel, **how)

    def _setup(self) -> None:
        target = self.listener.target
        exchange = target.exchange or DEFAULT_EXCHANGE
        topic = str(target.topic)
        self.connection = pika.BlockingConnection(self.driver.connection_parameters())
        ch = self.connection.channel()
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
        ch = self._declare(ch, "queue", self.listener.dead_queue, durable=True)
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
                _Delivery(
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

        ch._impl.add_on_cancel_callback(on_cancel)

    def _drop(self) -> None:
        conn, self.connection, self.channel = self.connection, None, None
        self.consumer_tags = []
        if conn is not None:
            close_connection(conn, grace=1.0)

    # -- the loop ----------------------------------------------------------

    def _run(self) -> None:
        listener = self.listener
        attempt = 0
        while not listener.closed.is_set():
            try:
                with self.lock:
                    self._setup()
                attempt = 0
                listener.report_back()
                self.ready.set()
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
                            raise TransportError(
                                f"the broker closed the channel of {listener.target.topic!r}'s "
                                "consumers"
                            )
                        if self.cancelled:
                            raise TransportError(
                                f"the broker cancelled the consumer of queue {self.cancelled!r}"
                                " (was it deleted?)"
                            )
                    while self.backlog:
                        self._handle(self.backlog.popleft())
            except Exception as exc:
                with self.lock:
                    self._drop()
                if listener.closed.is_set():
                    break
                if not self.ready.is_set() and (
                    attempt >= self.driver.max_retries_at_start or refused_by_broker(exc)
                ):
                    self.error = exc
                    self.ready.set()
                    return
                delay = min(self.driver.max_backoff, 0.2 * 2**attempt) * random.uniform(0.8, 1.2)
                attempt += 1
                listener.report_lost(exc, delay)
                listener.closed.wait(delay)
        with self.lock:
            self._drop()

    def _has_work(self) -> bool:
        return (
            bool(self.backlog)
            or bool(self.cancelled)
            or self.channel is None
            or self.channel.is_closed
        )

    def _handle(self, delivery: _Delivery) -> None:
        if not self.listener.consuming:
            self.settle(delivery, ack=False)
            return
        try:
            message = _codec.decode(delivery.body, self.driver.max_message_bytes)
        except MalformedMessage as exc:
            self.dead_letter(delivery, f"malformed message: {exc}")
            return
        incoming = _RabbitIncoming(self, delivery, message)
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

    def settle(self, delivery: _Delivery, ack: bool) -> None:
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

    def fail(self, delivery: _Delivery, reason: str) -> None:
        """Send the request to the back of its queue, counting attempts in the message.

        A plain requeue would put it back at the head, for this same worker at
        once, and would keep no count across restarts of the server.
        """
        attempts = delivery.attempts + 1
        if attempts >= self.driver.max_attempts:
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

    def dead_letter(self, delivery: _Delivery, reason: str, attempts: int | None = None) -> None:
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
        self, delivery: _Delivery, queue: str, headers: dict[str, Any], *, keep: bool
    ) -> None:
        # A request sent again keeps its properties, a call's expiration above
        # all: it must never run long after its caller gave up. One set aside
        # is kept until someone looks at it.
        props = copy.copy(delivery.props)
        props.headers = headers
        if not keep:
            props.expiration = None
            props.delivery_mode = 2
        self._write(delivery, [(queue, delivery.body, props)])

    def finish(self, delivery: _Delivery, reply: tuple[str, str, bytes] | None) -> None:
        """Publish the reply and acknowledge the request, in one write."""
        publishes = []
        if reply is not None:
            reply_q, msg_id, body = reply
            props = pika.BasicProperties(
                content_type=_JSON, content_encoding="utf-8", correlation_id=msg_id
            )
            publishes.append((reply_q, body, props))
        if not self._write(delivery, publishes) and reply is not None:
            # The channel died: the broker requeues the request; still answer it.
            self.driver.publish_reply(*reply)

    def _write(
        self, delivery: _Delivery, publishes: list[tuple[str, bytes, pika.BasicProperties]]
    ) -> bool:
        """Publish on the default exchange and acknowledge ``delivery``, in one write.

        False when the channel that took the delivery is gone (the broker
        gives the request to a consumer again).
        """
        with self.lock:
            ch = self.channel
            if delivery.generation != self.generation or ch is None or not ch.is_open:
                return False
            frames: list[bytes] = []
            for queue, body, props in publishes:
                try:
                    frames += publish_frames(ch, "", queue, body, props)
                except Exception as exc:
                    # Never leave the delivery unacknowledged for want of a
                    # message built from what it carried.
                    LOG.error("could not publish to %.80r: %s", queue, exc)
            frames.append(ack_frame(ch, delivery.tag))
            connection = self.connection
            assert connection is not None
            try:
                send_now(connection, frames)
                if connection._impl._get_write_buffer_size():
                    connection._flush_output()  # what the socket did not take
                return True
            except RECOVERABLE as exc:
                LOG.info("could not finish message %s: %s", delivery.tag, describe(exc))
                return False

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


class _RabbitListener(Listener):
    """A server's consumers: ``workers`` connections, each with its own thread."""

    def __init__(
        self,
        driver: RabbitDriver,
        target: Target,
        callback: Callable[[IncomingMessage], None],
        workers: int,
    ) -> None:
        self.driver = driver
        self.target = target
        self.callback = callback
        self.fanout_queue = f"{target.topic}_fanout_{_codec.new_id()}"
        self.dead_queue = f"{target.topic}.dead"
        self.tag_prefix = _codec.new_id()
        self.consuming = True
        self.closed = threading.Event()
        self.workers = [_Worker(self, i) for i in range(max(1, workers))]
        self._outage = False
        self._outage_lock = threading.Lock()
        self._keeper = threading.Thread(
            target=self._keep, name=f"podium-rabbit-keeper-{target.topic}", daemon=True
        )

    def start(self) -> None:
        for worker in self.workers:
            worker.thread.start()
        for worker in self.workers:
            worker.ready.wait(60)
            if worker.error is not None:
                self.close()
                raise TransportError(
                    f"could not start consuming from RabbitMQ at {self.driver.where}: "
                    f"{describe(worker.error)}"
                ) from worker.error
        self._keeper.start()

    def _keep(self) -> None:
        interval = max(1.0, self.driver.heartbeat / 4)
        while not self.closed.wait(interval):
            for worker in self.workers:
                worker.keep_alive()

    # A broker restart cuts every worker's connection at once: one warning for
    # the server, not one per worker and retry.
    def report_lost(self, exc: BaseException, delay: float) -> None:
        with self._outage_lock:
            first, self._outage = not self._outage, True
        LOG.log(
            logging.WARNING if first else logging.DEBUG,
            "server on %s: not consuming from RabbitMQ at %s (%s); retrying in %.1fs",
            self.target.topic,
            self.driver.where,
            describe(exc),
            delay,
        )

    def report_back(self) -> None:
        with self._outage_lock:
            was, self._outage = self._outage, False
        if was:
            LOG.info(
                "server on %s: connected to RabbitMQ at %s", self.target.topic, self.driver.where
            )

    def stop(self) -> None:
        self.consuming = False
        for worker in self.workers:
            worker.wake()

    def close(self) -> None:
        self.consuming = False
        self.closed.set()
        for worker in self.workers:
            worker.wake()
        for worker in self.workers:
            if worker.thread.is_alive() and threading.current_thread() is not worker.thread:
                worker.thread.join(10)
        if self._keeper.is_alive():
            self._keeper.join(10)


#: The URL options of ``rabbits://``: files of PEM certificates and keys.
TLS_OPTIONS = ("ca_certs", "certfile", "keyfile")


def tls_context(url: TransportURL) -> ssl.SSLContext | None:
    """The TLS settings of ``rabbits://`` (``amqps://``) URLs; None for plain AMQP.

    The broker's certificate is always verified, with its host name: against
    ``ca_certs`` when given, else the system's trusted authorities.
    ``certfile`` (and ``keyfile`` when the key is apart) is this client's own
    certificate, for brokers that ask for one.
    """
    given = {name: url.query[name] for name in TLS_OPTIONS if url.query.get(name)}
    if url.scheme not in ("rabbits", "amqps"):
        if given:
            raise MessagingError(
                f"{', '.join(given)} set on a {url.scheme}:// URL: TLS needs rabbits://"
            )
        return None
    if "keyfile" in given and "certfile" not in given:
        raise MessagingError("rabbits:// keyfile= needs certfile=, the certificate it goes with")
    try:
        context = ssl.create_default_context(cafile=given.get("ca_certs"))
        if "certfile" in given:
            context.load_cert_chain(given["certfile"], given.get("keyfile"))
    except (OSError, ssl.SSLError) as exc:
        raise MessagingError(f"rabbits:// TLS settings: {exc}") from exc
    return context


class RabbitDriver(Driver):
    runs_handlers = True

    def __init__(self, url: TransportURL) -> None:
        if not url.hosts:
            raise InvalidTarget(f"{url.scheme}:// needs at least one host")
        self.url = url
        self.tls = tls_context(url)
        default_port = 5671 if self.tls is not None else 5672
        try:
            self.heartbeat = int(url.query.get("heartbeat", "30"))
            self.max_backoff = float(url.query.get("max_backoff", "5"))
            self.max_retries_at_start = int(url.query.get("connect_retries", "3"))
            self.reply_mode = url.query.get("reply", "direct")
        except ValueError as exc:
            raise MessagingError(f"bad rabbit:// option: {exc}") from exc
        if self.reply_mode not in ("direct", "queue"):
            raise MessagingError(
                f"rabbit:// reply= must be 'direct' or 'queue', not {self.reply_mode!r}"
            )
        # For messages: hosts and vhost, never the credentials.
        self.where = ",".join(f"{h.hostname}:{h.port or default_port}" for h in url.hosts) + (
            f"/{url.virtual_host or ''}"
        )
        self.pool = _Pool(self)
        # Casts never confirmed by the broker, to publish again.
        self.orphans: deque[_Cast] = deque()
        # What the broker said of a queue: (believed until, it had consumers).
        self._probed: dict[str, tuple[float, bool]] = {}
        self._listeners: list[_RabbitListener] = []
        self._rotation = 0

    def connection_parameters(
        self, deadline: float | None = None
    ) -> list[pika.ConnectionParameters]:
        # pika waits 15 s for a connection by default; a caller's deadline may be nearer.
        left = _CONNECT_TIMEOUT if deadline is None else deadline - time.monotonic()
        stack_timeout = min(_CONNECT_TIMEOUT, max(0.05, left))
        params = []
        for host in self.url.hosts:
            hostname = host.hostname or "localhost"
            params.append(
                pika.ConnectionParameters(
                    host=hostname,
                    port=host.port or (5672 if self.tls is None else 5671),
                    ssl_options=(None if self.tls is None else pika.SSLOptions(self.tls, hostname)),
                    virtual_host=self.url.virtual_host or "/",
                    credentials=pika.PlainCredentials(
                        host.username or "guest", host.password or "guest"
                    ),
                    heartbeat=self.heartbeat,
                    blocked_connection_timeout=60,
                    connection_attempts=1,
                    socket_timeout=min(5.0, stack_timeout),
                    stack_timeout=stack_timeout,
                    client_properties={"connection_name": "podium"},
                )
            )
        # Spread clients over the hosts and start failover at a different one.
        self._rotation = (self._rotation + 1) % len(params)
        return params[self._rotation :] + params[: self._rotation]

    def connect(self, timeout: float) -> None:
        # Retried quietly until the deadline: the one line that matters is the
        # error at the end (a worker's start-up), not a warning per attempt.
        deadline = time.monotonic() + timeout
        attempt = 0
        while True:
            try:
                conn = self.pool.get(deadline)
            except RECOVERABLE as exc:
                left = deadline - time.monotonic()
                if refused_by_broker(exc):
                    raise TransportError(
                        f"cannot connect to RabbitMQ at {self.where}: {describe(exc)}"
                    ) from exc
                if left <= 0.05:
                    raise TransportError(
                        f"cannot connect to RabbitMQ at {self.where}: {describe(exc)} "
                        f"(gave up after {timeout:g} s, the connect_timeout)"
                    ) from exc
                attempt += 1
                delay = min(self.max_backoff, 0.1 * 2**attempt, left)
                LOG.debug(
                    "cannot connect to RabbitMQ at %s (%s); retrying in %.1fs",
                    self.where,
                    describe(exc),
                    delay,
                )
                time.sleep(delay)
            else:
                # The first call made after start-up finds it in the pool.
                self.pool.put(conn)
                return

    @contextmanager
    def _connection(self, deadline: float, retry: int | None) -> Iterator[_Conn]:
        attempt = 0
        while True:
            try:
                conn = self.pool.get(deadline)
                break
            except RECOVERABLE as exc:
                attempt += 1
                delay = min(self.max_backoff, 0.1 * 2**attempt)
                if (
                    refused_by_broker(exc)
                    or (retry is not None and attempt > retry)
                    or time.monotonic() + delay > deadline
                ):
                    raise TransportError(
                        f"cannot connect to RabbitMQ at {self.where}: {describe(exc)}"
                    ) from exc
                LOG.warning(
                    "cannot connect to RabbitMQ at %s (%s); retrying in %.1fs",
                    self.where,
                    describe(exc),
                    delay,
                )
                time.sleep(delay)
        try:
            with conn.bounded_by(deadline + _DEADLINE_GRACE):
                yield conn
        except RECOVERABLE:
            conn.close(grace=0)
            # A broker restart or a forced close takes every connection with
            # it: drop the idle ones now rather than fail on each in turn.
            self.pool.discard_idle(grace=0)
            raise
        finally:
            self.pool.put(conn)

    def send(
        self,
        target: Target,
        message: dict[str, Any],
        *,
        wait_for_reply: bool,
        timeout: float | None,
        retry: int | None,
        resend_lost: bool = False,
    ) -> dict[str, Any] | None:
        if not target.topic:
            raise InvalidTarget("a message needs a topic")
        timeout = 60.0 if timeout is None else float(timeout)
        method = str(message.get("method"))
        message[_codec.UNIQUE_ID] = _codec.new_id()
        deadline = time.monotonic() + timeout
        exchange = target.exchange or DEFAULT_EXCHANGE
        key = f"{target.topic}.{target.server}" if target.server else target.topic
        attempt = 0
        while True:
            attempt += 1
            sent = False
            try:
                with self._connection(deadline, retry) as conn:
                    if not wait_for_reply:
                        if target.server and not target.fanout:
                            self._probe(conn, target, key, method, need_consumer=False)
                        self._cast(conn, target, exchange, key, message)
                        return None
                    msg_id = _codec.new_id()
                    message["_msg_id"] = msg_id
                    message["_reply_q"] = conn.reply_to
                    body = self.encode(message)
                    self._probe(conn, target, key, method, need_consumer=True)
                    sent = True
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise timeout_error(target, method, timeout)
                    slot = conn.call(key, body, msg_id, left)
                    if slot.returned:
                        self._probed.pop(key, None)
                        raise no_consumer_error(target, method, "unroutable")
                    if slot.reply is None:
                        raise timeout_error(target, method, timeout)
                    return slot.reply
            except pex.ChannelClosedByBroker as exc:
                if exc.reply_code == 404:
                    raise no_consumer_error(
                        target, method, f"exchange {exchange!r} missing"
                    ) from exc
                raise TransportError(f"broker refused the message: {exc}") from exc
            except _RETRYABLE as exc:
                if time.monotonic() >= deadline:
                    raise timeout_error(target, method, timeout, published=sent) from exc
                if isinstance(exc, TransportError) and exc.__cause__ is not None:
                    raise
                if sent and resend_lost:
                    # The same _unique_id goes again: the server applies it once.
                    LOG.warning(
                        "connection lost during call to %r on topic %r (%s); sending it again",
                        method,
                        target.topic,
                        describe(exc),
                    )
                    continue
                if sent:
                    # The request may have reached a server; its reply would go
                    # to a channel that no longer exists. Say so, do not hang.
                    raise TransportError(
                        f"connection lost during call to {method!r} on topic "
                        f"{target.topic!r}, server {target.server!r}; it may or may not have run"
                    ) from exc
                if (retry is not None and attempt > retry) or time.monotonic() >= deadline:
                    raise TransportError(
                        f"cannot publish to RabbitMQ at {self.where}: {describe(exc)}"
                    ) from exc
                LOG.warning("publish failed (%s); retrying on a new connection", describe(exc))

    def _probe(
        self, conn: _Conn, target: Target, key: str, method: str, *, need_consumer: bool
    ) -> None:
        """Raise NoConsumer unless ``key``'s queue exists (and, for a call, is consumed).

        A durable queue outlives its servers: mandatory publishing alone cannot
        tell that nobody consumes it. A cast to one server waits in its queue
        while the server restarts, but a queue no server ever made (a host
        misspelt or gone) would drop it unseen. Asked of the broker, cached.
        """
        now = time.monotonic()
        until, consumed = self._probed.get(key, (0.0, False))
        if until > now and (consumed or not need_consumer):
            return
        count = conn.consumer_count(key)
        if count is None:
            raise no_consumer_error(target, method, f"queue {key!r} does not exist")
        if need_consumer and count == 0:
            raise no_consumer_error(target, method, f"queue {key!r} has no consumer")
        self._probed[key] = (now + _PROBE_TTL, count > 0)

    def _cast(
        self, conn: _Conn, target: Target, exchange: str, key: str, message: dict[str, Any]
    ) -> None:
        body = self.encode(message)
        ch = conn.channel_for_casts()
        self._resend_orphans(conn)
        props = pika.BasicProperties(content_type=_JSON, content_encoding="utf-8", delivery_mode=2)
        topic = str(target.topic)
        if target.fanout:
            fanout = f"{topic}_fanout"
            ch = conn.declare(
                ch, "exchange", fanout, exchange_type="fanout", durable=False, auto_delete=True
            )
            conn.publish_cast(ch, _Cast(fanout, topic, body, props, mandatory=False))
            return
        ch = conn.declare(ch, "exchange", exchange, exchange_type="topic", durable=True)
        if not target.server and ("bound", key) not in conn.declared:
            # A cast to a topic nobody serves yet waits in the durable queue
            # for the first server, instead of vanishing.
            ch = conn.declare(ch, "queue", key, durable=True)
            ch.queue_bind(key, exchange, routing_key=key)
            conn.declared.add(("bound", key))
        # A cast to one server must reach it: unroutable ones are logged.
        conn.publish_cast(ch, _Cast(exchange, key, body, props, mandatory=bool(target.server)))

    def _resend_orphans(self, conn: _Conn) -> None:
        while self.orphans:
            try:
                cast = self.orphans.popleft()
            except IndexError:
                return
            try:
                conn.publish_cast(conn.channel_for_casts(), cast)
            except BaseException:
                self.orphans.appendleft(cast)  # still unsent: keep it for the next try
                raise

    def publish_reply(self, reply_q: str, msg_id: str, body: bytes) -> None:
        props = pika.BasicProperties(
            content_type=_JSON, content_encoding="utf-8", correlation_id=msg_id
        )
        for attempt in (1, 2, 3):
            try:
                with self._connection(time.monotonic() + 5, 1) as conn:
                    conn.call_ch.basic_publish("", reply_q, body, props)
                return
            except _RETRYABLE as exc:
                if attempt == 3:
                    LOG.error("could not send the reply to %s: %s", msg_id, exc)

    def listen(
        self, target: Target, callback: Callable[[IncomingMessage], None], prefetch: int
    ) -> Listener:
        if not target.topic:
            raise InvalidTarget("a server's target needs a topic")
        listener = _RabbitListener(self, target, callback, prefetch)
        listener.start()
        self._listeners.append(listener)
        return listener

    def close(self) -> None:
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()
        self.pool.close()
