"""RabbitMQ misbehaving: garbage on the queue, redeliveries, connections cut under load."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pytest
from rpc_helpers import serve

from podium.exceptions import MessagingError
from podium.rpc import RPCClient, RPCServer, Target, Transport, get_transport
from podium.rpc import _codec as codec

pytestmark = pytest.mark.rabbit

VHOST = "podium-rpc-robustness"


class Sink:
    def __init__(self) -> None:
        self.seen: list[Any] = []

    def echo(self, ctxt: Any, value: Any) -> Any:
        return value

    def record(self, ctxt: Any, value: Any) -> None:
        self.seen.append(value)


def _raw_channel(url: str) -> Any:
    params = pika.URLParameters(url.replace("rabbit://", "amqp://", 1))
    return pika.BlockingConnection(params)


@pytest.fixture
def rabbit(rabbit_url: str, topic: str) -> Iterator[Transport]:
    from rpc_helpers import delete_queues

    t = get_transport(rabbit_url, max_message_bytes=64 * 1024)
    yield t
    t.cleanup()
    delete_queues(rabbit_url, [topic, f"{topic}.a", f"{topic}.dead"])


def test_garbage_is_rejected_and_the_server_keeps_serving(
    rabbit: Transport, rabbit_url: str, topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="podium.rpc")
    garbage = [
        b"\xff\xfe\x00 not json at all",
        b"[1, 2, 3]",
        b'{"oslo.version": "9.0", "oslo.message": "{}"}',
        b'{"oslo.version": "2.0", "oslo.message": "{broken"}',
        b"{" + b" " * (128 * 1024) + b"}",  # over the 64 KiB limit of this transport
    ]
    with RPCServer(rabbit, Target(topic=topic, server="a"), [Sink()], max_workers=2):
        with contextlib.closing(_raw_channel(rabbit_url)) as conn:
            ch = conn.channel()
            for body in garbage:
                ch.basic_publish("openstack", topic, body)
            # Well-formed JSON, wrong shape: answered with an error, not a crash.
            shape = codec.encode({"method": 5, "args": "nope", "_unique_id": "u-shape"})
            ch.basic_publish("openstack", topic, shape)
        client = RPCClient(rabbit, Target(topic=topic), timeout=10)
        assert client.call({}, "echo", value="alive") == "alive"
    rejected = [r for r in caplog.records if "malformed message" in r.getMessage()]
    assert len(rejected) == len(garbage)  # each once: set aside, never requeued in a loop
    with contextlib.closing(_raw_channel(rabbit_url)) as conn:
        assert conn.channel().queue_declare(topic, passive=True).method.message_count == 0


def test_redelivered_message_runs_once(rabbit: Transport, rabbit_url: str, topic: str) -> None:
    sink = Sink()
    body = codec.encode({"method": "record", "args": {"value": 1}, "_unique_id": "dup-1"})
    with RPCServer(rabbit, Target(topic=topic, server="a"), [sink], max_workers=1):
        with contextlib.closing(_raw_channel(rabbit_url)) as conn:
            ch = conn.channel()
            ch.basic_publish("openstack", topic, body)
            ch.basic_publish("openstack", topic, body)
        # One worker: this call is served after both copies were taken.
        RPCClient(rabbit, Target(topic=topic), timeout=10).call({}, "echo", value=0)
    assert sink.seen == [1]


def _ctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def vhost_url(rabbit_url: str) -> Iterator[str]:
    """A vhost of our own, so cutting its connections disturbs nobody else."""
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not available to cut connections")
    with contextlib.suppress(subprocess.CalledProcessError):
        _ctl("add_vhost", VHOST)
    _ctl("set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*")
    # rabbit_url may name the session's vhost already: swap it for ours.
    yield rabbit_url.rsplit("/", 1)[0] + "/" + VHOST
    with contextlib.suppress(subprocess.CalledProcessError):
        _ctl("delete_vhost", VHOST)


def test_connections_cut_under_load_fail_cleanly_and_recover(vhost_url: str) -> None:
    topic = f"cut-{uuid.uuid4().hex[:8]}"
    spawn = multiprocessing.get_context("spawn")
    ready, stop, events = spawn.Event(), spawn.Event(), spawn.Queue()
    server = spawn.Process(target=serve, args=(vhost_url, topic, "a", events, ready, stop))
    server.start()
    assert ready.wait(30)
    transport = get_transport(vhost_url)
    outcomes: list[str] = []
    unexpected: list[BaseException] = []
    progress = threading.Semaphore(0)
    cut = threading.Event()
    recovered: set[int] = set()
    lock = threading.Lock()

    def caller(n: int) -> None:
        client = RPCClient(transport, Target(topic=topic), timeout=5)
        deadline = time.monotonic() + 45
        i = 0
        while time.monotonic() < deadline:
            i += 1
            try:
                if client.call({}, "echo", value=[n, i]) != [n, i]:
                    raise AssertionError("a reply went to the wrong caller")
                outcome = "ok"
            except MessagingError as exc:
                outcome = type(exc).__name__
            except BaseException as exc:
                unexpected.append(exc)
                return
            with lock:
                outcomes.append(outcome)
            progress.release()
            if cut.is_set() and outcome == "ok":
                with lock:
                    recovered.add(n)
                return

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(6)]
    try:
        for t in threads:
            t.start()
        for _ in range(30):  # the load is running
            assert progress.acquire(timeout=30)
        _ctl("close_all_connections", "--vhost", VHOST, "--limit", "1000", "podium test")
        cut.set()
        for t in threads:
            t.join(90)
        assert not any(t.is_alive() for t in threads), "a caller hung"
    finally:
        cut.set()
        stop.set()
        server.join(30)
        if server.is_alive():
            server.kill()
        transport.cleanup()
    assert not unexpected, unexpected
    # Every caller works again after the cut (none is left with a dead reply path).
    assert recovered == set(range(6)), outcomes
    # Every call either completed or failed with a clear podium error.
    assert set(outcomes) <= {"ok", "TransportError", "NoConsumer", "MessagingTimeout"}


class Sleeper:
    def nap(self, ctxt: Any, seconds: float) -> float:
        time.sleep(seconds)  # a long handler: its worker's connection must stay alive
        return seconds


def test_heartbeats_survive_long_handlers_and_idle_pools(
    rabbit_url: str, topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    from rpc_helpers import delete_queues

    caplog.set_level(logging.INFO, logger="podium.rpc")
    # A 1 s heartbeat: the broker drops a connection silent for about 2 s.
    transport = get_transport(rabbit_url + "?heartbeat=1")
    try:
        with RPCServer(transport, Target(topic=topic, server="a"), [Sleeper()], max_workers=1):
            client = RPCClient(transport, Target(topic=topic), timeout=30)
            assert client.call({}, "nap", seconds=0) == 0
            pooled = list(transport.driver.pool._idle)  # type: ignore[attr-defined]
            assert client.call({}, "nap", seconds=4) == 4
            time.sleep(4)  # the pooled connections sit idle
            assert client.call({}, "nap", seconds=0) == 0
            still = transport.driver.pool._idle  # type: ignore[attr-defined]
            assert pooled and all(conn in still and conn.usable for conn in pooled)
    finally:
        transport.cleanup()
        delete_queues(rabbit_url, [topic, f"{topic}.a"])
    lost = [r.getMessage() for r in caplog.records if "lost" in r.getMessage()]
    assert not lost


class Counter:
    def __init__(self) -> None:
        self.values: list[int] = []
        self.cond = threading.Condition()

    def tick(self, ctxt: Any, i: int) -> None:
        with self.cond:
            self.values.append(i)
            self.cond.notify_all()


def test_casts_are_confirmed_before_the_transport_closes(rabbit_url: str, topic: str) -> None:
    from rpc_helpers import delete_queues

    counter = Counter()
    server_transport = get_transport(rabbit_url)
    try:
        with RPCServer(server_transport, Target(topic=topic, server="a"), [counter], max_workers=2):
            caster = get_transport(rabbit_url)
            client = RPCClient(caster, Target(topic=topic))
            for i in range(500):
                client.cast({}, "tick", i=i)
            # Casts return once written; closing waits for the broker's confirms.
            caster.cleanup()
            assert not caster.driver.orphans  # type: ignore[attr-defined]
            with counter.cond:
                assert counter.cond.wait_for(lambda: len(set(counter.values)) == 500, 30)
    finally:
        server_transport.cleanup()
        delete_queues(rabbit_url, [topic, f"{topic}.a"])


def test_a_server_whose_queues_are_deleted_declares_them_again(
    rabbit: Transport, rabbit_url: str, topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    # An operator deletes the queues (management UI, a botched clean-up): the
    # broker cancels the consumers, and the server must not go deaf.
    from rpc_helpers import delete_queues

    caplog.set_level(logging.WARNING, logger="podium.rpc")
    with RPCServer(rabbit, Target(topic=topic, server="a"), [Sink()], max_workers=2):
        client = RPCClient(rabbit, Target(topic=topic, server="a"), timeout=10)
        assert client.call({}, "echo", value=1) == 1
        delete_queues(rabbit_url, [topic, f"{topic}.a"])
        deadline = time.monotonic() + 15
        while True:
            try:
                assert client.call({}, "echo", value=2) == 2
                break
            except MessagingError:  # NoConsumer until the queues are back
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert RPCClient(rabbit, Target(topic=topic), timeout=10).call({}, "echo", value=3) == 3
    assert any("cancelled" in r.getMessage() for r in caplog.records)


def test_cast_whose_queue_vanished_since_it_was_checked_is_logged(
    rabbit_url: str, topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    from rpc_helpers import delete_queues

    caplog.set_level(logging.ERROR, logger="podium.rpc")
    server_transport = get_transport(rabbit_url)
    with RPCServer(server_transport, Target(topic=topic, server="a"), [Counter()]):
        pass
    server_transport.cleanup()
    transport = get_transport(rabbit_url)
    client = RPCClient(transport, Target(topic=topic, server="a"))
    client.cast({}, "tick", i=1)  # the queue exists: checked, and cached for a while
    delete_queues(rabbit_url, [f"{topic}.a"])
    client.cast({}, "tick", i=2)  # within the cache: published, returned unroutable
    transport.cleanup()  # processes the broker's return and confirm
    delete_queues(rabbit_url, [topic])
    assert any(f"{topic}.a" in r.getMessage() for r in caplog.records)


def test_failover_to_the_next_host_in_the_url(rabbit_url: str, topic: str) -> None:
    from rpc_helpers import delete_queues

    # Port 1 refuses connections: every connection must fail over to the real broker.
    dead_first = rabbit_url.replace("@127.0.0.1:5672", "@127.0.0.1:1,guest:guest@127.0.0.1:5672")
    assert dead_first != rabbit_url
    transport = get_transport(dead_first)
    try:
        with RPCServer(transport, Target(topic=topic, server="a"), [Sink()], max_workers=2):
            client = RPCClient(transport, Target(topic=topic), timeout=10)
            assert [client.call({}, "echo", value=i) for i in range(5)] == list(range(5))
    finally:
        transport.cleanup()
        delete_queues(rabbit_url, [topic, f"{topic}.a"])


@pytest.mark.rabbit
def test_refused_credentials_fail_at_once_instead_of_retrying(
    rabbit_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from podium.exceptions import TransportError

    wrong = rabbit_url.replace("guest:guest@", "guest:wrong-password@", 1)
    assert wrong != rabbit_url
    with get_transport(wrong) as transport:
        with pytest.raises(TransportError, match="ACCESS_REFUSED"):
            RPCClient(transport, Target(topic="nobody"), timeout=30).call({}, "echo", value=1)
        server = RPCServer(transport, Target(topic="nobody", server="a"), [object()])
        with pytest.raises(TransportError, match="ACCESS_REFUSED"):
            server.start()
    assert not [r for r in caplog.records if "retrying" in r.getMessage()]


def test_casts_left_unconfirmed_by_a_lost_connection_are_sent_at_close(
    rabbit_url: str, topic: str
) -> None:
    # A broker restart took every pooled connection with the casts they had
    # not had confirmed: closing the transport still sends them, on a new one.
    import pika as pika_

    from podium.rpc._rabbit import RabbitDriver
    from podium.rpc._rabbit.callers import Cast

    with contextlib.closing(_raw_channel(rabbit_url)) as conn:
        conn.channel().queue_declare(topic, durable=True)
    transport = get_transport(rabbit_url)
    driver = transport.driver
    assert isinstance(driver, RabbitDriver)
    body = codec.encode({"method": "record", "args": {"value": 1}, "_unique_id": "orphan-1"})
    props = pika_.BasicProperties(delivery_mode=2)
    driver.orphans.append(Cast("", topic, body, props, mandatory=False))
    transport.cleanup()
    assert not driver.orphans
    with contextlib.closing(_raw_channel(rabbit_url)) as conn:
        method, _props, received = conn.channel().basic_get(topic, auto_ack=True)
    assert method is not None and received == body
    from rpc_helpers import delete_queues

    delete_queues(rabbit_url, [topic])
