# Release acacia (the one before this code's), as it shipped: only its imports of the
# modules that changed since point into this directory. Do not edit it to follow later
# changes; a release that shipped does not change.
"""Client sides of the cloud's RPC APIs: what a service calls or casts, in one place.

Each class holds the API's version history; a change that adds an argument or
a method bumps the minor version, and callers check ``can_send_version``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.upgrade.release_n1.objects import Instance

from podium.context import RequestContext
from podium.objects import VersionedObjectSerializer
from podium.rpc import RPCClient, Target, Transport

SCHEDULER_TOPIC = "scheduler"
COMPUTE_TOPIC = "compute"
CONDUCTOR_TOPIC = "conductor"
#: The conductor's build flow has a topic (and a worker pool) of its own: a
#: build waits on the scheduler, whose object calls need free conductor workers.
COMPUTE_TASK_TOPIC = "compute_task"


def sent_now() -> str:
    """A send time for a heartbeat: now, ISO 8601 in UTC."""
    return datetime.now(UTC).isoformat()


class SchedulerAPI:
    """Picks hosts for instances and claims their resources there.

    1.0 - select_destinations
    """

    VERSION = "1.0"

    def __init__(self, transport: Transport, *, timeout: float = 60.0) -> None:
        self._client = RPCClient(
            transport,
            Target(topic=SCHEDULER_TOPIC, version=self.VERSION),
            timeout=timeout,
            serializer=VersionedObjectSerializer(),
        )

    def select_destinations(
        self, context: RequestContext, request_spec: dict[str, Any]
    ) -> list[dict[str, str]]:
        """One ``{"host", "node"}`` per instance of the spec, each already claimed there."""
        result: list[dict[str, str]] = self._client.call(
            context, "select_destinations", request_spec=request_spec
        )
        return result


class ComputeAPI:
    """Asks one compute host to act on an instance (all casts: nobody waits on a hypervisor).

    1.0 - build_and_run_instance, pause/unpause/stop/start/reboot/terminate_instance
    """

    VERSION = "1.0"

    def __init__(self, transport: Transport) -> None:
        self._client = RPCClient(
            transport,
            Target(topic=COMPUTE_TOPIC, version=self.VERSION),
            serializer=VersionedObjectSerializer(),
        )

    def _cast(self, context: RequestContext, host: str, method: str, **kwargs: Any) -> None:
        self._client.prepare(server=host).cast(context, method, **kwargs)

    def build_and_run_instance(
        self, context: RequestContext, host: str, instance: Instance, request_spec: dict[str, Any]
    ) -> None:
        self._cast(
            context, host, "build_and_run_instance", instance=instance, request_spec=request_spec
        )

    def pause_instance(self, context: RequestContext, instance: Instance) -> None:
        self._cast(context, _host_of(instance), "pause_instance", instance=instance)

    def unpause_instance(self, context: RequestContext, instance: Instance) -> None:
        self._cast(context, _host_of(instance), "unpause_instance", instance=instance)

    def stop_instance(self, context: RequestContext, instance: Instance) -> None:
        self._cast(context, _host_of(instance), "stop_instance", instance=instance)

    def start_instance(self, context: RequestContext, instance: Instance) -> None:
        self._cast(context, _host_of(instance), "start_instance", instance=instance)

    def reboot_instance(self, context: RequestContext, instance: Instance) -> None:
        self._cast(context, _host_of(instance), "reboot_instance", instance=instance)

    def terminate_instance(self, context: RequestContext, instance: Instance) -> None:
        self._cast(context, _host_of(instance), "terminate_instance", instance=instance)


def _host_of(instance: Instance) -> str:
    host = instance.host
    if not host:
        raise ValueError(f"instance {instance.uuid} has no host to send the action to")
    return str(host)


class ComputeTaskAPI:
    """The conductor's build flow, and the guest agents' heartbeats.

    1.0 - build_instances, guest_heartbeat
    """

    VERSION = "1.0"

    def __init__(self, transport: Transport) -> None:
        self._client = RPCClient(
            transport,
            Target(topic=COMPUTE_TASK_TOPIC, version=self.VERSION),
            serializer=VersionedObjectSerializer(),
        )

    def build_instances(
        self, context: RequestContext, instances: list[Instance], request_spec: dict[str, Any]
    ) -> None:
        """Schedule and build; ``request_spec["num_attempts"]``/``ignore_hosts`` carry retries."""
        self._client.cast(
            context, "build_instances", instances=instances, request_spec=request_spec
        )

    def guest_heartbeat(
        self, context: RequestContext, instance_uuid: str, status: str, sent_at: str
    ) -> None:
        self._client.cast(
            context,
            "guest_heartbeat",
            instance_uuid=instance_uuid,
            status=status,
            sent_at=sent_at,
        )
