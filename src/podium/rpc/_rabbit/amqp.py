"""Every contact with pika, the AMQP client library: nothing else in podium imports it.

The rest of the driver works through what is here: connection parameters,
opening a connection, publishing marshalled frames in one write, consuming
from pika's frame handling, acknowledging, driving I/O until a deadline,
timers, publisher confirms, returned and cancelled deliveries, closing
without leaking pika's loop, and what a failure means (recoverable, refused,
its one-line reason).

Several of these reach below pika's public API (its blocking adapter's
private loop, transport and channel internals), where the public API costs
more than the rest of a call: the tested pika release is pinned in
pyproject.toml, and tests/rpc/test_rabbit_amqp.py checks that the internals
used here are still there.
"""

from __future__ import annotations

import contextlib
import logging
import re
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeAlias

import pika
import pika.exceptions as pex
from pika import frame, spec
from pika.adapters.blocking_connection import BlockingChannel
from pika.adapters.utils.connection_workflow import (
    AMQPConnectionWorkflowFailed,
    AMQPConnectorException,
)
from pika.adapters.utils.io_services_utils import _AsyncPlaintextTransport as _PlainTransport

from podium.exceptions import TransportError

__all__ = [
    "RECOVERABLE",
    "Channel",
    "ChannelClosedByBroker",
    "Connection",
    "Parameters",
    "Properties",
    "ack_frame",
    "bounded",
    "call_later",
    "close_connection",
    "closed_by_broker",
    "consume_inline",
    "declare_existing",
    "declare_tolerantly",
    "describe",
    "enable_confirms",
    "flush_unsent",
    "on_cancel",
    "on_close",
    "on_return",
    "open_connection",
    "parameters",
    "publish_frames",
    "recoverable",
    "refused_by_broker",
    "run_until",
    "send_now",
    "server_capabilities",
]

LOG = logging.getLogger("podium.rpc._rabbit")

Connection: TypeAlias = pika.BlockingConnection
Channel: TypeAlias = BlockingChannel
Properties: TypeAlias = pika.BasicProperties
Parameters: TypeAlias = pika.ConnectionParameters
ChannelClosedByBroker: TypeAlias = pex.ChannelClosedByBroker


def parameters(
    *,
    host: str,
    port: int,
    virtual_host: str,
    username: str,
    password: str,
    tls: ssl.SSLContext | None,
    heartbeat: int,
    stack_timeout: float,
) -> Parameters:
    """How to reach one broker host; pika gives up after ``stack_timeout`` seconds."""
    return pika.ConnectionParameters(
        host=host,
        port=port,
        ssl_options=None if tls is None else pika.SSLOptions(tls, host),
        virtual_host=virtual_host,
        credentials=pika.PlainCredentials(username, password),
        heartbeat=heartbeat,
        blocked_connection_timeout=60,
        connection_attempts=1,
        socket_timeout=min(5.0, stack_timeout),
        stack_timeout=stack_timeout,
        client_properties={"connection_name": "podium"},
    )


def open_connection(hosts: list[Parameters]) -> Connection:
    """A connection to the first of ``hosts`` that answers."""
    return pika.BlockingConnection(hosts)


def server_capabilities(connection: Connection) -> dict[str, Any]:
    capabilities = getattr(connection._impl, "server_capabilities", None)
    return dict(capabilities or {})


def on_return(channel: Channel, callback: Callable[..., None]) -> None:
    """Hand messages the broker returns (unroutable, mandatory) to ``callback``, inline."""
    channel._impl.add_on_return_callback(callback)


def on_cancel(channel: Channel, callback: Callable[[Any], None]) -> None:
    """Tell ``callback`` when the broker cancels a consumer (its queue was deleted)."""
    channel._impl.add_on_cancel_callback(callback)


def on_close(channel: Channel, callback: Callable[[Any, BaseException], None]) -> None:
    """Tell ``callback`` (channel, reason) when ``channel`` closes, inline."""
    channel._impl.add_on_close_callback(callback)


def closed_by_broker(channel: Channel) -> ChannelClosedByBroker | None:
    """Why the broker closed ``channel`` (an ACCESS_REFUSED, a NOT_FOUND...); None if it did not."""
    reason = channel._closing_reason if channel.is_closed else None
    return reason if isinstance(reason, pex.ChannelClosedByBroker) else None


def enable_confirms(
    channel: Channel, on_confirm: Callable[[Any], None], on_selected: Callable[[Any], None]
) -> None:
    """Publisher confirms whose acks and nacks reach ``on_confirm`` inline, as they arrive.

    The blocking channel's own confirm mode waits for each publish's confirm.
    """
    channel._impl.confirm_delivery(ack_nack_callback=on_confirm, callback=on_selected)


@contextmanager
def call_later(
    connection: Connection, delay: float, callback: Callable[[], None]
) -> Iterator[None]:
    """Run ``callback`` from ``connection``'s I/O loop after ``delay`` seconds, unless the block
    ends first."""
    impl = connection._impl
    timer = impl._adapter_call_later(max(0.0, delay), callback)
    try:
        yield
    finally:
        impl._adapter_remove_timeout(timer)


def flush_unsent(connection: Connection) -> None:
    """Write out what the socket did not take in :func:`send_now`."""
    if connection._impl._get_write_buffer_size():
        connection._flush_output()


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
    if isinstance(exc, pex.ChannelClosedByBroker):
        # ACCESS_REFUSED: the account may not use that queue or exchange.
        return bool(exc.reply_code == 403)
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
    if isinstance(cause, (pex.ConnectionClosedByBroker, pex.ChannelClosedByBroker)):
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


def declare_existing(
    ch: BlockingChannel, name: str, reopen: Callable[[], BlockingChannel], **how: Any
) -> BlockingChannel:
    """Use the exchange ``name`` as it is; declare it only if it does not exist.

    An account restricted per service may not configure (delete, redeclare)
    the exchange it shares with every other service: a passive declare needs
    no permission. Only an account allowed to create it can when it is missing.
    """
    try:
        ch.exchange_declare(name, passive=True)
        return ch
    except pex.ChannelClosedByBroker as exc:
        if exc.reply_code != 404:
            raise
    try:
        return declare_tolerantly(reopen(), "exchange", name, reopen, **how)
    except pex.ChannelClosedByBroker as exc:
        if exc.reply_code != 403:
            raise
        raise TransportError(
            f"exchange {name!r} does not exist, and this broker account may not create it: "
            "start first a service whose account may (the conductor's, with podium broker setup)"
        ) from None


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

    with call_later(connection, deadline - time.monotonic(), cut):
        yield


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


def recoverable(exc: BaseException) -> bool:
    """A connection or channel lost, or a broker not reached: another connection may work.

    A refusal by the broker (credentials, a permission, a certificate) is not.
    """
    return isinstance(exc, RECOVERABLE) and not refused_by_broker(exc)
