"""Client sides of the cloud's RPC APIs: what a service calls or casts, in one place.

Each class holds the API's version history; a change that adds an argument or
a method bumps the minor version, and callers check ``can_send_version``.

What a client may send to a topic is capped by its ``upgrade_levels`` entry
(:class:`VersionCap`): a version, a release name, or ``auto`` (the default),
which follows the oldest release among the live services of the topic.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from podium.cloud.config import CloudConfig
from podium.cloud.exceptions import UpgradeInProgress
from podium.cloud.objects import Instance, Service
from podium.cloud.releases import (
    RELEASES,
    Release,
    check_upgrade_levels,
    newest_release,
    release_for,
    release_named,
    release_speaking,
)
from podium.context import RequestContext, get_admin_context
from podium.exceptions import PodiumError
from podium.objects import VersionedObjectSerializer
from podium.rpc import RPCClient, Target, Transport

LOG = logging.getLogger(__name__)

SCHEDULER_TOPIC = "scheduler"
COMPUTE_TOPIC = "compute"
CONDUCTOR_TOPIC = "conductor"
#: The conductor's build flow has a topic (and a worker pool) of its own: a
#: build waits on the scheduler, whose object calls need free conductor workers.
COMPUTE_TASK_TOPIC = "compute_task"

#: The binary whose Service rows say what the servers of a topic run.
BINARY_OF_TOPIC = {
    COMPUTE_TOPIC: "podium-compute",
    SCHEDULER_TOPIC: "podium-scheduler",
    COMPUTE_TASK_TOPIC: "podium-conductor",
}


def sent_now() -> str:
    """A send time for a heartbeat: now, ISO 8601 in UTC."""
    return datetime.now(UTC).isoformat()


class ManifestSerializer(VersionedObjectSerializer):
    """Sends objects backported to a release's versions (children included)."""

    def __init__(self, manifest: Mapping[str, str]) -> None:
        super().__init__()
        self.manifest = dict(manifest)

    def serialize_entity(
        self, context: Any, entity: Any, version_manifest: Mapping[str, str] | None = None
    ) -> Any:
        return super().serialize_entity(context, entity, version_manifest or self.manifest)


@dataclass(frozen=True)
class Pin:
    """What a client sends to a topic now: the RPC version cap, the objects' release."""

    #: None: no cap, the newest version.
    version_cap: str | None
    #: The release the receivers run; None when that is this one (nothing to backport).
    release: Release | None


class VersionCap:
    """The ``upgrade_levels`` entry of one topic, resolved to a :class:`Pin`.

    ``auto`` reads the lowest version the live services of the topic report
    (their Service rows) at most once every ``refresh_interval`` seconds, when
    a message is about to go: a service's version changes only with one of
    its reports, which come every ``report_interval``, so reading more often
    finds nothing new, and a process that sends nothing asks nothing. The cap
    thus rises by itself within one interval of the last old service
    reporting in at the new version, and falls as fast if an old one comes
    back. Until a read succeeds the oldest release is assumed: it is always
    safe to send to.
    """

    def __init__(
        self,
        topic: str,
        level: str = "auto",
        *,
        refresh_interval: float = 10.0,
        minimum_version: Callable[[str], int | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_upgrade_levels({topic: level})
        self.topic = topic
        self.level = level
        self.refresh_interval = refresh_interval
        self._minimum_version = minimum_version or _live_minimum_version
        self._clock = clock
        self._lock = threading.Lock()
        self._read_at: float | None = None
        if level == "auto":
            self._pin = _pin_of(RELEASES[0], topic)
        elif level[:1].isdigit():
            self._pin = _pin_of(release_speaking(topic, level), topic, version=level)
        else:
            self._pin = _pin_of(release_named(level), topic)

    @classmethod
    def for_topic(cls, topic: str, config: CloudConfig | None = None) -> VersionCap:
        """The cap ``config``'s ``upgrade_levels`` sets on ``topic`` (default ``auto``)."""
        if config is None:
            return cls(topic)
        return cls(
            topic,
            config.upgrade_levels.get(topic, "auto"),
            refresh_interval=config.report_interval,
        )

    def pin(self) -> Pin:
        """What to send now; with ``auto``, re-read once the last read is an interval old."""
        if self.level == "auto" and self._stale():
            with self._lock:
                if self._stale():
                    self._refresh()
        return self._pin

    def _stale(self) -> bool:
        return self._read_at is None or self._clock() - self._read_at >= self.refresh_interval

    def _refresh(self) -> None:
        binary = BINARY_OF_TOPIC[self.topic]
        try:
            lowest = self._minimum_version(binary)
        except PodiumError as error:
            # Kept as it was (the oldest release before any read), read again
            # at the next interval.
            LOG.warning("%s RPC: cannot read the versions of %s: %s", self.topic, binary, error)
            self._read_at = self._clock()
            return
        release = newest_release() if lowest is None else release_for(lowest)
        pin = _pin_of(release, self.topic)
        if pin != self._pin or self._read_at is None:
            LOG.info(
                "%s RPC: sending version %s (release %s): the oldest live %s reports %s",
                self.topic,
                release.rpc[self.topic],
                release.name,
                binary,
                "nothing yet" if lowest is None else f"version {lowest}",
            )
        self._pin = pin
        self._read_at = self._clock()


def _live_minimum_version(binary: str) -> int | None:
    return Service.get_minimum_version(get_admin_context(), binary)


def _pin_of(release: Release, topic: str, version: str | None = None) -> Pin:
    if release == newest_release() and version in (None, release.rpc[topic]):
        return Pin(None, None)
    return Pin(version or release.rpc[topic], release)


class _Router:
    """The client to send with now: capped, its objects at the receivers' release."""

    def __init__(
        self,
        transport: Transport,
        topic: str,
        version: str,
        cap: VersionCap,
        timeout: float | None = 60.0,
    ) -> None:
        self.cap = cap
        self._newest = RPCClient(
            transport,
            Target(topic=topic, version=version),
            timeout=timeout,
            serializer=VersionedObjectSerializer(),
        )
        self._capped: dict[tuple[str | None, str], RPCClient] = {}

    def client(self) -> RPCClient:
        pin = self.cap.pin()
        if pin.release is None:
            return self._newest
        key = (pin.version_cap, pin.release.name)
        client = self._capped.get(key)
        if client is None:
            newest = self._newest
            client = RPCClient(
                newest.transport,
                newest.target,
                version_cap=pin.version_cap,
                timeout=newest.timeout,
                serializer=ManifestSerializer(pin.release.objects),
            )
            self._capped[key] = client
        return client


class SchedulerAPI:
    """Picks hosts for instances and claims their resources there.

    1.0 - select_destinations
    """

    VERSION = "1.0"

    def __init__(
        self, transport: Transport, *, timeout: float = 60.0, config: CloudConfig | None = None
    ) -> None:
        self.router = _Router(
            transport,
            SCHEDULER_TOPIC,
            self.VERSION,
            VersionCap.for_topic(SCHEDULER_TOPIC, config),
            timeout=timeout,
        )

    def select_destinations(
        self, context: RequestContext, request_spec: dict[str, Any]
    ) -> list[dict[str, str]]:
        """One ``{"host", "node"}`` per instance of the spec, each already claimed there."""
        client = self.router.client().prepare(version="1.0")
        result: list[dict[str, str]] = client.call(
            context, "select_destinations", request_spec=request_spec
        )
        return result


class ComputeAPI:
    """Asks one compute host to act on an instance (casts, but for what returns something).

    1.0 - build_and_run_instance, pause/unpause/stop/start/reboot/terminate_instance
    1.1 - reboot_instance(reboot_type); get_console_output
    """

    VERSION = "1.1"

    def __init__(self, transport: Transport, config: CloudConfig | None = None) -> None:
        self.router = _Router(
            transport,
            COMPUTE_TOPIC,
            self.VERSION,
            VersionCap.for_topic(COMPUTE_TOPIC, config),
            timeout=config.rpc_timeout if config is not None else 60.0,
        )

    def _cast(
        self, context: RequestContext, host: str, method: str, version: str = "1.0", **kwargs: Any
    ) -> None:
        client = self.router.client().prepare(server=host, version=version)
        client.cast(context, method, **kwargs)

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

    def terminate_instance(self, context: RequestContext, instance: Instance) -> None:
        self._cast(context, _host_of(instance), "terminate_instance", instance=instance)

    def reboot_instance(
        self, context: RequestContext, instance: Instance, reboot_type: str = "HARD"
    ) -> None:
        """HARD (what 1.0's one reboot is) or SOFT (a running guest restarts itself)."""
        host = _host_of(instance)
        if self.router.client().can_send_version("1.1"):
            self._cast(
                context, host, "reboot_instance", "1.1", instance=instance, reboot_type=reboot_type
            )
            return
        if reboot_type != "HARD":
            LOG.info(
                "instance %s: a %s reboot goes as the only kind compute RPC 1.0 has (hard)",
                instance.uuid,
                reboot_type,
            )
        self._cast(context, host, "reboot_instance", instance=instance)

    def get_console_output(
        self, context: RequestContext, instance: Instance, tail_length: int | None = None
    ) -> str:
        """The guest's console log (the last ``tail_length`` lines); a call."""
        client = self.router.client()
        if not client.can_send_version("1.1"):
            raise UpgradeInProgress(
                "the console output needs compute RPC 1.1, and some compute service runs an "
                f"older release (sending {client.version_cap} at most until it is upgraded)"
            )
        prepared = client.prepare(server=_host_of(instance), version="1.1")
        output: str = prepared.call(
            context, "get_console_output", instance=instance, tail_length=tail_length
        )
        return output


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

    def __init__(self, transport: Transport, config: CloudConfig | None = None) -> None:
        self.router = _Router(
            transport,
            COMPUTE_TASK_TOPIC,
            self.VERSION,
            VersionCap.for_topic(COMPUTE_TASK_TOPIC, config),
        )

    def build_instances(
        self, context: RequestContext, instances: list[Instance], request_spec: dict[str, Any]
    ) -> None:
        """Schedule and build; ``request_spec["num_attempts"]``/``ignore_hosts`` carry retries."""
        client = self.router.client().prepare(version="1.0")
        client.cast(context, "build_instances", instances=instances, request_spec=request_spec)

    def guest_heartbeat(
        self, context: RequestContext, instance_uuid: str, status: str, sent_at: str
    ) -> None:
        client = self.router.client().prepare(version="1.0")
        client.cast(
            context,
            "guest_heartbeat",
            instance_uuid=instance_uuid,
            status=status,
            sent_at=sent_at,
        )
