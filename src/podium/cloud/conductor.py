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
from typing import Any

from podium.cloud import states
from podium.cloud.config import CloudConfig
from podium.cloud.exceptions import NoValidHost, UnexpectedTaskStateError
from podium.cloud.objects import Instance, InstanceFault, Service
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
from podium.exceptions import NotFound, PodiumError
from podium.objects import run_locally
from podium.rpc import Target, Transport
from podium.service import PeriodicTask

LOG = logging.getLogger(__name__)

CONDUCTOR_BINARY = "podium-conductor"


class ComputeTaskManager:
    """Schedules builds, hands them to computes, reschedules failures, records faults."""

    target = Target(topic=COMPUTE_TASK_TOPIC, version=ComputeTaskAPI.VERSION)

    def __init__(
        self, transport: Transport, database: Database, host: str, config: CloudConfig
    ) -> None:
        self.database = database
        self.host = host
        self.config = config
        self.scheduler = SchedulerAPI(transport, timeout=config.rpc_timeout)
        self.compute = ComputeAPI(transport)
        #: Guest heartbeats that arrived after a newer one and were dropped.
        self.stale_heartbeats = 0

    def periodic_tasks(self) -> list[PeriodicTask]:
        """The conductor's own heartbeat, like every other service's (run by ConductorService)."""
        return [
            PeriodicTask(
                "podium-conductor-heartbeat",
                self.config.report_interval,
                self._report,
                initial_delay=0.0,
            )
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
        if instance.host is not None:
            # The build was already handed to a host (a redelivered cast): the
            # first delivery owns it.
            LOG.info(
                "instance %s is already on %s; not building it again", instance.uuid, instance.host
            )
            return
        if instance.task_state != states.SCHEDULING:
            LOG.info(
                "instance %s is %s/%s, not waiting for a host; not building it",
                instance.uuid,
                instance.vm_state,
                instance.task_state,
            )
            return
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
            return
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
        try:
            [destination] = self.scheduler.select_destinations(ctxt, spec)
        except NoValidHost as error:
            self._fail(ctxt, instance, f"No valid host was found. {error}")
            return
        except PodiumError as error:
            self._fail(
                ctxt,
                instance,
                f"Scheduling failed: {type(error).__name__}: {error}",
                details="".join(traceback.format_exception(error)),
            )
            return
        instance.refresh()
        LOG.info(
            "instance %s goes to %s (attempt %d)", instance.uuid, destination["host"], attempts
        )
        self.compute.build_and_run_instance(ctxt, destination["host"], instance, spec)

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
