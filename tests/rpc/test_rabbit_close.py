"""Closing a pika connection frees its loop's socket pair, however the close came about.

pika frees a BlockingConnection's loop only when its own flush sees the
connection close; a close it saw elsewhere (a callback raising in the same
poll, the stream cut from outside) leaves the loop's two sockets open, and
the garbage collector finds them later in some other test.
"""

from __future__ import annotations

import time

import pika
import pika.exceptions as pex
import pytest

from podium.rpc._rabbit.amqp import close_connection

pytestmark = pytest.mark.rabbit


def _connect(rabbit_url: str) -> pika.BlockingConnection:
    return pika.BlockingConnection(
        pika.URLParameters(rabbit_url.replace("rabbit://", "amqp://", 1))
    )


def _interrupt_pair_open(connection: pika.BlockingConnection) -> bool:
    return connection._impl.ioloop._poller._r_interrupt is not None


def test_a_connection_that_closed_outside_pikas_flush_is_freed(rabbit_url: str) -> None:
    connection = _connect(rabbit_url)
    impl = connection._impl
    impl._terminate_stream(pex.StreamLostError("cut from outside"))
    deadline = time.monotonic() + 10
    while not connection.is_closed and time.monotonic() < deadline:
        impl.ioloop.poll()
        impl.ioloop.process_timeouts()
    assert connection.is_closed and _interrupt_pair_open(connection)
    close_connection(connection, grace=1.0)
    assert not _interrupt_pair_open(connection)


@pytest.mark.parametrize("how", ["open", "closed by pika's flush"])
def test_every_other_connection_is_freed_too(rabbit_url: str, how: str) -> None:
    connection = _connect(rabbit_url)
    if how != "open":
        connection._impl._terminate_stream(pex.StreamLostError("broker gone"))
        with pytest.raises(pex.StreamLostError):
            connection.process_data_events(time_limit=1)
    close_connection(connection, grace=1.0)
    assert connection.is_closed and not _interrupt_pair_open(connection)
    close_connection(connection, grace=1.0)  # twice is harmless
