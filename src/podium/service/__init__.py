"""Process runtime: configuration, logging, signal handling, service entry points."""

from podium.service.config import ServiceConfig
from podium.service.runtime import setup_logging, wait_for_stop_signal

__all__ = ["ServiceConfig", "setup_logging", "wait_for_stop_signal"]
