"""Server processes for the integration tests (imported by spawned children)."""

from __future__ import annotations

import contextlib
import os
import threading
from multiprocessing.synchronize import Event
from typing import Any

import pika

from podium.exceptions import NotFound
from podium.rpc import RPCServer, Target, get_transport

SERVERS = ("a", "b", "c")


def delete_queues(url: str, names: list[str]) -> None:
    """Remove the durable queues a test left behind (missing ones are fine)."""
    params = pika.URLParameters(url.replace("rabbit://", "amqp://", 1))
    with contextlib.closing(pika.BlockingConnection(params)) as conn:
        for name in names:
            ch = conn.channel()
            with contextlib.suppress(pika.exceptions.ChannelClosedByBroker):
                ch.queue_delete(name)
            if ch.is_open:
                ch.close()


class ProcessEndpoint:
    def __init__(self, name: str, events: Any) -> None:
        self.name = name
        self.events = events

    def whoami(self, ctxt: Any) -> list[Any]:
        return [self.name, os.getpid()]

    def echo(self, ctxt: Any, value: Any) -> Any:
        return value

    def record(self, ctxt: Any, value: Any) -> None:
        self.events.put((self.name, value))

    def not_found(self, ctxt: Any) -> None:
        raise NotFound("remote row missing")

    def crash(self, ctxt: Any, value: Any) -> None:
        # Die mid-request, before the message is acknowledged.
        if self.name == "crasher":
            os._exit(3)
        self.events.put((self.name, value))

    def sleep(self, ctxt: Any, seconds: float) -> float:
        threading.Event().wait(seconds)
        return seconds


def serve(
    url: str,
    topic: str,
    server: str,
    events: Any,
    ready: Event,
    stop: Event,
    max_workers: int = 4,
) -> None:
    transport = get_transport(url)
    srv = RPCServer(
        transport,
        Target(topic=topic, server=server),
        [ProcessEndpoint(server, events)],
        max_workers=max_workers,
    )
    srv.start()
    ready.set()
    stop.wait()
    srv.stop()
    srv.wait()
    transport.cleanup()
