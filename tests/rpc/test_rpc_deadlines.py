"""A call's deadline holds while the broker does not answer.

A frozen broker (stopped, swapping, partitioned) keeps its connections open
and answers nothing. Every broker operation on a call's path (a new
connection, a channel, the consumer check, the publish, the wait for the
reply) must end by the call's deadline, with a podium error.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pika
import pytest
from freezable_proxy import FreezableProxy
from rpc_helpers import delete_queues

from podium.exceptions import MessagingError, MessagingTimeout
from podium.rpc import RPCClient, RPCServer, Target, get_transport

pytestmark = pytest.mark.rabbit

# What a deadline may be overrun by: the call's own clean-up after it.
SLACK = 1.0


class Echo:
    def echo(self, ctxt: Any, value: Any) -> Any:
        return value


@pytest.fixture
def proxy(rabbit_url: str) -> Iterator[FreezableProxy]:
    proxy = FreezableProxy(("127.0.0.1", urlsplit(rabbit_url).port or 5672))
    yield proxy
    proxy.close()


def through(proxy: FreezableProxy, rabbit_url: str) -> str:
    parts = urlsplit(rabbit_url)
    return f"rabbit://guest:guest@127.0.0.1:{proxy.port}{parts.path}"


def timed_call(client: RPCClient, **kwargs: Any) -> tuple[float, BaseException | None]:
    started = time.monotonic()
    try:
        client.call({}, "echo", **kwargs)
    except Exception as exc:
        return time.monotonic() - started, exc
    return time.monotonic() - started, None


@pytest.fixture
def served_topic(rabbit_url: str, topic: str) -> Iterator[str]:
    server_transport = get_transport(rabbit_url)  # straight to the broker: never frozen
    with RPCServer(server_transport, Target(topic=topic), [Echo()], max_workers=2):
        yield topic
    server_transport.cleanup()
    delete_queues(rabbit_url, [topic, f"{topic}.dead"])


def test_calls_on_open_connections_end_by_their_deadline(
    proxy: FreezableProxy, rabbit_url: str, served_topic: str
) -> None:
    transport = get_transport(through(proxy, rabbit_url))
    try:
        client = RPCClient(transport, Target(topic=served_topic), timeout=2)
        assert client.call({}, "echo", value=1) == 1  # a warm, pooled connection
        proxy.freeze()
        # The consumer check is cached for two seconds: past it, the call asks
        # the broker again, the step that used to wait for the heartbeat.
        time.sleep(2.1)
        for _ in range(2):
            elapsed, error = timed_call(client, value=2)
            assert isinstance(error, MessagingTimeout), error
            assert elapsed < 2 + SLACK
        proxy.thaw()
        assert client.call({}, "echo", value=3) == 3
    finally:
        proxy.thaw()
        transport.cleanup()


def test_a_first_call_while_the_broker_is_frozen_ends_by_its_deadline(
    proxy: FreezableProxy, rabbit_url: str, served_topic: str
) -> None:
    proxy.freeze()
    transport = get_transport(through(proxy, rabbit_url))
    try:
        client = RPCClient(transport, Target(topic=served_topic), timeout=2)
        elapsed, error = timed_call(client, value=1)
        # It never reached the broker: a timeout or "cannot connect", never a
        # raw pika error, and never pika's own 15 s.
        assert isinstance(error, MessagingError), repr(error)
        assert elapsed < 2 + SLACK
        proxy.thaw()
        assert client.call({}, "echo", value=2) == 2
    finally:
        proxy.thaw()
        transport.cleanup()


def test_casts_while_the_broker_is_frozen_end_by_their_deadline(
    proxy: FreezableProxy, rabbit_url: str, served_topic: str
) -> None:
    transport = get_transport(through(proxy, rabbit_url))
    try:
        client = RPCClient(transport, Target(topic=served_topic, server="nobody"), timeout=2)
        proxy.freeze()
        started = time.monotonic()
        with pytest.raises(MessagingError):
            client.cast({}, "echo", value=1)  # the server's queue must be checked first
        assert time.monotonic() - started < 2 + SLACK
    finally:
        proxy.thaw()
        transport.cleanup()


class Once:
    """Counts runs by request id: an idempotent server's view of a resent call."""

    def __init__(self) -> None:
        self.ids: list[str | None] = []

    def slow(self, ctxt: Any, seconds: float) -> str:
        from podium.rpc import current_message_id

        self.ids.append(current_message_id())
        time.sleep(seconds)
        return "done"


@pytest.mark.parametrize("idempotent", [False, True])
def test_a_call_whose_connection_is_lost_after_sending_is_resent_only_when_idempotent(
    rabbit_url: str, topic: str, idempotent: bool
) -> None:
    import threading

    from podium.exceptions import TransportError

    once = Once()
    server_transport = get_transport(rabbit_url)
    caller = get_transport(rabbit_url)
    try:
        with RPCServer(server_transport, Target(topic=topic), [once], max_workers=2):
            client = RPCClient(caller, Target(topic=topic), timeout=10)
            client.call({}, "slow", seconds=0)  # warm: a pooled connection to cut
            once.ids.clear()
            client = client.prepare(idempotent=idempotent)
            conn = caller.driver.pool._idle[-1]  # type: ignore[attr-defined]
            # Cut the caller's connection while the server runs the request.
            lost = pika.exceptions.StreamLostError("cut by the test")
            threading.Timer(
                0.3,
                lambda: conn.connection.add_callback_threadsafe(
                    lambda: conn.connection._impl._terminate_stream(lost)
                ),
            ).start()
            if idempotent:
                assert client.call({}, "slow", seconds=1) == "done"
                # Sent again with the same id, the server's de-dup answered the
                # second delivery from the first run: it ran once.
                assert len(once.ids) == 1 and once.ids[0] is not None
            else:
                with pytest.raises(TransportError, match="may or may not have run"):
                    client.call({}, "slow", seconds=1)
    finally:
        caller.cleanup()
        server_transport.cleanup()
        delete_queues(rabbit_url, [topic, f"{topic}.dead"])
