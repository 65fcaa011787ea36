"""Periodic tasks: a function run every N seconds on a thread of its own, until stopped.

A failing run is logged and the next one comes on schedule: a periodic task is
how a service keeps reporting through an outage, so one error must not end it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

LOG = logging.getLogger(__name__)


class PeriodicTask:
    """Runs ``function`` every ``interval`` seconds (the first run after ``initial_delay``)."""

    def __init__(
        self,
        name: str,
        interval: float,
        function: Callable[[], object],
        *,
        initial_delay: float | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"periodic task {name!r}: interval must be positive, not {interval}")
        self.name = name
        self.interval = interval
        self.initial_delay = interval if initial_delay is None else initial_delay
        self._function = function
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopped.clear()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def wait(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()

    def run_once(self) -> bool:
        """Run the function now; whether it succeeded (a failure is logged, once per streak)."""
        try:
            self._function()
        except Exception:
            if not self._failing:
                LOG.warning(
                    "periodic task %s failed; retrying every %ss",
                    self.name,
                    self.interval,
                    exc_info=True,
                )
            self._failing = True
            return False
        if self._failing:
            LOG.info("periodic task %s succeeds again", self.name)
        self._failing = False
        return True

    def _loop(self) -> None:
        delay = self.initial_delay
        while not self._stopped.wait(delay):
            self.run_once()
            delay = self.interval
