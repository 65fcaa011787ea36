"""Where messages are published: the fast default path, or only through exchanges.

``?routing=default`` (the default) publishes calls, replies and a server's
retries on RabbitMQ's default exchange, by queue name: the cheapest route,
but writing to the default exchange reaches every queue of the vhost.

``?routing=exchange`` is for broker accounts restricted per service
(``podium broker setup``, docs/broker.md): nothing goes to the default
exchange. Requests go through the topic exchange (``openstack``), where the
broker checks the routing key against the account's topic permissions;
replies through ``amq.topic`` to reply queues named after the caller's
account (``reply_<account>_<id>``), which only that account may declare,
bind and read; an account's fanout queues carry its name the same way.
"""

from __future__ import annotations

import re

from podium.exceptions import MessagingError

from .. import _codec
from .._transport import TransportURL

ROUTINGS = ("default", "exchange")
#: Replies under ``routing=exchange``: always there, and no client may
#: delete or redeclare it (``amq.*`` names are the broker's own).
REPLY_EXCHANGE = "amq.topic"
REPLY_PREFIX = "reply_"
#: What :func:`podium.rpc._codec.new_id` makes: 32 hex digits.
ID_PATTERN = "[0-9a-f]{32}"

_REFUSED_TOPIC = re.compile(r"access to topic '(.*)' in exchange '(.*)' in vhost")
_REFUSED_EXCHANGE = re.compile(r"(?:access to|no) exchange '(.*)' in vhost")


class Routing:
    """The routes of one ``rabbit://`` URL (see the module's text)."""

    __slots__ = ("account", "restricted")

    def __init__(self, mode: str, account: str) -> None:
        if mode not in ROUTINGS:
            raise MessagingError(
                f"rabbit:// routing= must be one of {', '.join(ROUTINGS)}, not {mode!r}"
            )
        self.restricted = mode == "exchange"
        self.account = account

    @classmethod
    def of(cls, url: TransportURL) -> Routing:
        account = (url.hosts[0].username if url.hosts else None) or "guest"
        return cls(url.query.get("routing", "default"), account)

    def request(self, exchange: str, key: str) -> tuple[str, str]:
        """Where a request for ``key``'s queue goes: (exchange, routing key)."""
        # The default exchange routes by queue name, which in this layout is the
        # routing key (oslo's servers consume the same queues), and more
        # cheaply than the topic exchange, on every call's path.
        return (exchange, key) if self.restricted else ("", key)

    def reply_queue(self) -> str:
        """A new reply queue's name (oslo.messaging's ``reply_<id>``; the account's too)."""
        if self.restricted:
            return f"{REPLY_PREFIX}{self.account}_{_codec.new_id()}"
        return f"{REPLY_PREFIX}{_codec.new_id()}"

    def fanout_queue(self, topic: str) -> str:
        if self.restricted:
            return f"{topic}_fanout_{self.account}_{_codec.new_id()}"
        return f"{topic}_fanout_{_codec.new_id()}"

    def reply(self, reply_q: str) -> tuple[str, str] | None:
        """Where a reply to ``reply_q`` goes; None when this account cannot send it there.

        A restricted account may not write to the default exchange, the only
        way to a direct reply-to address or to a reply queue bound nowhere
        else (an unrestricted or oslo.messaging caller's).
        """
        if not self.restricted:
            return ("", reply_q)
        if reply_q.startswith(REPLY_PREFIX):
            return (REPLY_EXCHANGE, reply_q)
        return None


def unanswerable(reply_q: str) -> str:
    """Why a restricted server drops its reply to ``reply_q``."""
    return (
        f"cannot reply to {reply_q!r}: this account (routing=exchange) may not write to the "
        "default exchange, the only way there; give the caller routing=exchange too"
    )


def reply_queue_pattern(account: str) -> str:
    """A regular expression matching exactly ``account``'s reply queue names."""
    return f"{re.escape(REPLY_PREFIX)}{re.escape(account)}_{ID_PATTERN}"


def fanout_queue_pattern(topic: str, account: str) -> str:
    return f"{re.escape(topic)}_fanout_{re.escape(account)}_{ID_PATTERN}"


def refused_destination(reply_text: str) -> tuple[str, str | None] | None:
    """(exchange, routing key or None) a broker's ACCESS_REFUSED or NOT_FOUND names, if any."""
    found = _REFUSED_TOPIC.search(reply_text)
    if found:
        return found.group(2), found.group(1)
    found = _REFUSED_EXCHANGE.search(reply_text)
    if found:
        return found.group(1), None
    return None


def names(refused: tuple[str, str | None], exchange: str, key: str) -> bool:
    """Whether a refusal's (exchange, routing key or None) names a message to ``exchange``
    with routing key ``key``."""
    return refused[0] == exchange and refused[1] in (None, key)
