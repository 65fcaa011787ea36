# Release acacia (the one before this code's), as it shipped: only its imports of the
# modules that changed since point into this directory. Do not edit it to follow later
# changes; a release that shipped does not change.
"""The runtime every cloud service shares: its RPC server, its heartbeat, its periodic tasks.

A manager (the scheduler's, a compute's) may define ``init_host()`` (run before
it takes requests), ``periodic_tasks()`` (started with the service) and
``cleanup_host()`` (run once it has stopped taking requests).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from tests.upgrade.release_n1.objects import Service
from tests.upgrade.release_n1.rpcapi import sent_now

from podium.cloud.config import CloudConfig
from podium.context import get_admin_context
from podium.objects import VersionedObjectSerializer
from podium.rpc import RPCServer, Target, Transport
from podium.service import Lifecycle, PeriodicTask

LOG = logging.getLogger(__name__)

#: What every service of this release reports in its Service row; bump it with
#: any change to an RPC API or object version (``upgrade_levels = auto`` caps
#: clients to the lowest one alive).
SERVICE_VERSION = 1


class CloudService(Lifecycle):
    """One service of the cloud on ``topic`` (shared queue) and ``topic.<host>``."""

    def __init__(
        self,
        transport: Transport,
        *,
        binary: str,
        host: str,
        config: CloudConfig,
        topic: str | None = None,
        manager: Any = None,
        endpoints: Sequence[Any] = (),
    ) -> None:
        self.binary = binary
        self.host = host
        self.topic = topic
        self.config = config
        self.manager = manager
        all_endpoints = [*([manager] if manager is not None else []), *endpoints]
        self._server = (
            RPCServer(
                transport,
                Target(topic=topic, server=host),
                all_endpoints,
                serializer=VersionedObjectSerializer(),
                max_workers=config.rpc_workers,
            )
            if topic is not None
            else None
        )
        self._tasks = [
            PeriodicTask(f"{binary}-heartbeat", config.report_interval, self.report),
            *(manager.periodic_tasks() if hasattr(manager, "periodic_tasks") else ()),
        ]

    def report(self) -> Service:
        """One heartbeat through the conductor, stamped with its send time."""
        return Service.report(
            get_admin_context(), self.host, self.binary, self.topic, SERVICE_VERSION, sent_now()
        )

    def start(self) -> None:
        if hasattr(self.manager, "init_host"):
            self.manager.init_host()
        if self._server is not None:
            self._server.start()
        # The first heartbeat now, not one interval later: "ready" should mean
        # "visible as up". A conductor not there yet is retried by the task.
        heartbeat = self._tasks[0]
        if not heartbeat.run_once():
            LOG.warning("%s on %s could not report in yet; retrying", self.binary, self.host)
        for task in self._tasks:
            task.start()
        LOG.info("%s on %s started (topic %s)", self.binary, self.host, self.topic)

    def stop(self) -> None:
        for task in self._tasks:
            task.stop()
        if self._server is not None:
            self._server.stop()

    def wait(self) -> None:
        for task in self._tasks:
            task.wait()
        if self._server is not None:
            self._server.wait()
        if hasattr(self.manager, "cleanup_host"):
            self.manager.cleanup_host()
