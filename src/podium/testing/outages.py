"""What fails and what recovers when the broker goes away: the same on every transport.

:class:`OutageConformance` is the part of the transport conformance suite
that takes the broker away. Its ``flaky`` fixture gives a transport and a
context manager during which that transport's broker cannot be reached: on
``memory://`` the bus's own outage (:meth:`podium.rpc.MemoryBroker.outage`);
for another driver, override :meth:`OutageConformance.outage_of` (podium's
tests put RabbitMQ behind a proxy that cuts and refuses connections).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from podium.exceptions import MessagingError, TransportError
from podium.rpc import RPCClient, Target, Transport
from podium.testing.conformance import CTX, Recorder, serving

__all__ = ["Flaky", "OutageConformance"]


@dataclass
class Flaky:
    """A transport, and how to take its broker away for a while: ``with flaky.outage(): ...``."""

    transport: Transport
    outage: Callable[[], AbstractContextManager[None]]


def _retries(caplog: pytest.LogCaptureFixture, method: str) -> list[str]:
    """The retry warnings of sends of ``method``."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "podium.rpc" and f"cannot send {method!r}" in r.getMessage()
    ]


def _eventually(check: Callable[[], Any], what: str, seconds: float = 60.0) -> Any:
    """``check()``'s first true result, polled until ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except MessagingError as exc:
            last = exc
        else:
            if result:
                return result
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {seconds:g} s (last error: {last!r})")


class OutageConformance:
    """Calls and casts during an outage honour ``retry``; servers consume again after one."""

    @pytest.fixture
    def topic(self) -> str:
        import uuid

        return f"t-{uuid.uuid4().hex[:12]}"

    def outage_of(self, transport: Transport) -> AbstractContextManager[Flaky]:
        """A transport like ``transport`` whose broker can be taken away; skips the outage
        tests for a driver that does not say how. Override it for yours."""
        bus = getattr(transport.driver, "bus", None)
        if bus is None or not hasattr(bus, "outage"):
            pytest.skip("no way to take this driver's broker away: override outage_of()")

        @contextmanager
        def same() -> Iterator[Flaky]:
            yield Flaky(transport, bus.outage)

        return same()

    @pytest.fixture
    def flaky(self, transport: Transport) -> Iterator[Flaky]:
        with self.outage_of(transport) as flaky:
            yield flaky

    @pytest.fixture(autouse=True)
    def _warnings(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO, logger="podium.rpc")

    def test_a_call_with_retry_0_fails_at_once(
        self, flaky: Flaky, topic: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        with serving(flaky.transport, topic, [Recorder()]):
            # A first call, on no connection yet: a call on a connection that died
            # unnoticed may have gone out (test_a_call_waiting_for_its_reply...).
            client = RPCClient(flaky.transport, Target(topic=topic), timeout=60, retry=0)
            with flaky.outage(), pytest.raises(TransportError) as failure:
                client.call(CTX, "echo", value=2)
        assert str(failure.value).endswith("; 1 attempt (gave up: retry=0)")
        assert _retries(caplog, "echo") == []

    def test_a_call_with_retry_n_fails_after_n_retries(
        self, flaky: Flaky, topic: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        with serving(flaky.transport, topic, [Recorder()]):
            # A first call, on no connection yet: a call on a connection that died
            # unnoticed may have gone out (test_a_call_waiting_for_its_reply...).
            client = RPCClient(flaky.transport, Target(topic=topic), timeout=60, retry=2)
            with flaky.outage(), pytest.raises(TransportError) as failure:
                client.call(CTX, "echo", value=2)
        assert str(failure.value).endswith("; 3 attempts (gave up: retry=2)")
        warned = _retries(caplog, "echo")
        assert [m.split("; retry ")[1][:1] for m in warned] == ["1", "2"]
        with serving(flaky.transport, topic, [Recorder()]):
            assert client.call(CTX, "echo", value=3) == 3  # the broker back, calls go again

    def test_a_cast_with_retry_none_is_delivered_once_the_broker_is_back(
        self, flaky: Flaky, topic: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        endpoint = Recorder()
        with serving(flaky.transport, topic, [endpoint]):
            client = RPCClient(flaky.transport, Target(topic=topic), timeout=60)
            client.cast(CTX, "record", value="before")
            assert endpoint.cast_done.wait(30)
            endpoint.cast_done.clear()
            sent: list[BaseException | None] = []

            def cast() -> None:
                try:
                    client.cast(CTX, "record", value="during")
                except BaseException as exc:
                    sent.append(exc)
                else:
                    sent.append(None)

            with flaky.outage():
                caster = threading.Thread(target=cast)
                caster.start()
                _eventually(lambda: _retries(caplog, "record"), "a retry while the broker is away")
            caster.join(60)
            assert sent == [None]
            assert endpoint.cast_done.wait(30)
        assert endpoint.seen == [("record", "before"), ("record", "during")]

    def test_a_call_waiting_for_its_reply_when_the_broker_goes_is_told_so(
        self, flaky: Flaky, topic: str
    ) -> None:
        endpoint = Recorder()
        with serving(flaky.transport, topic, [endpoint]) as server:
            client = RPCClient(flaky.transport, Target(topic=topic), timeout=60)
            failed: list[BaseException] = []

            def call() -> None:
                try:
                    client.call(CTX, "slow", tag="cut")
                except BaseException as exc:
                    failed.append(exc)

            caller = threading.Thread(target=call)
            caller.start()
            _eventually(lambda: server._inflight, "the request running")
            with flaky.outage():
                caller.join(60)
            endpoint.release.set()
        assert len(failed) == 1 and isinstance(failed[0], TransportError), failed
        assert "may or may not have run" in str(failed[0])

    def test_a_server_consumes_again_after_an_outage(
        self, flaky: Flaky, topic: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        with serving(flaky.transport, topic, [Recorder("a")], server="a"):
            client = RPCClient(flaky.transport, Target(topic=topic, server="a"), timeout=10)
            assert client.call(CTX, "whoami") == "a"
            lost = f"server on {topic}: not consuming from"
            with flaky.outage():
                _eventually(
                    lambda: any(lost in r.getMessage() for r in caplog.records),
                    "the server noticing it lost the broker",
                )
            assert _eventually(lambda: client.call(CTX, "whoami"), "served again") == "a"
            back = f"server on {topic}: connected to"
            _eventually(lambda: any(back in r.getMessage() for r in caplog.records), "said so")
