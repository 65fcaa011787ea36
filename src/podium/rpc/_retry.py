"""Trying the broker again: the one retry loop of every transport, above its driver.

A driver says which of its failures are recoverable (the connection failed,
the broker is away: trying again may work) and how to describe one; it never
retries on its own. Connecting, sending a call or a cast, and a server's
consuming all go through :class:`Retrying`, so ``memory://`` and
``rabbit://`` retry, back off, log and give up alike.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from podium.exceptions import TransportError

from ._backoff import backoff_delay

__all__ = ["BrokerUnavailable", "ConsumerOutage", "RequestLost", "Retrying"]

LOG = logging.getLogger("podium.rpc")

T = TypeVar("T")

#: A last try is begun at least this long before the deadline, so that a quick
#: refusal is told as such, not as a timeout.
MARGIN = 0.05


class BrokerUnavailable(TransportError):
    """A driver's recoverable failure: the broker cannot be reached now; trying again may work."""


class RequestLost(BrokerUnavailable):
    """The connection failed after the request went out: it may or may not have run."""


class RetryPolicy(Protocol):
    """What the loop needs of a driver."""

    max_backoff: float
    broker_name: str

    def is_recoverable(self, exc: BaseException) -> bool: ...

    def describe_error(self, exc: BaseException) -> str: ...


class Retrying:
    """Run an action until it succeeds, is refused for good, or runs out of tries or time.

    ``retry``: None tries until ``deadline``; 0 tries once; N retries N times.
    Each retry waits :func:`backoff_delay` (capped by the driver's
    ``max_backoff``) and is reported once, a WARNING by default. At the end a
    :class:`TransportError` says ``what`` failed, after how many attempts, and
    the last error (never a password: drivers describe brokers without them);
    a failure that came only once the deadline had passed is ``timed_out(exc)``
    instead, when given. A failure the driver does not call recoverable is
    raised as it is, at once.
    """

    def __init__(
        self,
        driver: RetryPolicy,
        what: str,
        *,
        retry: int | None = None,
        deadline: float = math.inf,
        deadline_name: str = "deadline",
        level: int = logging.WARNING,
        wait: Callable[[float], object] = time.sleep,
        report: Callable[[BaseException, float], None] | None = None,
        recoverable: Callable[[BaseException], bool] | None = None,
        timed_out: Callable[[BaseException], Exception] | None = None,
        started: float | None = None,
    ) -> None:
        self.driver = driver
        self.what = what
        self.retry = retry
        self.deadline = deadline
        self.deadline_name = deadline_name
        self.level = level
        self.wait = wait
        self.report = report
        self.recoverable = recoverable or driver.is_recoverable
        self.timed_out = timed_out
        self.attempts = 0
        self.started = time.monotonic() if started is None else started

    def reset(self, retry: int | None) -> None:
        """The action made progress: count from zero again, allowed ``retry`` retries."""
        self.attempts = 0
        self.retry = retry

    def run(self, action: Callable[[], T], failed: Exception | None = None) -> T:
        """``action()``, tried again as long as allowed; ``failed``: how its first try,
        made by the caller, failed."""
        if failed is not None:
            self.attempts += 1
            self._pause(failed)
        while True:
            self.attempts += 1
            try:
                return action()
            except Exception as exc:
                if not self.recoverable(exc):
                    raise
                self._pause(exc)

    def _pause(self, exc: Exception) -> None:
        """Wait before the next try; raise instead when there is none."""
        left = self.deadline - time.monotonic()
        if self.timed_out is not None and left <= 0:
            raise self.timed_out(exc) from exc
        attempts = f"{self.attempts} attempt{'s' if self.attempts != 1 else ''}"
        if self.retry is not None and self.attempts > self.retry:
            raise self._gave_up(exc, f"{attempts} (gave up: retry={self.retry})")
        if left <= MARGIN:
            budget = self.deadline - self.started
            raise self._gave_up(
                exc, f"{attempts} (gave up after {budget:.3g} s, the {self.deadline_name})"
            )
        delay = min(backoff_delay(self.attempts, self.driver.max_backoff), left - MARGIN)
        if self.report is not None:
            self.report(exc, delay)
        else:
            LOG.log(
                self.level,
                "%s: %s; retry %d in %.1fs",
                self.what,
                self.driver.describe_error(exc),
                self.attempts,
                delay,
            )
        self.wait(delay)

    def _gave_up(self, exc: Exception, after: str) -> TransportError:
        error = TransportError(f"{self.what}: {self.driver.describe_error(exc)}; {after}")
        error.__cause__ = exc
        return error


class ConsumerOutage:
    """A server's consumers lost together: one warning for the outage, one line when back.

    A broker restart cuts all of a server's connections at once: one warning
    for the server, not one per consumer and retry.
    """

    def __init__(self, driver: RetryPolicy, topic: str) -> None:
        self.driver = driver
        self.topic = topic
        self._lost = False
        self._lock = threading.Lock()

    def lost(self, exc: BaseException, delay: float) -> None:
        with self._lock:
            first, self._lost = not self._lost, True
        LOG.log(
            logging.WARNING if first else logging.DEBUG,
            "server on %s: not consuming from %s (%s); retrying in %.1fs",
            self.topic,
            self.driver.broker_name,
            self.driver.describe_error(exc),
            delay,
        )

    def back(self) -> None:
        with self._lock:
            was, self._lost = self._lost, False
        if was:
            LOG.info("server on %s: connected to %s", self.topic, self.driver.broker_name)
