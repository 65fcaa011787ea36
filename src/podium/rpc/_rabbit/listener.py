"""A server's listener: its workers, and what they share (queues, reporting of outages)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from podium.exceptions import TransportError

from .. import _codec
from .._retry import ConsumerOutage
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
        self.outage = ConsumerOutage(driver, str(target.topic))
        self._keeper = threading.Thread(
            target=self._keep, name=f"podium-rabbit-keeper-{target.topic}", daemon=True
        )

    def start(self) -> None:
        for worker in self.workers:
            worker.thread.start()
        for worker in self.workers:
            worker.ready.wait(60)
            error = worker.error
            if error is not None:
                self.close()
                if isinstance(error, TransportError):
                    raise error
                raise TransportError(
                    f"could not start consuming from {self.driver.broker_name}: {describe(error)}"
                ) from error
        self._keeper.start()

    def _keep(self) -> None:
        interval = max(1.0, self.driver.heartbeat / 4)
        while not self.closed.wait(interval):
            for worker in self.workers:
                worker.keep_alive()

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
