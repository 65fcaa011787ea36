"""A server's listener: its workers, and what they share (queues, reporting of outages)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from podium.exceptions import TransportError

from .. import _codec
from .._target import Target
from .._transport import IncomingMessage, Listener
from .amqp import describe
from .servers import Worker

if TYPE_CHECKING:
    from .driver import RabbitDriver

LOG = logging.getLogger("podium.rpc._rabbit")


class RabbitListener(Listener):
    """A server's consumers: ``workers`` connections, each with its own thread."""

    def __init__(
        self,
        driver: RabbitDriver,
        target: Target,
        callback: Callable[[IncomingMessage], None],
        workers: int,
    ) -> None:
        self.driver = driver
        self.target = target
        self.callback = callback
        self.fanout_queue = driver.routing.fanout_queue(str(target.topic))
        self.dead_queue = f"{target.topic}.dead"
        self.tag_prefix = _codec.new_id()
        self.consuming = True
        self.closed = threading.Event()
        self.workers = [Worker(self, i) for i in range(max(1, workers))]
        self._outage = False
        self._outage_lock = threading.Lock()
        self._keeper = threading.Thread(
            target=self._keep, name=f"podium-rabbit-keeper-{target.topic}", daemon=True
        )

    def start(self) -> None:
        for worker in self.workers:
            worker.thread.start()
        for worker in self.workers:
            worker.ready.wait(60)
            if worker.error is not None:
                self.close()
                raise TransportError(
                    f"could not start consuming from RabbitMQ at {self.driver.where}: "
                    f"{describe(worker.error)}"
                ) from worker.error
        self._keeper.start()

    def _keep(self) -> None:
        interval = max(1.0, self.driver.heartbeat / 4)
        while not self.closed.wait(interval):
            for worker in self.workers:
                worker.keep_alive()

    # A broker restart cuts every worker's connection at once: one warning for
    # the server, not one per worker and retry.
    def report_lost(self, exc: BaseException, delay: float) -> None:
        with self._outage_lock:
            first, self._outage = not self._outage, True
        LOG.log(
            logging.WARNING if first else logging.DEBUG,
            "server on %s: not consuming from RabbitMQ at %s (%s); retrying in %.1fs",
            self.target.topic,
            self.driver.where,
            describe(exc),
            delay,
        )

    def report_back(self) -> None:
        with self._outage_lock:
            was, self._outage = self._outage, False
        if was:
            LOG.info(
                "server on %s: connected to RabbitMQ at %s", self.target.topic, self.driver.where
            )

    def stop(self) -> None:
        self.consuming = False
        for worker in self.workers:
            worker.wake()

    def close(self) -> None:
        self.consuming = False
        self.closed.set()
        for worker in self.workers:
            worker.wake()
        for worker in self.workers:
            if worker.thread.is_alive() and threading.current_thread() is not worker.thread:
                worker.thread.join(10)
        if self._keeper.is_alive():
            self._keeper.join(10)
