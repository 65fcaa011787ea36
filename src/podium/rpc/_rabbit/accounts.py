"""RabbitMQ permissions of broker accounts restricted per service (``routing=exchange``).

RabbitMQ grants an account three regular expressions on the names of a
vhost's exchanges and queues: *configure* (declare, delete), *write*
(publish to an exchange; bind a queue) and *read* (consume or get from a
queue; bind to an exchange), and, per topic exchange, two on routing keys:
*write* (publish with that key) and *read* (bind with that key). See
docs/broker.md for what each service's account may do as a result.

An account that serves topic ``T`` on host ``H`` owns the queues ``T``,
``T.H`` (``T.<any host>`` for an account shared by the hosts of a service)
and ``T.dead``, its fanout queues, and its reply queues; it may send to the
topics it calls. Nothing here grants the default exchange, which would reach
every queue by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .routing import REPLY_EXCHANGE, REPLY_PREFIX, fanout_queue_pattern, reply_queue_pattern

__all__ = ["Permissions", "Role", "permissions"]


@dataclass(frozen=True)
class Role:
    """What one kind of service does on the bus."""

    #: The topics it serves (queues ``<topic>`` and ``<topic>.<host>``).
    serves: tuple[str, ...] = ()
    #: The topics it calls and casts to (their shared queue).
    sends: tuple[str, ...] = ()
    #: The topics whose servers it addresses one by one (``<topic>.<host>``, fanout).
    sends_to_servers: tuple[str, ...] = ()
    #: One account per host, whose queues are that host's alone.
    per_host: bool = False
    #: It may create the topic exchange (the first of them to start does).
    creates_exchange: bool = False


@dataclass(frozen=True)
class Permissions:
    """The regular expressions ``rabbitmqctl set_permissions`` and
    ``set_topic_permissions`` take."""

    configure: str
    write: str
    read: str
    #: exchange -> (write, read) patterns on routing keys.
    topics: dict[str, tuple[str, str]]


def _any(patterns: list[str]) -> str:
    """Exactly one of ``patterns``; nothing at all when there are none."""
    return f"^({'|'.join(dict.fromkeys(patterns))})$" if patterns else "^$"


def permissions(
    role: Role, account: str, host: str | None = None, exchange: str = "openstack"
) -> Permissions:
    """The permissions of ``account``, which runs ``role`` (on ``host`` if per host)."""
    if role.per_host and not host:
        raise ValueError("an account per host needs the host")
    e = re.escape
    server = e(host) if role.per_host and host else ".+"
    keys: list[str] = []  # the queues it consumes, and its routing keys on the exchange
    fanouts: list[str] = []
    own_keys: list[str] = []  # the keys it may send to: its own server's queues
    for topic in role.serves:
        keys += [e(topic), f"{e(topic)}\\.{server}"]
        # (An account shared by every server of the topic may use its shared key.)
        own_keys += (
            [f"{e(topic)}\\.{server}"] if role.per_host else [e(topic), f"{e(topic)}\\.{server}"]
        )
        fanouts.append(fanout_queue_pattern(topic, account))
    # Where it sets aside what it cannot handle (when its account is per host,
    # ``.+`` above does not already cover it).
    dead = [f"{e(topic)}\\.dead" for topic in role.serves] if role.per_host else []
    fanout_exchanges = [f"{e(topic)}_fanout" for topic in role.serves]
    replies = [reply_queue_pattern(account)]
    sends = [e(topic) for topic in role.sends]
    for topic in role.sends_to_servers:
        sends += [e(topic), f"{e(topic)}\\..+"]
    shared = [e(exchange), e(REPLY_EXCHANGE)]
    own = keys + dead + fanouts + replies
    return Permissions(
        configure=_any(own + fanout_exchanges + ([e(exchange)] if role.creates_exchange else [])),
        # Writing to a queue is binding it: to its own only.
        write=_any(shared + own + [f"{e(topic)}_fanout" for topic in role.sends_to_servers]),
        read=_any(shared + keys + fanouts + replies + fanout_exchanges),
        topics={
            # Its own server's key to send a failed request again, not the
            # topic's shared one, which other hosts consume; and the dead one.
            exchange: (_any(sends + own_keys + dead), _any(keys + dead)),
            REPLY_EXCHANGE: (
                _any([f"{e(REPLY_PREFIX)}.+"]) if role.serves else _any([]),
                _any(replies),
            ),
        },
    )
