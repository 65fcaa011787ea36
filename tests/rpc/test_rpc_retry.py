"""The retry loop above the drivers (podium.rpc._retry), on its own and on memory:// outages.

The conformance suite (podium.testing.outages) checks calls, casts and
servers through outages on every transport; here the loop's own rules.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import pytest

from podium.exceptions import MessagingTimeout, TransportError
from podium.rpc import MemoryBroker, RPCServer, Target, get_transport
from podium.rpc._retry import BrokerUnavailable, Retrying


class Policy:
    """A driver's side of the loop: what is recoverable, how it reads."""

    max_backoff = 0.01
    broker_name = "the test broker"

    def is_recoverable(self, exc: BaseException) -> bool:
        return isinstance(exc, BrokerUnavailable)

    def describe_error(self, exc: BaseException) -> str:
        return str(exc)


class Failing:
    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "done"


def test_recoverable_failures_are_retried_until_the_action_succeeds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    action = Failing([BrokerUnavailable("away"), BrokerUnavailable("still away")])
    with caplog.at_level(logging.WARNING, logger="podium.rpc"):
        assert Retrying(Policy(), "cannot reach it", retry=2).run(action) == "done"
    assert action.calls == 3
    assert [r.getMessage().split(" in ")[0] for r in caplog.records] == [
        "cannot reach it: away; retry 1",
        "cannot reach it: still away; retry 2",
    ]


def test_a_failure_that_is_not_recoverable_is_raised_at_once() -> None:
    action = Failing([TransportError("refused for good"), BrokerUnavailable("away")])
    with pytest.raises(TransportError, match="refused for good"):
        Retrying(Policy(), "cannot reach it").run(action)
    assert action.calls == 1


def test_a_failure_past_the_deadline_is_the_callers_timeout_when_it_has_one() -> None:
    def late() -> None:
        raise BrokerUnavailable("cut at the deadline")

    timeout = MessagingTimeout("timed out")
    retrying = Retrying(
        Policy(), "cannot reach it", deadline=time.monotonic(), timed_out=lambda exc: timeout
    )
    with pytest.raises(MessagingTimeout) as raised:
        retrying.run(late)
    assert raised.value is timeout
    assert isinstance(raised.value.__cause__, BrokerUnavailable)


def test_progress_resets_the_count_and_the_limit() -> None:
    retrying = Retrying(Policy(), "cannot reach it", retry=1)
    failures = [BrokerUnavailable("1"), BrokerUnavailable("2"), BrokerUnavailable("3")]

    def progress_after_first() -> str:
        if retrying.attempts == 2 and len(failures) == 2:
            retrying.reset(retry=None)  # connected: retried for as long as it runs
        if failures:
            raise failures.pop(0)
        return "served"

    assert retrying.run(progress_after_first) == "served"


def test_connect_to_a_memory_bus_that_is_down_fails_within_the_timeout() -> None:
    broker, name = MemoryBroker(), uuid.uuid4().hex
    with get_transport(f"memory://{name}", broker=broker) as transport:
        with broker.outage(name), pytest.raises(TransportError) as raised:
            transport.connect(0.5)
        transport.connect(0.5)  # back: nothing to wait for
    assert str(raised.value).startswith(f"cannot connect to memory://{name}: ")
    assert str(raised.value).endswith("(gave up after 0.5 s, the connect_timeout)")


def test_a_server_started_while_its_bus_is_down_fails_after_connect_retries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker, name = MemoryBroker(), uuid.uuid4().hex
    endpoint: Any = object()
    with get_transport(f"memory://{name}?connect_retries=1", broker=broker) as transport:
        server = RPCServer(transport, Target(topic="t", server="a"), [endpoint])
        with (
            caplog.at_level(logging.WARNING, logger="podium.rpc"),
            broker.outage(name),
            pytest.raises(TransportError) as raised,
        ):
            server.start()
    assert str(raised.value) == (
        f"could not start consuming from memory://{name}: memory://{name} is stopped; "
        "2 attempts (gave up: retry=1)"
    )
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        f"server on t: not consuming from memory://{name}"
    ]


@pytest.mark.parametrize("value", ["0", "-1", "soon", "inf", "nan"])
def test_max_backoff_must_be_seconds(value: str) -> None:
    from podium.exceptions import InvalidTransportURL

    with pytest.raises(InvalidTransportURL, match="max_backoff must be a number of seconds"):
        get_transport(f"memory://?max_backoff={value}")
