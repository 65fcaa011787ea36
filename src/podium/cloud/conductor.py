"""The conductor's part of the cloud: the build flow, and the guest agents' heartbeats.

Served by every conductor on topic ``compute_task``, with a worker pool apart
from the object calls': a build waits on the scheduler, whose own object
calls need free conductor workers. For the same reason its object methods run
here, on the conductor's database, even in a process whose workers route
theirs through the bus (the all-in-one).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from podium.cloud import states
from podium.cloud.config import CloudConfig
from podium.cloud.exceptions import NoValidHost, UnexpectedTaskStateError
from podium.cloud.objects import ComputeNode, Instance, InstanceFault, InstanceList, Service
from podium.cloud.rpcapi import (
    COMPUTE_TASK_TOPIC,
    CONDUCTOR_TOPIC,
    ComputeAPI,
    ComputeTaskAPI,
    SchedulerAPI,
    sent_now,
)
from podium.cloud.service import SERVICE_VERSION
from podium.context import RequestContext, get_admin_context
from podium.db import Database
from podium.db.current import use_database
from podium.exceptions import MessagingError, NotFound, PodiumError
from podium.objects import run_locally
from podium.rpc import Target, Transport
from podium.service import PeriodicTask

LOG = logging.getLogger(__name__)

CONDUCTOR_BINARY = "podium-conductor"

#: Seconds a build may stay ``scheduling`` before the conductor drives it again.
#: Well above a normal schedule-and-cast; a re-drive of a build that was only
#: slow is harmless (the claim and the compute's CAS let one copy through).
BUILD_TIMEOUT = 300.0


class ComputeTaskManager:
    """Schedules builds, hands them to computes, reschedules failures, records faults."""

    target = Target(topic=COMPUTE_TASK_TOPIC, version=ComputeTaskAPI.VERSION)

    def __init__(
        self, transport: Transport, database: Database, host: str, config: CloudConfig
    ) -> None:
        self.database = database
        self.host = host
        self.config = config
        self.scheduler = SchedulerAPI(transport, timeout=config.rpc_timeout, config=config)
        self.compute = ComputeAPI(transport, config)
        #: Guest heartbeats that arrived after a newer one and were dropped.
        self.stale_heartbeats = 0
        self.build_timeout = BUILD_TIMEOUT

    def periodic_tasks(self) -> list[PeriodicTask]:
        """The conductor's own heartbeat, like every other service's (run by ConductorService)."""
        return [
            PeriodicTask(
                "podium-conductor-heartbeat",
                self.config.report_interval,
                self._report,
                initial_delay=0.0,
            ),
            # A stuck build waits between build_timeout and 1.25 times it.
            PeriodicTask(
                "podium-conductor-stuck-builds", self.build_timeout / 4, self.redrive_stuck_builds
            ),
        ]

    def _report(self) -> Service:
        with run_locally(), use_database(self.database):
            return Service.report(
                get_admin_context(),
                self.host,
                CONDUCTOR_BINARY,
                CONDUCTOR_TOPIC,
                SERVICE_VERSION,
                sent_now(),
            )

    def redrive_stuck_builds(self) -> int:
        """Drive again the builds ``scheduling`` for longer than ``build_timeout``; how many.

        What leaves one there: a conductor that died (or whose cast failed
        unnoticed) between taking the build and handing it to a compute, a
        compute that died before casting its reschedule. Every conductor runs
        this; two re-driving the same build meet at the claim.
        """
        ctxt = get_admin_context()
        now = datetime.now(UTC)
        redriven = 0
        with run_locally(), use_database(self.database):
            stuck = InstanceList.get_all(ctxt, filters={"task_state": states.SCHEDULING})
            for instance in stuck:
                since = instance.updated_at or instance.created_at
                if since is None or (now - since).total_seconds() <= self.build_timeout:
                    continue
                LOG.warning(
                    "instance %s has been scheduling since %s (host %s); driving its build again",
                    instance.uuid,
                    since.isoformat(),
                    instance.host,
                )
                redriven += 1
                try:
                    self._build_one(ctxt, instance, {})
                except NotFound:
                    LOG.info("instance %s was deleted before it was built", instance.uuid)
                except PodiumError:
                    # The others still get their turn; this one is retried next round.
                    LOG.exception("instance %s: driving its build again failed", instance.uuid)
        return redriven

    def build_instances(
        self, ctxt: RequestContext, instances: list[Instance], request_spec: dict[str, Any]
    ) -> None:
        with run_locally(), use_database(self.database):
            for instance in instances:
                try:
                    self._build_one(ctxt, instance, dict(request_spec))
                except NotFound:
                    LOG.info("instance %s was deleted before it was built", instance.uuid)

    def _build_one(self, ctxt: RequestContext, instance: Instance, spec: dict[str, Any]) -> None:
        instance.refresh()
        if instance.task_state != states.SCHEDULING:
            LOG.info(
                "instance %s is %s/%s, not waiting for a host; not building it",
                instance.uuid,
                instance.vm_state,
                instance.task_state,
            )
            return
        host: str | None = instance.host
        if host is not None:
            # Claimed, but still scheduling: the cast to the host may never have
            # been sent (a conductor that died or failed after the claim). Sending
            # it again is harmless: the compute's CAS scheduling -> spawning lets
            # one copy through.
            LOG.info(
                "instance %s is claimed by %s but not spawning; build cast again",
                instance.uuid,
                host,
            )
        while True:
            if host is None:
                host = self._schedule(ctxt, instance, spec)
                if host is None:
                    return
            if self._cast_build(ctxt, instance, host, spec):
                return
            host = None

    def _schedule(
        self, ctxt: RequestContext, instance: Instance, spec: dict[str, Any]
    ) -> str | None:
        """The host the instance is claimed on, for a new attempt; None once it is in ERROR
        or taken over by another action."""
        attempts = int(spec.get("num_attempts", 0)) + 1
        if attempts > self.config.max_build_attempts:
            reason = spec.get("last_failure") or "the build failed"
            self._fail(
                ctxt,
                instance,
                f"Exceeded maximum number of build attempts ({self.config.max_build_attempts}) "
                f"for instance {instance.uuid}. Last failure: {reason}",
                details=str(spec.get("last_failure_details") or ""),
            )
            return None
        spec.update(
            num_attempts=attempts,
            instance_uuids=[instance.uuid],
            flavor={
                "vcpus": instance.vcpus,
                "memory_mb": instance.memory_mb,
                "disk_gb": instance.root_gb,
            },
            ignore_hosts=list(spec.get("ignore_hosts", [])),
        )
        destination = self._select_destination(ctxt, instance, spec)
        if destination is None:
            return None
        instance.refresh()
        if instance.task_state != states.SCHEDULING:
            LOG.info(
                "instance %s became %s/%s while it was scheduled; not building it",
                instance.uuid,
                instance.vm_state,
                instance.task_state,
            )
            return None
        if instance.host != destination:
            # Another delivery of this build (a duplicate on another conductor)
            # placed it, or gave its claim back since: the cast follows the
            # instance, and the compute's CAS keeps a second copy harmless.
            LOG.info(
                "instance %s: scheduled to %s, but it is on %s; following the instance",
                instance.uuid,
                destination,
                instance.host,
            )
            if instance.host is None:
                return self._schedule(ctxt, instance, spec)
        LOG.info("instance %s goes to %s (attempt %d)", instance.uuid, instance.host, attempts)
        return str(instance.host)

    def _select_destination(
        self, ctxt: RequestContext, instance: Instance, spec: dict[str, Any]
    ) -> str | None:
        """The host the scheduler claimed for the instance; None once the instance is
        in ERROR because it found none."""
        try:
            [destination] = self.scheduler.select_destinations(ctxt, spec)
        except NoValidHost as error:
            self._fail(ctxt, instance, f"No valid host was found. {error}")
            return None
        except PodiumError as error:
            self._fail(
                ctxt,
                instance,
                f"Scheduling failed: {type(error).__name__}: {error}",
                details="".join(traceback.format_exception(error)),
            )
            return None
        return destination["host"]

    def _cast_build(
        self, ctxt: RequestContext, instance: Instance, host: str, spec: dict[str, Any]
    ) -> bool:
        """Hand the build to ``host``; False when the cast failed and its claim was given back.

        The RPC server acks a cast whose handler raised, so an error let out
        of here would lose the build for good: the instance would stay
        building, holding its claim.
        """
        try:
            self.compute.build_and_run_instance(ctxt, host, instance, spec)
        except MessagingError as error:
            LOG.warning("instance %s: the build cast to %s failed: %s", instance.uuid, host, error)
            failure = error
        else:
            return True
        instance.refresh()
        if instance.task_state != states.SCHEDULING or instance.host != host:
            # The compute got the cast after all, or another action took the
            # instance over: the claim is theirs now.
            LOG.info(
                "instance %s is %s/%s on %s since the failed cast; left as it is",
                instance.uuid,
                instance.vm_state,
                instance.task_state,
                instance.host,
            )
            return True
        ComputeNode.release(ctxt, host, instance.uuid)
        instance.refresh()
        spec["ignore_hosts"] = [*spec.get("ignore_hosts", []), host]
        spec["last_failure"] = f"{type(failure).__name__}: {failure} (cast to host {host})"
        spec["last_failure_details"] = "".join(traceback.format_exception(failure))
        return False

    def _fail(
        self, ctxt: RequestContext, instance: Instance, message: str, details: str = ""
    ) -> None:
        """ERROR with a fault saying why; an instance another action took over is left alone.

        The fault is written first: a reader that sees ERROR finds its reason
        (a fault on an instance that is not in ERROR is never shown).
        """
        LOG.warning("instance %s: %s", instance.uuid, message)
        InstanceFault(
            ctxt,
            instance_uuid=instance.uuid,
            code=500,
            message=message,
            details=details or None,
            host=self.host,
        ).create()
        instance.vm_state = states.ERROR
        instance.task_state = None
        try:
            instance.save(expected_task_state=[states.SCHEDULING])
        except UnexpectedTaskStateError:
            LOG.info("instance %s changed task meanwhile; left as it is", instance.uuid)

    def guest_heartbeat(
        self, ctxt: RequestContext, instance_uuid: str, status: str, sent_at: str
    ) -> None:
        """Trove's guest heartbeat: stored unless a newer one already is."""
        with run_locally(), use_database(self.database):
            try:
                stored = Instance.record_guest_status(ctxt, instance_uuid, status, sent_at)
            except NotFound:
                LOG.debug("guest heartbeat for deleted instance %s dropped", instance_uuid)
                return
        if not stored:
            self.stale_heartbeats += 1
            LOG.debug(
                "guest heartbeat of %s sent %s is older than the stored one; dropped",
                instance_uuid,
                sent_at,
            )


def conductor_endpoints(transport: Transport, database: Database, host: str) -> Sequence[Any]:
    """What the cloud adds to every conductor (``App.conductor_endpoints``)."""
    return [ComputeTaskManager(transport, database, host, CloudConfig.from_env())]
