"""Process runtime: configuration, logging, signal handling, periodic tasks."""

from podium.service.config import ServiceConfig
from podium.service.periodic import PeriodicTask
from podium.service.runtime import Lifecycle, StopSignals, freeze_heap, setup_logging

__all__ = [
    "Lifecycle",
    "PeriodicTask",
    "ServiceConfig",
    "StopSignals",
    "freeze_heap",
    "setup_logging",
]
