"""RPC between processes over the real RabbitMQ: servers run in spawned children."""

from __future__ import annotations

import multiprocessing
import queue
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from rpc_helpers import SERVERS, delete_queues, serve

from podium.context import RequestContext
from podium.exceptions import NotFound
from podium.rpc import RPCClient, Target, Transport, get_transport

pytestmark = pytest.mark.rabbit

CTX = RequestContext(user_id="u")
SPAWN = multiprocessing.get_context("spawn")


class Servers:
    def __init__(self, url: str, topic: str) -> None:
        self.url = url
        self.topic = topic
        self.events: Any = SPAWN.Queue()
        self.procs: list[tuple[Any, Any]] = []

    def start(self, server: str, wait: bool = True) -> Any:
        ready, stop = SPAWN.Event(), SPAWN.Event()
        proc = SPAWN.Process(
            target=serve, args=(self.url, self.topic, server, self.events, ready, stop)
        )
        proc.start()
        if wait:
            assert ready.wait(30), f"server {server} did not start"
        self.procs.append((proc, stop))
        return proc

    def stop_all(self) -> None:
        for proc, stop in self.procs:
            # A process that died waiting on its event would block set() forever.
            if proc.is_alive():
                stop.set()
        for proc, _ in self.procs:
            proc.join(20)
            if proc.is_alive():
                proc.kill()

    def next_event(self) -> Any:
        return self.events.get(timeout=20)


@pytest.fixture
def servers(rabbit_url: str, topic: str) -> Iterator[Servers]:
    s = Servers(rabbit_url, topic)
    yield s
    s.stop_all()


@pytest.fixture
def client_transport(rabbit_url: str, topic: str) -> Iterator[Transport]:
    t = get_transport(rabbit_url)
    yield t
    t.cleanup()
    delete_queues(rabbit_url, [topic, *(f"{topic}.{s}" for s in (*SERVERS, "crasher"))])


def test_two_server_processes_share_the_topic(
    servers: Servers, client_transport: Transport, topic: str
) -> None:
    servers.start("a")
    servers.start("b")
    client = RPCClient(client_transport, Target(topic=topic), timeout=20)
    answered = {tuple(client.call(CTX, "whoami")) for _ in range(20)}
    assert {name for name, _pid in answered} == {"a", "b"}
    assert client.prepare(server="b").call(CTX, "whoami")[0] == "b"
    with pytest.raises(NotFound, match="remote row missing"):
        client.call(CTX, "not_found")


def test_cast_and_fanout_across_processes(
    servers: Servers, client_transport: Transport, topic: str
) -> None:
    servers.start("a")
    servers.start("b")
    client = RPCClient(client_transport, Target(topic=topic))
    client.cast(CTX, "record", value="one")
    assert servers.next_event()[1] == "one"
    client.prepare(fanout=True).cast(CTX, "record", value="all")
    got = {servers.next_event() for _ in range(2)}
    assert got == {("a", "all"), ("b", "all")}
    with pytest.raises(queue.Empty):
        servers.events.get(timeout=0.5)


def test_request_is_acked_only_after_dispatch(
    servers: Servers, client_transport: Transport, topic: str
) -> None:
    crasher = servers.start("crasher")
    RPCClient(client_transport, Target(topic=topic)).cast(CTX, "crash", value="survives")
    crasher.join(30)
    assert crasher.exitcode == 3  # it died inside the handler, before acking
    servers.start("b")
    assert servers.next_event() == ("b", "survives")


def test_many_callers_against_two_processes(
    servers: Servers, client_transport: Transport, topic: str
) -> None:
    import threading

    servers.start("a")
    servers.start("b")
    errors: list[BaseException] = []
    counts: dict[str, int] = {}
    lock = threading.Lock()

    def caller() -> None:
        client = RPCClient(client_transport, Target(topic=topic), timeout=30)
        try:
            for i in range(25):
                name, _pid = client.call(CTX, "whoami")
                assert client.call(CTX, "echo", value=i) == i
                with lock:
                    counts[name] = counts.get(name, 0) + 1
        except BaseException as exc:
            errors.append(exc)

    threads: list[Callable[[], None] | Any] = [threading.Thread(target=caller) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert sum(counts.values()) == 200 and set(counts) == {"a", "b"}
