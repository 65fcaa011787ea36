"""The broker itself fails under load: stopped, SIGKILLed, frozen.

Each test prints one ``FAULTS ...`` line with its counts (``pytest -s``) and
asserts on counts, never on how fast things went, except for the bound the
reliability issue sets on every call: its deadline plus one second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from faults_helpers import GRACE, Load, ServerProcesses, poll, summary, wait_until
from faults_node import RESTARTING_TEST_TIMEOUT, RabbitNode

from podium.exceptions import MessagingError
from podium.rpc import RPCClient, Target, get_transport

pytestmark = [pytest.mark.faults, pytest.mark.rabbit]


@pytest.fixture
def servers(broker: RabbitNode, topic: str, tmp_path: Path) -> Iterator[ServerProcesses]:
    # Servers retry every second at most: the broker comes back within a few.
    processes = ServerProcesses(broker.url + "?max_backoff=1", topic, tmp_path)
    yield processes
    processes.stop_all()


@pytest.mark.timeout(RESTARTING_TEST_TIMEOUT)
def test_broker_stopped_and_killed_under_load_loses_and_hangs_nothing(
    broker: RabbitNode, servers: ServerProcesses, topic: str
) -> None:
    servers.start("a")
    servers.start("b")
    transport = get_transport(broker.url + "?max_backoff=1")
    load = Load(transport, topic, callers=4, timeout=10.0, casts=True)
    timings: dict[str, float] = {}
    try:
        load.start()
        load.wait_all_succeed_since(0.0, timeout=30, calls=5)

        began = time.monotonic()
        broker.stop()  # clean: rabbitmqctl stop
        broker.start()
        timings["restart"] = time.monotonic() - began
        timings["recovered_after_restart"] = load.wait_all_succeed_since(
            time.monotonic(), timeout=30, calls=3
        )

        began = time.monotonic()
        broker.kill()  # SIGKILL of the beam process, then started again
        timings["kill"] = time.monotonic() - began
        timings["recovered_after_kill"] = load.wait_all_succeed_since(
            time.monotonic(), timeout=30, calls=3
        )
    finally:
        stuck = load.stop(join_timeout=load.timeout + GRACE + 5)
        # Closing waits for the broker to confirm every cast (and resends orphans).
        transport.cleanup()

    sent = list(load.sent)
    # Counted either way: a cast that never comes shows as lost below.
    poll(lambda: set(sent) <= set(servers.values("cast")), 20)
    received = servers.values("cast")
    lost = [v for v in sent if v not in received]
    # A cast the broker never confirmed before its connection died is sent
    # again; both copies may run, on two servers (de-duplication is per process).
    doubled = sorted(v for v, n in received.items() if n > 1)
    doubled_in_one_process = servers.repeated_in_one_log("cast")
    calls, casts = load.of("call"), load.of("cast")
    hung_calls = load.late("call", load.timeout + GRACE)
    hung_casts = load.late("cast", load.timeout + GRACE)
    summary(
        "broker stop+start and SIGKILL, 4 callers x 2 servers",
        calls=len(calls),
        calls_ok=sum(o.error is None for o in calls),
        call_errors=load.errors("call"),
        casts=len(casts),
        casts_sent=len(sent),
        cast_errors=load.errors("cast"),
        lost=len(lost),
        doubled=len(doubled),
        doubled_in_one_process=len(doubled_in_one_process),
        hung=len(hung_calls) + len(hung_casts) + len(stuck),
        foreign=len(load.foreign),
        wrong_replies=len(load.wrong_replies),
        max_call_s=max(o.seconds for o in calls),
        max_cast_s=max(o.seconds for o in casts),
        **timings,
    )
    assert not stuck, f"callers still blocked when the load stopped: {stuck}"
    assert not load.foreign, f"non-podium exceptions: {load.foreign[:5]!r}"
    assert not hung_calls, f"calls past their deadline + {GRACE}s: {hung_calls[:5]}"
    assert not hung_casts, f"casts past their deadline + {GRACE}s: {hung_casts[:5]}"
    assert not load.wrong_replies, load.wrong_replies[:5]
    assert not lost, f"{len(lost)} of {len(sent)} sent casts never arrived: {lost[:10]}"
    # Each server process drops a redelivery it has seen (by the cast's unique id).
    assert not doubled_in_one_process, f"ran twice by one server: {doubled_in_one_process}"


def test_frozen_broker_every_call_returns_by_its_deadline(
    broker: RabbitNode, servers: ServerProcesses, topic: str
) -> None:
    timeout = 3.0
    servers.start("a")
    servers.start("b")
    transport = get_transport(broker.url)
    load = Load(transport, topic, callers=4, timeout=timeout, casts=False)
    newcomer: dict[str, object] = {}

    def new_client_while_frozen() -> None:
        # A client that must open its first connection to the frozen node.
        began = time.monotonic()
        fresh = get_transport(broker.url)
        try:
            client = RPCClient(fresh, Target(topic=topic), timeout=timeout)
            newcomer["result"] = client.call({}, "echo", value="newcomer")
        except MessagingError as exc:
            newcomer["error"] = f"{type(exc).__name__}: {exc}"
        except Exception as exc:
            newcomer["foreign"] = exc
        finally:
            newcomer["seconds"] = time.monotonic() - began
            closing = time.monotonic()
            fresh.cleanup()
            newcomer["cleanup_seconds"] = time.monotonic() - closing

    try:
        load.start()
        load.wait_all_succeed_since(0.0, timeout=30, calls=5)
        newcomer_thread = threading.Thread(target=new_client_while_frozen, daemon=True)
        with broker.frozen_for_a_while():
            frozen_at = time.monotonic()
            newcomer_thread.start()
            # The fault lasts this long: a timed freeze, not a synchronisation.
            time.sleep(8.0)
        thawed_at = time.monotonic()
        newcomer_thread.join(timeout + GRACE + 10)
        recovered = load.wait_all_succeed_since(thawed_at, timeout=30, calls=3)
    finally:
        stuck = load.stop(join_timeout=timeout + GRACE + 5)
        transport.cleanup()

    calls = load.of("call")
    during = [o for o in calls if o.started + o.seconds >= frozen_at and o.started <= thawed_at]
    hung = load.late("call", timeout + GRACE)
    summary(
        "broker frozen 8s, calls timeout=3",
        calls=len(calls),
        during_freeze=len(during),
        during_ok=sum(o.error is None for o in during),
        call_errors=load.errors("call"),
        hung=len(hung) + len(stuck),
        foreign=len(load.foreign),
        max_call_s=max(o.seconds for o in calls),
        recovered_after_thaw_s=recovered,
        newcomer_s=newcomer.get("seconds", float("nan")),
        newcomer_cleanup_s=newcomer.get("cleanup_seconds", float("nan")),
        newcomer=newcomer.get("error") or newcomer.get("result") or newcomer.get("foreign"),
    )
    assert not stuck, f"callers still blocked when the load stopped: {stuck}"
    assert not load.foreign, f"non-podium exceptions: {load.foreign[:5]!r}"
    assert not hung, f"calls past {timeout}s + {GRACE}s: {[round(o.seconds, 2) for o in hung]}"
    assert during, "no call overlapped the freeze"
    assert "seconds" in newcomer, "the client created during the freeze never returned"
    assert "foreign" not in newcomer, f"non-podium exception: {newcomer['foreign']!r}"
    assert "error" in newcomer, f"a call answered by a frozen broker? {newcomer}"
    assert newcomer["seconds"] <= timeout + GRACE, (
        f"a new client's first call took {newcomer['seconds']:.1f}s "
        f"(timeout {timeout}s): {newcomer['error']}"
    )


@pytest.mark.timeout(RESTARTING_TEST_TIMEOUT)
def test_no_call_waits_on_a_broker_that_is_down(
    broker: RabbitNode, servers: ServerProcesses, topic: str
) -> None:
    """While the node is stopped, calls fail by their deadline and work once it is back."""
    timeout = 2.0
    servers.start("a")
    transport = get_transport(broker.url + "?max_backoff=1")
    client = RPCClient(transport, Target(topic=topic), timeout=timeout)
    try:
        assert client.call({}, "echo", value=0) == 0
        broker.stop()
        durations, errors = [], []
        for i in range(3):
            began = time.monotonic()
            try:
                client.call({}, "echo", value=i)
                errors.append("answered")
            except MessagingError as exc:
                errors.append(type(exc).__name__)
            durations.append(time.monotonic() - began)
        broker.start()
        wait_until(lambda: _answers(client), 30, "the server to serve again")
    finally:
        transport.cleanup()
    summary(
        "broker down, calls timeout=2",
        errors=",".join(errors),
        max_call_s=max(durations),
    )
    assert "answered" not in errors
    assert max(durations) <= timeout + GRACE, durations


def _answers(client: RPCClient) -> bool:
    try:
        return bool(client.call({}, "echo", value="back") == "back")
    except MessagingError:
        return False
