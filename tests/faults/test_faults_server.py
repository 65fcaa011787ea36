"""Servers fail: SIGKILLed inside a handler under load, fed poison messages.

``tests/rpc/test_rpc_processes.py`` already has a server that exits inside
its handler while it is the only one, with a *cast*, on the shared broker,
and the request served by a server started afterwards. Here the victim is
SIGKILLed from outside while *calls* run on it and another server is up and
loaded, on the private node; and the poison messages go to a server process
with a single worker, which is then SIGKILLed and started again.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faults_helpers import (
    GRACE,
    Load,
    ServerProcesses,
    drain,
    queue_depth,
    raw_connection,
    summary,
    wait_until,
)
from faults_node import RabbitNode

from podium.exceptions import MessagingError
from podium.rpc import RPCClient, Target, get_transport
from podium.rpc import _codec as codec

pytestmark = [pytest.mark.faults, pytest.mark.rabbit]


@pytest.fixture
def servers(broker: RabbitNode, topic: str, tmp_path: Path) -> Iterator[ServerProcesses]:
    processes = ServerProcesses(broker.url, topic, tmp_path)
    yield processes
    processes.stop_all()


def test_server_killed_mid_handler_its_calls_complete_on_the_other(
    broker: RabbitNode, servers: ServerProcesses, topic: str
) -> None:
    servers.start("victim", max_workers=2)
    servers.start("survivor", max_workers=2)
    transport = get_transport(broker.url)
    load = Load(transport, topic, callers=2, timeout=10.0, casts=False)
    naps: dict[str, Any] = {}
    lock = threading.Lock()

    def nap(value: str) -> None:
        client = RPCClient(transport, Target(topic=topic), timeout=15)
        began = time.monotonic()
        for attempt in (1, 2):  # one retry, for a clear error instead of a result
            try:
                result = client.call({}, "nap", value=value, seconds=2.0)
            except MessagingError as exc:
                outcome: Any = f"{type(exc).__name__}: {exc}"
            except Exception as exc:
                outcome = exc
            else:
                outcome = result
            with lock:
                naps.setdefault(value, []).append((attempt, outcome, time.monotonic() - began))
            if isinstance(outcome, list):
                return

    nappers = [threading.Thread(target=nap, args=(f"nap-{i}",), daemon=True) for i in range(4)]
    try:
        load.start()
        load.wait_all_succeed_since(0.0, timeout=30, calls=5)
        for thread in nappers:
            thread.start()
        wait_until(
            lambda: any(s == "victim" and k == "start" for s, k, _v in servers.lines()),
            15,
            "a nap to start on the victim",
        )
        servers.kill("victim")  # SIGKILL: its requests are in hand, unacknowledged
        killed_at = time.monotonic()
        for thread in nappers:
            thread.join(40)
        recovered = load.wait_all_succeed_since(killed_at, timeout=30, calls=3)
    finally:
        stuck = load.stop(join_timeout=15)
        transport.cleanup()

    lines = servers.lines()
    on_victim = {v for s, k, v in lines if s == "victim" and k == "start"}
    done_on_victim = {v for s, k, v in lines if s == "victim" and k == "done"}
    interrupted = on_victim - done_on_victim
    finished_by_survivor = {v for s, k, v in lines if s == "survivor" and k == "done"}
    final = {value: attempts[-1][1] for value, attempts in naps.items()}
    failed_first = {v: a[0][1] for v, a in naps.items() if not isinstance(a[0][1], list)}
    summary(
        "server SIGKILLed mid-handler, 2 callers + 4 naps",
        naps_on_victim=len(on_victim),
        interrupted=len(interrupted),
        redelivered_to_survivor=len(interrupted & finished_by_survivor),
        naps_failed_first=len(failed_first),
        naps_answered=sum(isinstance(o, list) for o in final.values()),
        calls=len(load.of("call")),
        call_errors=load.errors("call"),
        hung=len(load.late("call", load.timeout + GRACE)) + len(stuck),
        foreign=len(load.foreign),
        recovered_s=recovered,
    )
    assert not any(t.is_alive() for t in nappers), "a nap call never returned"
    assert not stuck and not load.late("call", load.timeout + GRACE)
    assert not load.foreign, load.foreign[:5]
    assert interrupted, f"the victim finished its naps before it was killed: {lines}"
    # Every nap ends answered, directly or after one retry of a clear podium error.
    assert sorted(final) == [f"nap-{i}" for i in range(4)]
    assert all(isinstance(o, list) for o in final.values()), final
    assert all(isinstance(o, str) for o in failed_first.values()), failed_first
    # What the victim had in hand was given to the survivor, and ran there.
    for value in interrupted - set(failed_first):
        assert final[value] == ["survivor", value], (value, final[value])
    assert interrupted <= finished_by_survivor


#: Oversized for the server of the poison test, which reads at most this much.
MAX_BYTES = 64 * 1024


def _request(**fields: Any) -> bytes:
    return codec.encode({"method": "echo", "args": {"value": 1}, **fields})


#: Each kind of poison, and words the dead-letter reason (x-podium-reason) must hold.
POISON = {
    "undecodable body": (b"\xff\xfe\x00 not json at all", ("malformed", "not JSON")),
    "oversized body": (b'{"pad": "' + b"x" * (2 * MAX_BYTES) + b'"}', ("malformed", "exceeds")),
    "_msg_id over 255 bytes": (
        _request(_msg_id="m" * 300, _reply_q="reply_x", _unique_id="p-msg"),
        ("_msg_id", "255 bytes"),
    ),
    "_reply_q over 255 bytes": (
        _request(_msg_id="m-reply", _reply_q="r" * 300, _unique_id="p-reply"),
        ("_reply_q", "255 bytes"),
    ),
    "_msg_id not a string": (
        _request(_msg_id={"a": 1}, _reply_q="reply_x", _unique_id="p-type"),
        ("_msg_id", "not a string"),
    ),
    "_unique_id over 255 bytes": (_request(_unique_id="u" * 300), ("_unique_id", "255 bytes")),
}


def _publish(amqp_url: str, topic: str, bodies: list[bytes]) -> None:
    with contextlib.closing(raw_connection(amqp_url)) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        for body in bodies:
            ch.basic_publish("openstack", topic, body)


def test_poison_messages_are_dead_lettered_and_the_server_serves_on(
    broker: RabbitNode, servers: ServerProcesses, topic: str
) -> None:
    # One worker: a single delivery left unsettled would silence the server.
    servers.start("a", max_workers=1, max_message_bytes=MAX_BYTES)
    transport = get_transport(broker.url)
    client = RPCClient(transport, Target(topic=topic), timeout=10)
    dead_queue = f"{topic}.dead"
    try:
        _publish(broker.amqp_url, topic, [body for body, _reason in POISON.values()])
        answered = [client.call({}, "echo", value=i) for i in range(3)]
        wait_until(
            lambda: queue_depth(broker.amqp_url, dead_queue) >= len(POISON),
            15,
            "every poison message to reach the dead-letter queue",
        )
        dead = drain(broker.amqp_url, dead_queue)

        # SIGKILLed and started again, with poison waiting in its queue.
        servers.kill("a")
        _publish(broker.amqp_url, topic, [POISON["_msg_id over 255 bytes"][0]])
        servers.start("a", max_workers=1, max_message_bytes=MAX_BYTES)
        after_restart = client.call({}, "echo", value="after restart")
        wait_until(
            lambda: queue_depth(broker.amqp_url, dead_queue) >= 1,
            15,
            "the poison left in the queue to be dead-lettered",
        )
        dead_after_restart = drain(broker.amqp_url, dead_queue)
        left_in_queue = queue_depth(broker.amqp_url, topic)
    finally:
        transport.cleanup()

    reasons = {body: str(headers.get("x-podium-reason")) for headers, body in dead}
    summary(
        "poison messages, server max_workers=1",
        poisoned=len(POISON),
        dead_lettered=len(dead),
        dead_lettered_after_restart=len(dead_after_restart),
        left_in_queue=left_in_queue,
        answered=len(answered) + (after_restart == "after restart"),
    )
    assert answered == [0, 1, 2]
    assert after_restart == "after restart"
    assert sorted(reasons) == sorted(body for body, _r in POISON.values())
    for kind, (body, expected) in POISON.items():
        assert all(words in reasons[body] for words in expected), (kind, reasons[body])
    assert all(h.get("x-podium-queue") == topic for h, _b in dead), [h for h, _b in dead]
    assert [body for _h, body in dead_after_restart] == [POISON["_msg_id over 255 bytes"][0]]
    assert left_in_queue == 0
