"""Process runtime: logging that carries the request id, and a clean stop on signals."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

from podium.context import RequestIdLogFilter

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdLogFilter())
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # pika logs every connection step, and every failure with a traceback at
    # ERROR; podium's rabbit driver reports each failure itself, translated
    # and once ("cannot connect to RabbitMQ (...); retrying"), so keep only
    # pika's last-resort messages.
    logging.getLogger("pika").setLevel(logging.CRITICAL)


def wait_for_stop_signal(on_stop: Callable[[], None] | None = None) -> int:
    """Block until SIGTERM or SIGINT; returns the signal number received."""
    stopped = threading.Event()
    received: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        stopped.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stopped.wait(0.5):
            pass
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    if on_stop is not None:
        on_stop()
    return received[0]
