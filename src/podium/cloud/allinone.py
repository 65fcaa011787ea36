"""The whole cloud in one process: conductor, scheduler, fake computes and the API.

Every service is the same code as in the distributed shape and talks to the
others over the bus (``memory://`` by default: the messages are encoded as on
RabbitMQ); only the conductor opens the database. The computes cannot call
``block_db_access`` here (it is process-wide and would stop the conductor too).
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from podium.cloud.api import ApiService, api_service
from podium.cloud.compute import compute_service
from podium.cloud.conductor import ComputeTaskManager
from podium.cloud.config import CloudConfig
from podium.cloud.objects import CloudObject
from podium.cloud.scheduler import scheduler_service
from podium.cloud.service import CloudService
from podium.conductor import ConductorService, configure_worker
from podium.db import Database
from podium.db.current import set_default_database
from podium.db.migration import sync
from podium.rpc import Transport, get_transport
from podium.service import Lifecycle

LOG = logging.getLogger(__name__)

DEFAULT_COMPUTES = ("compute-1", "compute-2", "compute-3")


class AllInOne(Lifecycle):
    """Start with ``start()`` (or ``with``); every service runs until ``stop()``."""

    def __init__(
        self,
        config: CloudConfig,
        database_url: str,
        *,
        computes: Sequence[str] = DEFAULT_COMPUTES,
        failing_computes: Sequence[str] = (),
    ) -> None:
        self.config = config
        self.database = Database(database_url, pool_size=config.rpc_workers)
        self.computes = list(computes)
        self.failing_computes = set(failing_computes)
        self.transport: Transport | None = None
        self.conductor: ConductorService | None = None
        self.build_flow: ComputeTaskManager | None = None
        self.services: dict[str, CloudService] = {}
        self.api: ApiService | None = None
        self._running: list[Any] = []

    def start(self) -> None:
        try:
            sync(self.database)
            set_default_database(self.database)
            url = self.config.transport_url
            if url.rstrip("/") == "memory:":
                url = f"memory://all-in-one-{uuid.uuid4().hex[:8]}"
            self.transport = get_transport(
                url, allowed_remote_exmods=["podium.exceptions", "podium.cloud.exceptions"]
            )
            self.build_flow = ComputeTaskManager(
                self.transport, self.database, "conductor", self.config
            )
            self.conductor = ConductorService(
                self.transport,
                self.database,
                host="conductor",
                workers=self.config.rpc_workers,
                endpoints=[self.build_flow],
            )
            self._start(self.conductor)
            configure_worker(self.transport, base=CloudObject, timeout=self.config.rpc_timeout)
            self._start_service(
                "scheduler", scheduler_service(self.transport, self.config, "scheduler")
            )
            for host in self.computes:
                self.start_compute(host)
            self.api = api_service(self.transport, self.config, "api")
            self._start(self.api)
        except BaseException:
            self.stop()
            self.wait()
            raise

    def start_compute(self, host: str, *, fail_builds: bool | None = None) -> CloudService:
        """Add (or restart) a compute host while the cloud runs."""
        assert self.transport is not None, "start() first"
        failing = host in self.failing_computes if fail_builds is None else fail_builds
        config = replace(self.config, fake_fail_builds=True) if failing else self.config
        service = compute_service(self.transport, config, host, block_db=False)
        self._start_service(host, service)
        return service

    def stop_compute(self, host: str) -> None:
        service = self.services.pop(host)
        self._running.remove(service)
        service.stop()
        service.wait()

    def _start_service(self, name: str, service: CloudService) -> None:
        self.services[name] = service
        self._start(service)

    def _start(self, service: Any) -> None:
        service.start()
        self._running.append(service)

    def stop(self) -> None:
        """Ask every service to stop (the API first, the conductor last).

        The API is drained before the others are asked: a request in hand
        still needs the conductor, and one left waiting past the API's grace
        period would be cut off with its connection.
        """
        if self.api is not None and self.api in self._running:
            self.api.stop()
            self.api.wait()
            self._running.remove(self.api)
        for service in reversed(self._running):
            service.stop()

    def wait(self) -> None:
        """Wait until every service has stopped; release the bus and the database."""
        for service in reversed(self._running):
            try:
                service.wait()
            except Exception:
                LOG.exception("a service did not stop cleanly")
        self._running.clear()
        self.services.clear()
        # Back to no indirection API of its own (not one of None, which would
        # hide a later one set on VersionedObject in this process).
        with contextlib.suppress(AttributeError):
            del CloudObject.indirection_api
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        set_default_database(None)
        self.database.dispose()
