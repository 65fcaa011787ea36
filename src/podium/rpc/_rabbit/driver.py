"""The ``rabbit://`` driver: a URL's brokers, the callers' pool, the servers' listeners."""

from __future__ import annotations

import logging
import ssl
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from podium.exceptions import InvalidTarget, MessagingError, TransportError

from .. import _codec
from .._retry import RequestLost, Retrying
from .._target import Target
from .._transport import (
    DEFAULT_EXCHANGE,
    BrokerUnavailable,
    Driver,
    IncomingMessage,
    Listener,
    TransportURL,
    no_consumer_error,
    timeout_error,
)
from . import amqp
from .amqp import describe, recoverable, refused_by_broker
from .callers import JSON, Cast, Conn, Pool
from .listener import RabbitListener
from .routing import Routing, unanswerable

LOG = logging.getLogger("podium.rpc._rabbit")

_PROBE_TTL = 2.0
_CONNECT_TIMEOUT = 15.0
# A call's own timer ends its wait for the reply at its deadline; the
# connection is cut only if a broker operation is still stuck a little later.
_DEADLINE_GRACE = 0.25

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
            self.reply_mode = url.query.get("reply", "direct")
        except ValueError as exc:
            raise MessagingError(f"bad rabbit:// option: {exc}") from exc
        if self.reply_mode not in ("direct", "queue"):
            raise MessagingError(
                f"rabbit:// reply= must be 'direct' or 'queue', not {self.reply_mode!r}"
            )
        self.routing = Routing.of(url)
        if self.routing.restricted:
            if url.query.get("reply", "queue") != "queue":
                raise MessagingError(
                    "rabbit:// routing=exchange replies through reply queues: reply=direct "
                    "needs the default exchange, which it does not use"
                )
            self.reply_mode = "queue"
        # For messages: hosts and vhost, never the credentials.
        self.where = ",".join(f"{h.hostname}:{h.port or default_port}" for h in url.hosts) + (
            f"/{url.virtual_host or ''}"
        )
        self.broker_name = f"RabbitMQ at {self.where}"
        self.pool = Pool(self)
        # Casts never confirmed by the broker, to publish again.
        self.orphans: deque[Cast] = deque()
        # What the broker said of a queue: (believed until, it had consumers).
        self._probed: dict[str, tuple[float, bool]] = {}
        self._listeners: list[RabbitListener] = []
        self._rotation = 0

    def connection_parameters(self, deadline: float | None = None) -> list[amqp.Parameters]:
        # pika waits 15 s for a connection by default; a caller's deadline may be nearer.
        left = _CONNECT_TIMEOUT if deadline is None else deadline - time.monotonic()
        stack_timeout = min(_CONNECT_TIMEOUT, max(0.05, left))
        params = [
            amqp.parameters(
                host=host.hostname or "localhost",
                port=host.port or (5672 if self.tls is None else 5671),
                virtual_host=self.url.virtual_host or "/",
                username=host.username or "guest",
                password=host.password or "guest",
                tls=self.tls,
                heartbeat=self.heartbeat,
                stack_timeout=stack_timeout,
            )
            for host in self.url.hosts
        ]
        # Spread clients over the hosts and start failover at a different one.
        self._rotation = (self._rotation + 1) % len(params)
        return params[self._rotation :] + params[: self._rotation]

    def is_recoverable(self, exc: BaseException) -> bool:
        return isinstance(exc, BrokerUnavailable) or recoverable(exc)

    def describe_error(self, exc: BaseException) -> str:
        return describe(exc)

    def ensure_connection(self, deadline: float) -> None:
        # The first call made after start-up finds it in the pool.
        self.pool.put(self._connect(deadline))

    def _connect(self, deadline: float) -> Conn:
        """A pooled connection; a broker's refusal as a TransportError (not to be retried)."""
        try:
            return self.pool.get(deadline)
        except Exception as exc:
            if refused_by_broker(exc):
                raise TransportError(
                    f"cannot connect to {self.broker_name}: {describe(exc)}"
                ) from exc
            raise

    @contextmanager
    def _connection(self, deadline: float) -> Iterator[Conn]:
        conn = self._connect(deadline)
        try:
            with conn.bounded_by(deadline + _DEADLINE_GRACE):
                yield conn
        except Exception as exc:
            if self.is_recoverable(exc):
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
        timeout: float,
        deadline: float,
    ) -> dict[str, Any] | None:
        if not target.topic:
            raise InvalidTarget("a message needs a topic")
        method = str(message.get("method"))
        exchange = target.exchange or DEFAULT_EXCHANGE
        key = f"{target.topic}.{target.server}" if target.server else target.topic
        sent = False
        try:
            with self._connection(deadline) as conn:
                if not wait_for_reply:
                    # A restricted account may not make the topic's queue
                    # (the servers do): it must exist, or the cast is lost.
                    if not target.fanout and (target.server or self.routing.restricted):
                        self._probe(conn, target, key, method, need_consumer=False)
                    self._cast(conn, target, exchange, key, message)
                    return None
                msg_id = _codec.new_id()
                message["_msg_id"] = msg_id
                message["_reply_q"] = conn.reply_to
                body = self.encode(message)
                self._probe(conn, target, key, method, need_consumer=True)
                sent = True
                return self._await_reply(
                    conn, target, (exchange, key), method, body, msg_id, timeout, deadline
                )
        except amqp.ChannelClosedByBroker as exc:
            if exc.reply_code == 404:
                raise no_consumer_error(target, method, f"exchange {exchange!r} missing") from exc
            raise TransportError(
                f"broker refused the message: {exc.reply_code} {exc.reply_text}"
            ) from exc
        except Exception as exc:
            if sent and self.is_recoverable(exc):
                # The request may have reached a server; its reply would go
                # to a channel that no longer exists.
                raise RequestLost(f"connection lost during the call: {describe(exc)}") from exc
            raise

    def _await_reply(
        self,
        conn: Conn,
        target: Target,
        destination: tuple[str, str],
        method: str,
        body: bytes,
        msg_id: str,
        timeout: float,
        deadline: float,
    ) -> dict[str, Any]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise timeout_error(target, method, timeout)
        exchange, key = destination
        slot = conn.call(exchange, key, body, msg_id, left)
        if slot.returned:
            self._probed.pop(key, None)
            raise no_consumer_error(target, method, "unroutable")
        if slot.reply is None:
            raise timeout_error(target, method, timeout)
        return slot.reply

    def _probe(
        self, conn: Conn, target: Target, key: str, method: str, *, need_consumer: bool
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
        self, conn: Conn, target: Target, exchange: str, key: str, message: dict[str, Any]
    ) -> None:
        body = self.encode(message)
        ch = conn.channel_for_casts()
        self._resend_orphans(conn)
        props = amqp.Properties(content_type=JSON, content_encoding="utf-8", delivery_mode=2)
        topic = str(target.topic)
        restricted = self.routing.restricted
        if target.fanout:
            fanout = f"{topic}_fanout"
            if restricted and not conn.exchange_exists(fanout):
                return  # its servers declare it: none listens, so none misses the cast
            ch = conn.declare(
                ch, "exchange", fanout, exchange_type="fanout", durable=False, auto_delete=True
            )
            conn.publish_cast(ch, Cast(fanout, topic, body, props, mandatory=False))
            return
        ch = conn.declare(ch, "exchange", exchange, exchange_type="topic", durable=True)
        if not target.server and not restricted and ("bound", key) not in conn.declared:
            # A cast to a topic nobody serves yet waits in the durable queue
            # for the first server, instead of vanishing.
            ch = conn.declare(ch, "queue", key, durable=True)
            ch.queue_bind(key, exchange, routing_key=key)
            conn.declared.add(("bound", key))
        # A cast to one server must reach it: unroutable ones are logged.
        conn.publish_cast(ch, Cast(exchange, key, body, props, mandatory=bool(target.server)))

    def _resend_orphans(self, conn: Conn) -> None:
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
        destination = self.routing.reply(reply_q)
        if destination is None:
            LOG.error("%s", unanswerable(reply_q))
            return
        props = amqp.Properties(content_type=JSON, content_encoding="utf-8", correlation_id=msg_id)
        deadline = time.monotonic() + 5

        def publish() -> None:
            with self._connection(deadline) as conn:
                conn.call_ch.basic_publish(*destination, body, props)

        try:
            Retrying(self, f"cannot send the reply to {msg_id}", retry=2, deadline=deadline).run(
                publish
            )
        except Exception as exc:  # a server thread: log it, serve on
            LOG.error("could not send the reply to %s: %s", msg_id, describe(exc))

    def listen(
        self, target: Target, callback: Callable[[IncomingMessage], None], prefetch: int
    ) -> Listener:
        if not target.topic:
            raise InvalidTarget("a server's target needs a topic")
        listener = RabbitListener(self, target, callback, prefetch)
        listener.start()
        self._listeners.append(listener)
        return listener

    def close(self) -> None:
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()
        self.pool.close()
