"""Process runtime: configuration, logging, signal handling, periodic tasks."""

from podium.service.config import ServiceConfig
from podium.service.periodic import PeriodicTask
from podium.service.runtime import StopSignals, setup_logging

__all__ = ["PeriodicTask", "ServiceConfig", "StopSignals", "setup_logging"]
