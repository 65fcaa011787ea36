"""The compute agent of one host: its manager, its (fake) hypervisor driver, its service."""

from __future__ import annotations

from podium.cloud.compute.driver import FakeDriver
from podium.cloud.compute.manager import COMPUTE_BINARY, ComputeManager
from podium.cloud.config import CloudConfig
from podium.cloud.rpcapi import COMPUTE_TOPIC
from podium.cloud.service import CloudService
from podium.rpc import Transport

__all__ = ["COMPUTE_BINARY", "ComputeManager", "FakeDriver", "compute_service"]


def compute_service(
    transport: Transport,
    config: CloudConfig,
    host: str,
    driver: FakeDriver | None = None,
    *,
    block_db: bool = True,
) -> CloudService:
    """The ``podium-compute`` service of ``host`` (topic ``compute``, server ``host``).

    ``block_db=False`` only where a conductor runs in the same process (the
    all-in-one, in-process tests): :func:`podium.db.block_db_access` is
    process-wide and would stop that conductor too.
    """
    manager = ComputeManager(
        transport, config, host, driver or FakeDriver.from_config(config), block_db=block_db
    )
    return CloudService(
        transport,
        binary=COMPUTE_BINARY,
        host=host,
        config=config,
        topic=COMPUTE_TOPIC,
        manager=manager,
    )
