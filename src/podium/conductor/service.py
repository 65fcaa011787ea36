"""Wiring: run a conductor, or make a worker's objects go through one."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from podium.db import Database
from podium.db.current import set_default_database, use_database
from podium.db.inbox import DEFAULT_RETENTION, prune_inbox
from podium.objects import VersionedObject, VersionedObjectRegistry, VersionedObjectSerializer
from podium.rpc import Authorize, RPCServer, Target, Transport
from podium.service import Lifecycle, PeriodicTask

from .api import ConductorAPI
from .manager import ConductorManager
from .policy import Policy

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


class ConductorService(Lifecycle):
    """An RPC server on topic ``conductor`` (shared queue) and ``conductor.<host>``.

    It serves the :class:`ConductorManager` (object calls) and ``endpoints``:
    the applications' own conductor endpoints (``App.conductor_endpoints``),
    dispatched by their ``target`` namespace and version like any RPC endpoint.
    One whose ``target`` names a topic is served on that topic (and
    ``<topic>.<host>``) by a worker pool of its own; an endpoint's
    ``periodic_tasks()`` run while the service does.

    While it runs it also deletes inbox records older than ``inbox_retention``
    (every ``inbox_retention / 4``, at most every 10 minutes); ``None`` leaves
    that to ``podium db prune-inbox``.

    ``policy`` decides which signed sender may make which object call
    (:mod:`podium.conductor.policy`); None lets every call through.
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
        policy: Policy | None = None,
    ) -> None:
        if inbox_retention is not None and inbox_retention <= timedelta(0):
            raise ValueError("inbox_retention must be positive (or None: no pruning)")
        self.database = database
        self.inbox_retention = inbox_retention
        self.manager = ConductorManager(database, registry=registry, host=host, policy=policy)
        # An endpoint whose target names a topic of its own is served there, by
        # a server and worker pool of its own: its handlers may wait on other
        # services that in turn make object calls here, and must never hold
        # every worker those object calls need.
        by_topic: dict[str, list[object]] = {topic: [self.manager]}
        for endpoint in endpoints:
            own = getattr(getattr(endpoint, "target", None), "topic", None)
            by_topic.setdefault(own or topic, []).append(endpoint)
        serializer = VersionedObjectSerializer(registry=registry)
        self._servers = [
            RPCServer(
                transport,
                Target(topic=served, server=host),
                served_endpoints,
                serializer=serializer,
                max_workers=workers,
                authorize=None if policy is None else self._endpoint_check(policy, served),
            )
            for served, served_endpoints in by_topic.items()
        ]
        # An endpoint may bring work of its own to run while the conductor
        # serves (an application's heartbeat, say): ``periodic_tasks()``.
        self._tasks: list[PeriodicTask] = [
            task
            for endpoint in endpoints
            if callable(getattr(endpoint, "periodic_tasks", None))
            for task in endpoint.periodic_tasks()  # type: ignore[attr-defined]
        ]
        if inbox_retention is not None:
            interval = min(inbox_retention / 4, timedelta(minutes=10)).total_seconds()
            self._tasks.append(
                PeriodicTask("inbox-pruner", interval, lambda: self._prune(inbox_retention))
            )

    def _endpoint_check(self, policy: Policy, topic: str) -> Authorize:
        check = policy.endpoint_check(topic)

        def authorize(ctxt: Any, method: str, arguments: dict[str, Any]) -> None:
            # A rule's target may be read from the database (an instance's host).
            with use_database(self.database):
                check(ctxt, method, arguments)

        return authorize

    def start(self) -> None:
        started: list[RPCServer] = []
        try:
            for server in self._servers:
                server.start()
                started.append(server)
        except BaseException:
            # Not half a conductor: one consuming a queue it can no longer serve.
            for server in started:
                server.stop()
                server.wait()
            raise
        for task in self._tasks:
            task.start()

    def stop(self) -> None:
        for task in self._tasks:
            task.stop()
        for server in self._servers:
            server.stop()

    def _prune(self, retention: timedelta) -> None:
        # A failure (the database away for a while) is logged by the task,
        # and the next round tries again.
        pruned = prune_inbox(self.database, older_than=retention)
        if pruned:
            LOG.info("pruned %d inbox records older than %s", pruned, retention)

    def wait(self) -> None:
        for server in self._servers:
            server.wait()
        for task in self._tasks:
            task.wait()
