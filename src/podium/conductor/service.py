"""Wiring: run a conductor, or make a worker's objects go through one."""

from __future__ import annotations

import logging
from types import TracebackType

from podium.db import Database
from podium.db.current import set_default_database
from podium.objects import VersionedObject, VersionedObjectRegistry, VersionedObjectSerializer
from podium.rpc import RPCServer, Target, Transport

from .api import ConductorAPI
from .manager import ConductorManager

LOG = logging.getLogger(__name__)


def configure_worker(
    transport: Transport,
    *,
    use_local: bool = False,
    base: type[VersionedObject] = VersionedObject,
    topic: str = "conductor",
    timeout: float = 60.0,
    registry: VersionedObjectRegistry | None = None,
    database: Database | None = None,
) -> ConductorAPI | None:
    """Point ``base`` (and so its subclasses) at the conductor, or run locally.

    ``use_local=True`` leaves the indirection API unset: object methods then
    run in this process against ``database`` (default: ``PODIUM_DATABASE_URL``),
    as on the conductor itself.
    """
    if use_local:
        if database is not None:
            set_default_database(database)
        base.indirection_api = None
        LOG.info("use_local: object methods of %s run in this process", base.__name__)
        return None
    api = ConductorAPI(transport, topic=topic, timeout=timeout, registry=registry)
    base.indirection_api = api
    return api


class ConductorService:
    """An RPC server on topic ``conductor`` (shared queue) and ``conductor.<host>``."""

    def __init__(
        self,
        transport: Transport,
        database: Database,
        *,
        host: str,
        topic: str = "conductor",
        workers: int = 8,
        registry: VersionedObjectRegistry | None = None,
    ) -> None:
        self.manager = ConductorManager(database, registry=registry, host=host)
        self._server = RPCServer(
            transport,
            Target(topic=topic, server=host),
            [self.manager],
            serializer=VersionedObjectSerializer(registry=registry),
            max_workers=workers,
        )

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def wait(self) -> None:
        self._server.wait()

    def __enter__(self) -> ConductorService:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        self.wait()
