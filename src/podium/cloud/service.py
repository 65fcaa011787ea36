"""The runtime every cloud service shares: its RPC server, its heartbeat, its periodic tasks.

A manager (the scheduler's, a compute's) may define ``init_host()`` (run before
it takes requests), ``periodic_tasks()`` (started with the service) and
``cleanup_host()`` (run once it has stopped taking requests).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from podium.cloud.config import CloudConfig
from podium.cloud.objects import CloudObject, Service
from podium.cloud.rpcapi import sent_now
from podium.context import get_admin_context
from podium.exceptions import (
    IncompatibleObjectVersion,
    NoSuchMethod,
    UnsupportedObjectError,
    UnsupportedVersion,
)
from podium.objects import VersionedObjectSerializer
from podium.rpc import RPCDispatcher, RPCServer, Serializer, Target, Transport
from podium.service import Lifecycle, PeriodicTask

LOG = logging.getLogger(__name__)

#: What every service of this release reports in its Service row; bump it with
#: any change to an RPC API or object version, and add the release to
#: :data:`podium.cloud.releases.RELEASES` (``upgrade_levels = auto`` caps
#: clients to the lowest one alive).
SERVICE_VERSION = 2

#: What a request may carry that this release cannot read: an RPC version or
#: method it does not serve, an object version nobody could backport for it.
UNREADABLE = (
    UnsupportedVersion,
    NoSuchMethod,
    IncompatibleObjectVersion,
    UnsupportedObjectError,
)


class InstanceRequestDispatcher(RPCDispatcher):
    """Tells the manager about an instance's request this release cannot handle.

    The server still fails the request as it would (a warning for a cast, the
    error for a caller); the manager's ``request_failed`` settles the
    instance, so that nothing waits for an answer that will never come.
    """

    def __init__(self, endpoints: Sequence[Any], serializer: Serializer, manager: Any) -> None:
        super().__init__(endpoints, serializer)
        self._manager = manager

    def dispatch(self, message: dict[str, Any]) -> tuple[Any, Any]:
        try:
            return super().dispatch(message)
        except UNREADABLE as error:
            method = str(message.get("method"))
            for uuid in _instance_uuids(message.get("args")):
                try:
                    self._manager.request_failed(get_admin_context(), method, uuid, error)
                except Exception:  # the request fails as it would; only the record is lost
                    LOG.exception("instance %s: recording the failed %s failed", uuid, method)
            raise


def _instance_uuids(args: Any) -> list[str]:
    """The uuids of the instances a request's arguments name, read from the primitives."""
    if not isinstance(args, dict):
        return []
    data = CloudObject._obj_keys[3]
    found = []
    for name in ("instance", "instances"):
        value = args.get(name)
        for primitive in value if isinstance(value, list) else [value]:
            if isinstance(primitive, dict) and isinstance(primitive.get(data), dict):
                uuid = primitive[data].get("uuid")
                if isinstance(uuid, str):
                    found.append(uuid)
    return found


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
        if self._server is not None and hasattr(manager, "request_failed"):
            self._server.dispatcher = InstanceRequestDispatcher(
                all_endpoints, self._server.dispatcher.serializer, manager
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
