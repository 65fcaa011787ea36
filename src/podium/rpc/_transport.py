"""Transports chosen by URL, and the small contract every driver fulfils.

A driver knows how to put an encoded message where a :class:`Target` points
and how to hand received messages to a callback; everything else (dispatch,
versions, exceptions, serializers) lives above it, shared by all drivers.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

from podium._urls import UnreadableURL, mask_url, split_url
from podium.exceptions import InvalidTransportURL, MalformedMessage, MessagingTimeout, NoConsumer

from . import _codec
from ._codec import DEFAULT_MAX_MESSAGE_BYTES
from ._target import Target

if TYPE_CHECKING:
    from ._memory import MemoryBroker
    from ._signing import MessageSigning

__all__ = [
    "Driver",
    "IncomingMessage",
    "Listener",
    "Transport",
    "TransportHost",
    "TransportURL",
    "get_transport",
]

DEFAULT_EXCHANGE = "openstack"
DEFAULT_ALLOWED_EXMODS = ("podium.exceptions",)
DEFAULT_MAX_ATTEMPTS = 3
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
        timeout: float | None,
        retry: int | None,
        resend_lost: bool = False,
    ) -> dict[str, Any] | None:
        """Publish; for a call, block for the reply message and return it.

        ``resend_lost``: a call whose connection is lost after it was sent is
        sent again under the same ``_unique_id`` (the server de-duplicates).
        """

    @abstractmethod
    def listen(
        self, target: Target, callback: Callable[[IncomingMessage], None], prefetch: int
    ) -> Listener:
        """Start consuming; ``prefetch`` bounds the requests taken at once."""

    @abstractmethod
    def close(self) -> None: ...

    def connect(self, timeout: float) -> None:
        """Reach the broker within ``timeout`` seconds, or raise TransportError saying where.

        For start-up: a service told a wrong address says so at once, instead
        of retrying for as long as a lost broker is retried once it ran. An
        in-process driver has nothing to reach.
        """
        return None


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
        (never its credentials) and why it could not be reached.
        """
        self.driver.connect(timeout)

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
    driver.max_attempts = _max_attempts(parsed)
    return Transport(driver, parsed, allowed_remote_exmods, signing)


def _max_attempts(url: TransportURL) -> int:
    value = url.query.get("max_attempts", str(DEFAULT_MAX_ATTEMPTS))
    if not value.isascii() or not value.isdigit() or int(value) < 1:
        raise InvalidTransportURL(f"max_attempts must be a whole number from 1, not {value!r}")
    return int(value)
