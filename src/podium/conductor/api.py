"""Client side of the conductor: the indirection API that workers install.

A worker sets ``VersionedObject.indirection_api = ConductorAPI(transport)`` (see
:func:`podium.conductor.service.configure_worker`), and every remotable method
of every object class becomes an RPC call to topic ``conductor``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from podium.context import RequestContext
from podium.exceptions import ConductorError, MessagingTimeout, NoConsumer
from podium.objects import VersionedObject, VersionedObjectRegistry, VersionedObjectSerializer
from podium.rpc import RPCClient, Target, Transport

LOG = logging.getLogger(__name__)

#: History of the conductor RPC API; bump the minor for every compatible addition.
#:   1.0 - object_action, object_class_action_versions, object_backport_versions, ping
CONDUCTOR_API_VERSION = "1.0"


class ConductorAPI:
    """Sends object method calls to the conductors on ``topic``."""

    def __init__(
        self,
        transport: Transport,
        *,
        topic: str = "conductor",
        version_cap: str | None = None,
        timeout: float = 60.0,
        registry: VersionedObjectRegistry | None = None,
    ) -> None:
        self.serializer = VersionedObjectSerializer(registry=registry, indirection_api=self)
        self._client = RPCClient(
            transport,
            Target(topic=topic, version=CONDUCTOR_API_VERSION),
            version_cap=version_cap,
            timeout=timeout,
            serializer=self.serializer,
            # Conductors apply a request once by its id (their inbox): a call
            # cut off by a broker restart is safe to send again.
            idempotent=True,
        )

    def object_action(
        self,
        context: RequestContext,
        objinst: VersionedObject,
        objmethod: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> tuple[dict[str, Any], Any]:
        updates, result = self._client.call(
            context,
            "object_action",
            objinst=objinst,
            objmethod=objmethod,
            args=list(args),
            kwargs=kwargs,
        )
        return updates, result

    def object_class_action_versions(
        self,
        context: RequestContext,
        objname: str,
        objmethod: str,
        object_versions: dict[str, str],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        return self._client.call(
            context,
            "object_class_action_versions",
            objname=objname,
            objmethod=objmethod,
            object_versions=object_versions,
            args=list(args),
            kwargs=kwargs,
        )

    def object_backport_versions(
        self, context: RequestContext, objinst: dict[str, Any], object_versions: dict[str, str]
    ) -> Any:
        return self._client.call(
            context,
            "object_backport_versions",
            objinst=objinst,
            object_versions=object_versions,
        )

    def ping(self, context: RequestContext, server: str | None = None) -> dict[str, Any]:
        """``{"host", "served"}`` of one conductor (any, or the one named)."""
        client = self._client.prepare(server=server) if server else self._client
        result: dict[str, Any] = client.call(context, "ping")
        return result

    def wait_until_ready(self, context: RequestContext, timeout: float) -> dict[str, Any]:
        """Ping until a conductor answers (its ``ping`` result); ConductorError after ``timeout``.

        Services of a cloud start in any order: a worker started before its
        conductor waits for it here instead of failing its first object call.
        """
        topic = self._client.target.topic
        deadline = time.monotonic() + timeout
        said = False
        while True:
            # Short tries: a conductor that comes up late must not wait out a long one.
            attempt = max(0.1, min(5.0, deadline - time.monotonic()))
            try:
                result: dict[str, Any] = self._client.prepare(timeout=attempt).call(context, "ping")
                return result
            except (NoConsumer, MessagingTimeout) as error:
                if time.monotonic() >= deadline:
                    raise ConductorError(
                        f"no conductor answered on topic {topic!r} within {timeout:g} s ({error})"
                    ) from None
                if not said:
                    LOG.info("waiting up to %g s for a conductor on topic %r", timeout, topic)
                    said = True
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
