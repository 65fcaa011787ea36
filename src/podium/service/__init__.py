"""Process runtime: configuration, logging, signal handling, service entry points."""

from podium.service.config import ServiceConfig
from podium.service.runtime import StopSignals, setup_logging

__all__ = ["ServiceConfig", "StopSignals", "setup_logging"]
