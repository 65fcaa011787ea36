"""Transports chosen by URL, and the small contract every driver fulfils.

A driver knows how to put an encoded message where a :class:`Target` points
and how to hand received messages to a callback; everything else (dispatch,
versions, exceptions, serializers) lives above it, shared by all drivers.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

from podium._urls import UnreadableURL, mask_url, split_url
from podium.exceptions import (
    InvalidTransportURL,
    MalformedMessage,
    MessagingTimeout,
    NoConsumer,
    TransportError,
)

from . import _codec
from ._codec import DEFAULT_MAX_MESSAGE_BYTES
from ._retry import BrokerUnavailable, RequestLost, Retrying
from ._target import Target

if TYPE_CHECKING:
    from ._memory import MemoryBroker
    from ._signing import MessageSigning

__all__ = [
    "BrokerUnavailable",
    "Driver",
    "IncomingMessage",
    "Listener",
    "RequestLost",
    "Transport",
    "TransportHost",
    "TransportURL",
    "get_transport",
]

DEFAULT_EXCHANGE = "openstack"
DEFAULT_ALLOWED_EXMODS = ("podium.exceptions",)
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_MAX_BACKOFF = 5.0
DEFAULT_CONNECT_RETRIES = 3
#: A call or cast given no timeout ends after this many seconds.
DEFAULT_TIMEOUT = 60.0
#: URL schemes get_transport knows: the in-process bus, AMQP, and AMQP over TLS.
SCHEMES = ("memory", "rabbit", "amqp", "rabbits", "amqps")


@dataclass(frozen=True)
class TransportHost:
    hostname: str
    port: int | None = None
    username: str | None = None
    # Out of the repr, and so out of TransportURL's: both end up in logs.
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class TransportURL:
    """``scheme://user:pass@host:port,user:pass@host2:port/vhost?key=value``."""

    scheme: str
    hosts: tuple[TransportHost, ...] = ()
    virtual_host: str | None = None
    query: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def masked(url: str) -> str:
        """``url`` with every password replaced by ``***``, for logs and messages."""
        return mask_url(url)

    @classmethod
    def parse(cls, url: str) -> TransportURL:
        """Read ``url``; user names and passwords are percent-decoded.

        :class:`InvalidTransportURL` says what is wrong and where, and never
        quotes the URL: a piece of a password may be what could not be read.
        """
        try:
            split = split_url(url)
        except UnreadableURL as exc:
            raise InvalidTransportURL(f"invalid transport URL: {exc}") from None
        hosts = []
        for number, authority in enumerate(split.hosts, 1):
            hostname, port = _host_and_port(number, authority.hostport)
            username = password = None
            if authority.userinfo is not None:
                user, _, secret = authority.userinfo.partition(":")
                username = unquote(user)
                password = unquote(secret) if secret else None
            hosts.append(TransportHost(hostname, port, username, password))
        tail, _, _fragment = split.tail.partition("#")
        path, _, query = tail.partition("?")
        return cls(
            scheme=split.scheme.lower(),
            hosts=tuple(hosts),
            virtual_host=unquote(path[1:]) if path else None,
            query=dict(parse_qsl(query)),
        )


def _host_and_port(number: int, hostport: str) -> tuple[str, int | None]:
    where = f"invalid transport URL: host {number}"
    if hostport.startswith("["):  # IPv6 literal
        host, closed, rest = hostport[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise InvalidTransportURL(f"{where}: an IPv6 address needs [brackets] around it")
        port = rest[1:]
    else:
        host, _, port = hostport.partition(":")
    if not port:
        return unquote(host), None
    if not port.isascii() or not port.isdigit():
        raise InvalidTransportURL(f"{where}: port is not a number")
    if not 0 < int(port) < 65536:
        raise InvalidTransportURL(f"{where}: port is out of range (1-65535)")
    return unquote(host), int(port)


class IncomingMessage(ABC):
    """A received request: its decoded inner message, and how to answer it.

    Every delivery ends in exactly one of :meth:`ack`, :meth:`requeue`,
    :meth:`fail` or :meth:`dead_letter`; one left unsettled would hold its
    consumer's prefetch slot for ever.
    """

    message: dict[str, Any]

    @abstractmethod
    def reply(self, reply: dict[str, Any]) -> None:
        """Send ``reply`` (already a reply message dict) to the caller's reply queue."""

    @abstractmethod
    def ack(self) -> None:
        """The request is done with; the broker may forget it."""

    @abstractmethod
    def requeue(self) -> None:
        """Give the request back to the broker for another consumer."""

    @abstractmethod
    def fail(self, reason: str) -> None:
        """Handling failed: deliver it again later, or set it aside once it failed too often."""

    @abstractmethod
    def dead_letter(self, reason: str) -> None:
        """Set the request aside, unrun, in its topic's dead-letter queue (``<topic>.dead``)."""


class Listener(ABC):
    @abstractmethod
    def stop(self) -> None:
        """Stop taking new messages (in-flight ones may still be acked)."""

    @abstractmethod
    def close(self) -> None:
        """Release the listener's connection."""


class Driver(ABC):
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    #: How many times a request whose handling failed is run before it is set
    #: aside (``?max_attempts=`` in the URL, on every transport).
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    # True when listen() runs the callback on its own bounded set of worker
    # threads (one request at a time each); False when the callback must only
    # hand the message over, and the server runs it on its pool.
    runs_handlers: bool = False
    #: Signs every request and reply this driver sends (the transport's key).
    sealer: _codec.Sealer | None = None
    #: The longest pause between two tries of the broker (``?max_backoff=``, seconds).
    max_backoff: float = DEFAULT_MAX_BACKOFF
    #: How often a server retries its first connection before its start fails
    #: (``?connect_retries=``); once it ran, it retries for as long as it runs.
    connect_retries: int = DEFAULT_CONNECT_RETRIES
    #: The broker, for logs and errors: its address, never its credentials.
    broker_name: str = "the broker"

    def encode(self, message: dict[str, Any], what: str = "message") -> bytes:
        """``message`` in its wire form, refused over ``max_message_bytes``.

        Every driver encodes requests and replies through here, so a message
        too big for one transport is too big for all of them, and is refused
        by its sender: a request on the caller, a reply as a failure the
        caller reads instead of its result.
        """
        body = _codec.encode(message, self.sealer)
        if len(body) > self.max_message_bytes:
            raise MalformedMessage(
                f"{what} of {len(body)} bytes exceeds the {self.max_message_bytes}-byte limit"
            )
        return body

    @abstractmethod
    def send(
        self,
        target: Target,
        message: dict[str, Any],
        *,
        wait_for_reply: bool,
        timeout: float,
        deadline: float,
    ) -> dict[str, Any] | None:
        """Publish once; for a call, block for the reply message and return it.

        One attempt, ended by ``deadline`` (``time.monotonic()``; ``timeout``
        is the seconds it stands for, to say in errors): the transport retries
        what :meth:`is_recoverable` calls recoverable. A connection lost after
        a call went out raises :class:`RequestLost`.
        """

    @abstractmethod
    def listen(
        self, target: Target, callback: Callable[[IncomingMessage], None], prefetch: int
    ) -> Listener:
        """Start consuming; ``prefetch`` bounds the requests taken at once."""

    @abstractmethod
    def close(self) -> None: ...

    def ensure_connection(self, deadline: float) -> None:
        """Reach the broker once, by ``deadline``; raise a recoverable error if it cannot be.

        An in-process driver has nothing to reach.
        """
        return None

    # -- what the retry loop (podium.rpc._retry) asks of a driver ----------

    def is_recoverable(self, exc: BaseException) -> bool:
        """Whether trying again may cure ``exc`` (a lost connection, a broker away).

        A refusal (bad credentials, a permission, a certificate) is not.
        """
        return isinstance(exc, BrokerUnavailable)

    def describe_error(self, exc: BaseException) -> str:
        """``exc`` in one line, for a log or an error (never a password)."""
        return str(exc) or type(exc).__name__


def timeout_error(
    target: Target, method: str, timeout: float | None, *, published: bool = True
) -> MessagingTimeout:
    waiting_for = "a reply to" if published else "the broker to take"
    return MessagingTimeout(
        f"Timed out after {timeout:g}s waiting for {waiting_for} {method!r} "
        f"on topic {target.topic!r}, server {target.server!r}"
    )


def no_consumer_error(target: Target, method: str, why: str = "") -> NoConsumer:
    detail = f" ({why})" if why else ""
    return NoConsumer(
        f"Nobody consumes topic {target.topic!r}, server {target.server!r}: "
        f"{method!r} not delivered{detail}"
    )


class Transport:
    """A connection to a message bus, shared by the clients and servers on it."""

    def __init__(
        self,
        driver: Driver,
        url: TransportURL,
        allowed_remote_exmods: Iterable[str] | None = None,
        signing: MessageSigning | None = None,
    ) -> None:
        self.driver = driver
        self.url = url
        # What this process signs with and whose signatures it checks.
        self.signing = signing
        driver.sealer = signing.key if signing is not None else None
        self.allowed_remote_exmods: list[str] = list(
            DEFAULT_ALLOWED_EXMODS if allowed_remote_exmods is None else allowed_remote_exmods
        )
        self._closed = False
        self._lock = threading.Lock()

    def cleanup(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.driver.close()

    close = cleanup

    def connect(self, timeout: float) -> None:
        """Check the broker can be reached, trying for at most ``timeout`` seconds.

        :class:`~podium.exceptions.TransportError` names the broker's address
        (never its credentials) and why it could not be reached. Quiet until
        then: the one line that matters at start-up is the error at the end.
        """
        deadline = time.monotonic() + timeout
        Retrying(
            self.driver,
            f"cannot connect to {self.driver.broker_name}",
            deadline=deadline,
            deadline_name="connect_timeout",
            level=logging.DEBUG,
            started=deadline - timeout,
        ).run(lambda: self.driver.ensure_connection(deadline))

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
        """Publish ``message`` (for a call, wait for its reply), retrying what the driver
        calls recoverable: ``retry`` times (None: until ``timeout``).

        Every try carries the same ``_unique_id``. ``resend_lost``: a call whose
        connection is lost after it went out is sent again (its server de-duplicates
        it); otherwise the caller is told it may or may not have run.
        """
        message[_codec.UNIQUE_ID] = _codec.new_id()
        seconds = DEFAULT_TIMEOUT if timeout is None else float(timeout)
        deadline = time.monotonic() + seconds
        driver = self.driver
        method = str(message.get("method"))

        def attempt() -> dict[str, Any] | None:
            try:
                return driver.send(
                    target,
                    message,
                    wait_for_reply=wait_for_reply,
                    timeout=seconds,
                    deadline=deadline,
                )
            except RequestLost as exc:
                if time.monotonic() >= deadline:
                    raise timeout_error(target, method, seconds) from exc
                if not resend_lost:
                    raise TransportError(
                        f"connection lost during call to {method!r} on topic "
                        f"{target.topic!r}, server {target.server!r}; it may or may not have run"
                    ) from exc
                raise  # sent again under the same _unique_id: the server runs it once

        try:  # the first try outside the loop: a call's fast path builds nothing more
            return attempt()
        except Exception as exc:
            if not driver.is_recoverable(exc):
                raise
            failed = exc
        return Retrying(
            driver,
            f"cannot send {method!r} to topic {target.topic!r} through {driver.broker_name}",
            retry=retry,
            deadline=deadline,
            deadline_name="timeout",
            timed_out=lambda exc: timeout_error(
                target, method, seconds, published=isinstance(exc, RequestLost)
            ),
            started=deadline - seconds,
        ).run(attempt, failed)

    def __enter__(self) -> Transport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        return f"<Transport {self.url.scheme}://>"


def get_transport(
    url: str,
    allowed_remote_exmods: Iterable[str] | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    *,
    broker: MemoryBroker | None = None,
    signing: MessageSigning | None = None,
) -> Transport:
    """A transport for ``memory://[name]`` or ``rabbit://user:pass@host:port[,host2]/vhost``
    (``rabbits://`` for AMQP over TLS).

    ``broker``: for ``memory://``, the in-process broker to use instead of the process's own.
    ``signing``: the key its messages are signed with and the keys it checks
    (:class:`~podium.rpc.MessageSigning`); None sends and accepts unsigned messages.
    """
    parsed = TransportURL.parse(url)
    if broker is not None and parsed.scheme != "memory":
        raise InvalidTransportURL(f"broker= is for memory:// URLs, not {parsed.scheme}://")
    driver: Driver
    if parsed.scheme == "memory":
        from ._memory import MemoryDriver

        driver = MemoryDriver(parsed, broker)
    elif parsed.scheme in SCHEMES:
        from ._rabbit import RabbitDriver

        driver = RabbitDriver(parsed)
    else:
        raise InvalidTransportURL(
            f"unknown transport {parsed.scheme!r} in {mask_url(url)!r}; "
            "use memory://, rabbit://user:pass@host:5672/vhost or rabbits:// (TLS)"
        )
    driver.max_message_bytes = max_message_bytes
    driver.max_attempts = _whole_number(parsed, "max_attempts", DEFAULT_MAX_ATTEMPTS, least=1)
    driver.connect_retries = _whole_number(parsed, "connect_retries", DEFAULT_CONNECT_RETRIES)
    driver.max_backoff = _seconds(parsed, "max_backoff", DEFAULT_MAX_BACKOFF)
    return Transport(driver, parsed, allowed_remote_exmods, signing)


def _whole_number(url: TransportURL, name: str, default: int, least: int = 0) -> int:
    value = url.query.get(name, str(default))
    if not value.isascii() or not value.isdigit() or int(value) < least:
        raise InvalidTransportURL(f"{name} must be a whole number from {least}, not {value!r}")
    return int(value)


def _seconds(url: TransportURL, name: str, default: float) -> float:
    value = url.query.get(name, str(default))
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not seconds > 0 or math.isinf(seconds):
        raise InvalidTransportURL(f"{name} must be a number of seconds above 0, not {value!r}")
    return seconds
