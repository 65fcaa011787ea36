"""The conductor's part of the cloud: the build flow, and the guest agents' heartbeats.

Served on topic ``conductor`` beside the object calls (namespace
``compute_task``). Its object methods run here, on the conductor's database,
even in a process whose workers route theirs through the bus (the
all-in-one): a conductor thread waiting on its own conductor for a free
worker would deadlock under load.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence
from typing import Any

from podium.cloud import states
from podium.cloud.config import CloudConfig
from podium.cloud.exceptions import NoValidHost, UnexpectedTaskStateError
from podium.cloud.objects import Instance, InstanceFault
from podium.cloud.rpcapi import COMPUTE_TASK_NAMESPACE, ComputeAPI, ComputeTaskAPI, SchedulerAPI
from podium.context import RequestContext
from podium.db import Database
from podium.db.current import use_database
from podium.exceptions import NotFound, PodiumError
from podium.objects import run_locally
from podium.rpc import Target, Transport

LOG = logging.getLogger(__name__)


class ComputeTaskManager:
    """Schedules builds, hands them to computes, reschedules failures, records faults."""

    target = Target(namespace=COMPUTE_TASK_NAMESPACE, version=ComputeTaskAPI.VERSION)

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
            LOG.info("instance %s is already on %s; not building it again", instance.uuid,
                     instance.host)
            return
        if instance.task_state != states.SCHEDULING:
            LOG.info("instance %s is %s/%s, not waiting for a host; not building it",
                     instance.uuid, instance.vm_state, instance.task_state)
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
            flavor={"vcpus": instance.vcpus, "memory_mb": instance.memory_mb,
                    "disk_gb": instance.root_gb},
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
        LOG.info("instance %s goes to %s (attempt %d)", instance.uuid, destination["host"],
                 attempts)
        self.compute.build_and_run_instance(ctxt, destination["host"], instance, spec)

    def _fail(
        self, ctxt: RequestContext, instance: Instance, message: str, details: str = ""
    ) -> None:
        """ERROR with a fault saying why; an instance another action took over is left alone."""
        LOG.warning("instance %s: %s", instance.uuid, message)
        instance.vm_state = states.ERROR
        instance.task_state = None
        try:
            instance.save(expected_task_state=[states.SCHEDULING])
        except UnexpectedTaskStateError:
            LOG.info("instance %s changed task meanwhile; no fault recorded", instance.uuid)
            return
        InstanceFault(
            ctxt,
            instance_uuid=instance.uuid,
            code=500,
            message=message,
            details=details or None,
            host=self.host,
        ).create()

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
            LOG.debug("guest heartbeat of %s sent %s is older than the stored one; dropped",
                      instance_uuid, sent_at)


def conductor_endpoints(transport: Transport, database: Database, host: str) -> Sequence[Any]:
    """What the cloud adds to every conductor (``App.conductor_endpoints``)."""
    return [ComputeTaskManager(transport, database, host, CloudConfig.from_env())]
