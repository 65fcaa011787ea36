"""Publisher confirms in the rabbit driver, against a stand-in for pika's connection.

pika hands confirms to a callback on its underlying channel; such a callback
does not end a ``BlockingConnection.process_data_events`` wait early, so any
wait for confirms that asks pika for a long time limit sits out that limit
even when the confirms came at once (a full window of casts once stalled a
second each time). These tests pin that every such wait is a short slice.
"""

from __future__ import annotations

import contextlib
from types import SimpleNamespace
from typing import Any

import pika
import pytest

from podium.rpc._rabbit import callers
from podium.rpc._retry import BrokerUnavailable


class ConfirmingConnection:
    """Confirms one outstanding cast per ``process_data_events``, as the broker would."""

    def __init__(self, conn: callers.Conn, confirm: bool = True) -> None:
        self.conn = conn
        self.confirm = confirm
        self.time_limits: list[float | None] = []

    def process_data_events(self, time_limit: float | None = 0) -> None:
        self.time_limits.append(time_limit)
        if self.confirm and self.conn.unconfirmed:
            tag = min(self.conn.unconfirmed)
            frame = SimpleNamespace(method=pika.spec.Basic.Ack(delivery_tag=tag, multiple=False))
            self.conn._on_confirm(frame)


class Channel:
    def __init__(self) -> None:
        self.published = 0

    def basic_publish(self, *_args: Any, **_kwargs: Any) -> None:
        self.published += 1


def make_conn(confirm: bool = True) -> tuple[callers.Conn, ConfirmingConnection]:
    conn = object.__new__(callers.Conn)
    conn.driver = SimpleNamespace(orphans=[], pool=SimpleNamespace(closing=False))  # type: ignore[assignment]
    conn.unconfirmed = {}
    conn._cast_seq = 0
    conn._publishing = None
    fake = ConfirmingConnection(conn, confirm)
    conn.connection = fake  # type: ignore[assignment]
    return conn, fake


def cast(key: str = "topic") -> callers.Cast:
    return callers.Cast("openstack", key, b"{}", pika.BasicProperties(), mandatory=False)


def test_a_full_window_waits_for_confirms_in_short_slices() -> None:
    conn, fake = make_conn()
    channel = Channel()
    for _ in range(callers.CONFIRM_WINDOW * 2):
        conn.publish_cast(channel, cast())  # type: ignore[arg-type]
    assert channel.published == callers.CONFIRM_WINDOW * 2
    assert len(conn.unconfirmed) < callers.CONFIRM_WINDOW
    assert fake.time_limits, "a full window must wait for confirms"
    assert all(limit is not None and limit <= callers.CONFIRM_POLL for limit in fake.time_limits)


def test_flush_waits_in_short_slices_until_all_are_confirmed() -> None:
    conn, fake = make_conn()
    channel = Channel()
    for _ in range(10):
        conn.publish_cast(channel, cast())  # type: ignore[arg-type]
    conn.flush_casts(timeout=5)
    assert conn.unconfirmed == {}
    assert all(limit is not None and limit <= callers.CONFIRM_POLL for limit in fake.time_limits)


def test_a_wait_for_confirms_that_never_come_gives_up_at_its_timeout() -> None:
    conn, fake = make_conn(confirm=False)
    conn.publish_cast(Channel(), cast())  # type: ignore[arg-type]
    assert conn._wait_for_confirms(lambda: not conn.unconfirmed, timeout=0.05) is False
    assert len(conn.unconfirmed) == 1  # kept, to be sent again if the connection dies
    assert all(limit == callers.CONFIRM_POLL for limit in fake.time_limits)


class ConfirmingChannel:
    """Confirms each cast while it is being published.

    pika writes the message and, in the same turn of its loop, reads what the
    broker already sent: on a loaded machine the broker's confirm of this very
    cast can be read before ``basic_publish`` returns.
    """

    def __init__(self, conn: callers.Conn) -> None:
        self.conn = conn
        self.tag = 0

    def basic_publish(self, *_args: Any, **_kwargs: Any) -> None:
        self.tag += 1
        frame = SimpleNamespace(method=pika.spec.Basic.Ack(delivery_tag=self.tag, multiple=False))
        self.conn._on_confirm(frame)


def test_a_confirm_read_while_its_cast_is_being_published_is_not_lost() -> None:
    conn, _fake = make_conn(confirm=False)
    channel = ConfirmingChannel(conn)
    for _ in range(3):
        conn.publish_cast(channel, cast())  # type: ignore[arg-type]
    assert conn.unconfirmed == {}


class FailingChannel:
    def basic_publish(self, *_args: Any, **_kwargs: Any) -> None:
        raise pika.exceptions.ConnectionWrongStateError("Connection is closed.")


def test_a_cast_whose_publish_fails_is_left_to_the_caller_to_retry() -> None:
    # send() retries a failed publish itself: kept as unconfirmed as well, the
    # cast would also be sent again as an orphan, twice in all.
    conn, _fake = make_conn(confirm=False)
    with contextlib.suppress(pika.exceptions.ConnectionWrongStateError):
        conn.publish_cast(FailingChannel(), cast())  # type: ignore[arg-type]
    assert conn.unconfirmed == {}


REFUSED = pika.exceptions.ChannelClosedByBroker(
    403,
    "ACCESS_REFUSED - access to topic 'compute.h2' in exchange 'openstack' in vhost 'v' "
    "refused for user 'podium-compute.h1'",
)


class ClosingChannel(Channel):
    """The broker's close of an earlier cast arrives while this publish writes."""

    def __init__(self, conn: callers.Conn) -> None:
        super().__init__()
        self.conn = conn

    def basic_publish(self, *_args: Any, **_kwargs: Any) -> None:
        self.conn._on_cast_channel_closed(self, REFUSED)
        raise REFUSED


def test_a_cast_meeting_the_close_meant_for_an_earlier_refused_one_is_sent_again_once() -> None:
    conn, _fake = make_conn(confirm=False)
    conn.publish_cast(Channel(), cast("compute.h2"))  # refused by the broker, later
    conn.publish_cast(Channel(), cast("scheduler"))  # written in time, never confirmed
    with pytest.raises(BrokerUnavailable, match="closed for another cast"):
        conn.publish_cast(ClosingChannel(conn), cast("conductor"))
    # The refused one is dropped; the unconfirmed one goes again from the orphans;
    # the one being written goes again by its caller, and only so.
    assert [c.key for c in conn.driver.orphans] == ["scheduler"]
    assert conn.unconfirmed == {}


def test_a_cast_the_broker_refuses_while_it_is_written_is_refused_to_its_caller() -> None:
    conn, _fake = make_conn(confirm=False)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        conn.publish_cast(ClosingChannel(conn), cast("compute.h2"))
    assert conn.driver.orphans == [] and conn.unconfirmed == {}
