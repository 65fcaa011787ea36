"""Wiring: run a conductor, or make a worker's objects go through one."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import timedelta
from types import TracebackType

from podium.db import Database
from podium.db.current import set_default_database
from podium.db.inbox import DEFAULT_RETENTION, prune_inbox
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
    """An RPC server on topic ``conductor`` (shared queue) and ``conductor.<host>``.

    It serves the :class:`ConductorManager` (object calls) and ``endpoints``:
    the applications' own conductor endpoints (``App.conductor_endpoints``),
    dispatched by their ``target`` namespace and version like any RPC endpoint.

    While it runs it also deletes inbox records older than ``inbox_retention``
    (every ``inbox_retention / 4``, at most every 10 minutes); ``None`` leaves
    that to ``podium db prune-inbox``.
    """

    def __init__(
        self,
        transport: Transport,
        database: Database,
        *,
        host: str,
        topic: str = "conductor",
        workers: int = 8,
        registry: VersionedObjectRegistry | None = None,
        inbox_retention: timedelta | None = DEFAULT_RETENTION,
        endpoints: Sequence[object] = (),
    ) -> None:
        if inbox_retention is not None and inbox_retention <= timedelta(0):
            raise ValueError("inbox_retention must be positive (or None: no pruning)")
        self.database = database
        self.inbox_retention = inbox_retention
        self._pruner: threading.Thread | None = None
        self._stopped = threading.Event()
        self.manager = ConductorManager(database, registry=registry, host=host)
        self._server = RPCServer(
            transport,
            Target(topic=topic, server=host),
            [self.manager, *endpoints],
            serializer=VersionedObjectSerializer(registry=registry),
            max_workers=workers,
        )

    def start(self) -> None:
        self._server.start()
        if self.inbox_retention is not None and self._pruner is None:
            self._stopped.clear()
            self._pruner = threading.Thread(
                target=self._prune, args=(self.inbox_retention,), name="inbox-pruner", daemon=True
            )
            self._pruner.start()

    def stop(self) -> None:
        self._stopped.set()
        self._server.stop()

    def _prune(self, retention: timedelta) -> None:
        interval = min(retention / 4, timedelta(minutes=10)).total_seconds()
        while not self._stopped.wait(interval):
            try:
                pruned = prune_inbox(self.database, older_than=retention)
            except Exception:
                # A database away for a while: the next round tries again.
                LOG.warning("could not prune the conductor inbox", exc_info=True)
                continue
            if pruned:
                LOG.info("pruned %d inbox records older than %s", pruned, retention)

    def wait(self) -> None:
        self._server.wait()
        pruner, self._pruner = self._pruner, None
        if pruner is not None:
            pruner.join()

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
