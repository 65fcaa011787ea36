"""The scheduler service of the reference cloud: filters, weighers and atomic claims."""

from __future__ import annotations

from podium.cloud.config import CloudConfig
from podium.cloud.rpcapi import SCHEDULER_TOPIC
from podium.cloud.scheduler.manager import COMPUTE_BINARY, SchedulerManager
from podium.cloud.service import CloudService
from podium.rpc import Transport

__all__ = ["COMPUTE_BINARY", "SCHEDULER_BINARY", "SchedulerManager", "scheduler_service"]

SCHEDULER_BINARY = "podium-scheduler"


def scheduler_service(transport: Transport, config: CloudConfig, host: str) -> CloudService:
    """The scheduler on ``host``: topic ``scheduler``, heartbeats as ``podium-scheduler``."""
    return CloudService(
        transport,
        binary=SCHEDULER_BINARY,
        host=host,
        config=config,
        topic=SCHEDULER_TOPIC,
        manager=SchedulerManager(config),
    )
