"""The compute agent: builds and acts on the instances of one host, through the conductor.

It holds no database credentials: every read and write is an object method
that the conductor runs. Its state machine is Nova's:

* build: ``scheduling`` -> ``spawning`` (compare-and-swap), the driver spawns,
  then ``active``/``RUNNING``/no task (compare-and-swap on ``spawning``);
  a failed spawn gives the claim back and hands the build to the conductor to
  try another host.
* actions: the API sets the action's ``task_state`` first (the guard against a
  concurrent action); the compute does the hypervisor's part and clears it with
  a compare-and-swap on that state.

Casts arrive at least once and possibly late; an instance that is no longer
in the state a message expects is logged and the message dropped.
"""

from __future__ import annotations

import logging
import threading
import traceback
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from podium.cloud import states
from podium.cloud.compute.driver import FakeDriver
from podium.cloud.config import CloudConfig
from podium.cloud.exceptions import UnexpectedTaskStateError
from podium.cloud.objects import ComputeNode, Instance, InstanceFault, InstanceList
from podium.cloud.rpcapi import ComputeAPI, ComputeTaskAPI, sent_now
from podium.context import RequestContext, get_admin_context
from podium.db import block_db_access
from podium.exceptions import MessagingError, NotFound, PodiumError, PolicyNotAuthorized
from podium.rpc import Target, Transport
from podium.service import PeriodicTask

LOG = logging.getLogger(__name__)

__all__ = ["COMPUTE_BINARY", "ComputeManager", "guest_status_of"]

COMPUTE_BINARY = "podium-compute"

#: What a guest agent says for each power state (Trove's statuses).
_GUEST_STATUS = {
    states.RUNNING: "HEALTHY",
    states.PAUSED_POWER: "PAUSED",
    states.SHUTDOWN: "SHUTDOWN",
}

#: The vm_state an instance at rest in a power state has.
_VM_STATE_OF_POWER = {
    states.RUNNING: states.ACTIVE,
    states.PAUSED_POWER: states.PAUSED,
    states.SHUTDOWN: states.STOPPED,
}

#: The task states an action leaves behind if the compute dies in the middle of it.
_ACTION_TASK_STATES = (
    states.PAUSING,
    states.UNPAUSING,
    states.POWERING_OFF,
    states.POWERING_ON,
    states.REBOOTING,
)


def guest_status_of(power_state: int) -> str:
    return _GUEST_STATUS.get(power_state, "UNKNOWN")


def _now() -> datetime:
    return datetime.now(UTC)


class _InstanceLocks:
    """One lock per instance uuid, alive only while someone holds or waits on it.

    Nova serialises its operations on an instance the same way: a delete that
    arrives during a build waits for the build instead of racing its driver calls.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: weakref.WeakValueDictionary[str, threading.Lock] = (
            weakref.WeakValueDictionary()
        )

    @contextmanager
    def held(self, uuid: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.get(uuid)
            if lock is None:
                lock = threading.Lock()
                self._locks[uuid] = lock
        with lock:
            yield


class ComputeManager:
    """The endpoint of topic ``compute`` on one host, and that host's periodic work.

    ``init_host`` and ``periodic_tasks`` are called by the service runner
    (before it takes requests); they take no request context, so the RPC
    dispatcher, which passes one to every method, cannot run them from a message.
    """

    target = Target(version=ComputeAPI.VERSION)

    def __init__(
        self,
        transport: Transport,
        config: CloudConfig,
        host: str,
        driver: FakeDriver,
        *,
        block_db: bool = True,
    ) -> None:
        self.config = config
        self.host = host
        self.driver = driver
        self.compute_task = ComputeTaskAPI(transport, config)
        # Off only where the conductor shares this process (the all-in-one and
        # in-process tests): the block is process-wide and would stop it too.
        self._block_db = block_db
        self._locks = _InstanceLocks()

    # -- service lifecycle -----------------------------------------------------

    def init_host(self) -> None:
        """Before taking requests: refuse the database, report the node, settle its instances."""
        if self._block_db:
            block_db_access(COMPUTE_BINARY)
        ctxt = get_admin_context()
        self._report_node(ctxt)
        for instance in InstanceList.get_by_host(ctxt, self.host):
            try:
                self._reconcile(ctxt, instance)
            except (UnexpectedTaskStateError, NotFound) as error:
                # Someone moved it while we looked (an API delete): theirs stands.
                LOG.info("instance %s changed during reconciliation: %s", instance.uuid, error)
        # What the host holds, recounted from the instances on it: a claim or a
        # release lost with a crashed process is repaired here.
        ComputeNode.reconcile_usage(ctxt, self.host)
        LOG.info(
            "compute %s: host initialised, %d VM(s)", self.host, len(self.driver.list_instances())
        )

    def _reconcile(self, ctxt: RequestContext, instance: Instance) -> None:
        task = instance.task_state
        if task == states.SCHEDULING:
            # Claimed for this host, its build cast still queued: it comes
            # after start-up and is built then.
            return
        if task == states.SPAWNING:
            # The VM was never finished; what the hypervisor made of it is unknown.
            self.driver.destroy(instance.uuid)
            self._set_error(
                ctxt, instance, states.SPAWNING, "compute restarted during build", code=500
            )
            return
        # The fake driver forgets its VMs with the process; a real one keeps
        # them. Give it back what the database says runs here (NOSTATE: there
        # is no VM, e.g. an instance left in ERROR by an earlier restart).
        if instance.power_state != states.NOSTATE:
            self.driver.adopt(instance.uuid, instance.power_state)
        if task == states.DELETING:
            self._finish_delete(ctxt, instance)
        elif task in _ACTION_TASK_STATES:
            power = self.driver.get_power_state(instance.uuid)
            instance.power_state = power
            instance.vm_state = _VM_STATE_OF_POWER.get(power, instance.vm_state)
            instance.task_state = None
            instance.save(expected_task_state=task)
            LOG.info("instance %s: %s interrupted by a restart; task cleared", instance.uuid, task)

    def periodic_tasks(self) -> list[PeriodicTask]:
        interval = self.config.report_interval
        return [
            PeriodicTask(
                f"{COMPUTE_BINARY}-resources",
                interval,
                lambda: self._report_node(get_admin_context()),
            ),
            PeriodicTask(f"{COMPUTE_BINARY}-guest-heartbeats", interval, self._guest_heartbeats),
        ]

    def _report_node(self, ctxt: RequestContext) -> None:
        resources = self.driver.resources
        ComputeNode.report(
            ctxt,
            self.host,
            resources.vcpus,
            resources.memory_mb,
            resources.disk_gb,
            hypervisor_hostname=self.host,
        )

    def _guest_heartbeats(self) -> None:
        ctxt = get_admin_context()
        for uuid in self.driver.list_instances():
            status = guest_status_of(self.driver.get_power_state(uuid))
            # Stamped when sent: a heartbeat overtaken on the bus is dropped
            # by the conductor instead of overwriting the newer one.
            self.compute_task.guest_heartbeat(ctxt, uuid, status, sent_now())

    # -- build -----------------------------------------------------------------

    def build_and_run_instance(
        self, ctxt: RequestContext, instance: Instance, request_spec: dict[str, Any]
    ) -> None:
        with self._locks.held(instance.uuid), _dropped_if_moved(instance, "build"):
            # The message's copy may be stale (a cast sent before the claim
            # moved) or wrong: the database says where the instance is claimed.
            instance.refresh()
            if instance.host != self.host:
                LOG.warning(
                    "instance %s is claimed by %r, not by %s; build dropped",
                    instance.uuid,
                    instance.host,
                    self.host,
                )
                return
            if instance.task_state != states.SCHEDULING:
                LOG.info(
                    "instance %s is %s/%s, not waiting for its build; build dropped",
                    instance.uuid,
                    instance.vm_state,
                    instance.task_state,
                )
                return
            instance.task_state = states.SPAWNING
            instance.save(expected_task_state=states.SCHEDULING)
            try:
                self.driver.spawn(instance.uuid)
            except Exception as error:  # any hypervisor failure: let another host try
                self._reschedule(ctxt, instance, request_spec, error)
                return
            instance.vm_state = states.ACTIVE
            instance.power_state = self.driver.get_power_state(instance.uuid)
            instance.task_state = None
            instance.launched_at = _now()
            try:
                instance.save(expected_task_state=states.SPAWNING)
            except (UnexpectedTaskStateError, NotFound):
                # Only a delete takes a spawning instance over. Ours waits for
                # this lock and removes the VM; one that finished without us
                # (the API deletes by itself when this host looks down) cannot.
                self._destroy_if_deleted(ctxt, instance.uuid)
                raise
            LOG.info("instance %s is active on %s", instance.uuid, self.host)

    def _reschedule(
        self,
        ctxt: RequestContext,
        instance: Instance,
        request_spec: dict[str, Any],
        error: Exception,
    ) -> None:
        LOG.warning("build of instance %s failed on %s: %s", instance.uuid, self.host, error)
        self.driver.destroy(instance.uuid)
        instance.task_state = states.SCHEDULING
        # The CAS keeps a delete that came meanwhile from being undone by a rebuild.
        # Saved while the instance is still this host's: the conductor lets a
        # compute change only its own instances, and the release gives it away.
        instance.save(expected_task_state=states.SPAWNING)
        ComputeNode.release(ctxt, self.host, instance.uuid)
        spec = dict(request_spec)
        spec["ignore_hosts"] = [*spec.get("ignore_hosts", []), self.host]
        spec["last_failure"] = f"{type(error).__name__}: {error} (host {self.host})"
        spec["last_failure_details"] = "".join(traceback.format_exception(error))
        try:
            self.compute_task.build_instances(ctxt, [instance], spec)
        except MessagingError as cast_error:
            # Nobody else would ever pick it up: it has no host, and the
            # server acks this cast whatever we raise.
            self._set_error(
                ctxt,
                instance,
                states.SCHEDULING,
                f"Build failed on host {self.host} ({spec['last_failure']}) and could not be "
                f"rescheduled: {type(cast_error).__name__}: {cast_error}",
                code=500,
                details="".join(traceback.format_exception(cast_error)),
            )

    def _destroy_if_deleted(self, ctxt: RequestContext, uuid: str) -> None:
        try:
            current = Instance.get_by_uuid(ctxt, uuid)
        except NotFound:
            self.driver.destroy(uuid)
            return
        if current.task_state == states.DELETING:
            return  # the terminate cast is on its way (it waits for our lock)
        LOG.warning(
            "instance %s is %s/%s after its spawn; VM kept",
            uuid,
            current.vm_state,
            current.task_state,
        )

    # -- actions ---------------------------------------------------------------

    def pause_instance(self, ctxt: RequestContext, instance: Instance) -> None:
        self._act(ctxt, instance, states.PAUSING, self.driver.pause, states.PAUSED)

    def unpause_instance(self, ctxt: RequestContext, instance: Instance) -> None:
        self._act(ctxt, instance, states.UNPAUSING, self.driver.unpause, states.ACTIVE)

    def stop_instance(self, ctxt: RequestContext, instance: Instance) -> None:
        self._act(ctxt, instance, states.POWERING_OFF, self.driver.power_off, states.STOPPED)

    def start_instance(self, ctxt: RequestContext, instance: Instance) -> None:
        self._act(ctxt, instance, states.POWERING_ON, self.driver.power_on, states.ACTIVE)

    def reboot_instance(
        self, ctxt: RequestContext, instance: Instance, reboot_type: str | None = None
    ) -> None:
        # 1.0 has no reboot_type: its one reboot was the driver's hard one.
        hard = reboot_type != "SOFT"
        self._act(
            ctxt,
            instance,
            states.REBOOTING,
            lambda uuid: self.driver.reboot(uuid, hard=hard),
            states.ACTIVE,
        )

    def get_console_output(
        self, ctxt: RequestContext, instance: Instance, tail_length: int | None = None
    ) -> str:
        if tail_length is not None and (not isinstance(tail_length, int) or tail_length < 1):
            raise ValueError(f"tail_length must be a positive integer, not {tail_length!r:.40}")
        return self.driver.get_console_output(instance.uuid, tail_length)

    # -- requests this release cannot read ---------------------------------------

    def request_failed(
        self, ctxt: RequestContext, method: str, instance_uuid: str, error: Exception
    ) -> None:
        """A request for ``instance_uuid`` arrived in a version this host cannot handle.

        Nothing was done: the instance is settled so that it waits on nothing
        (a build goes to ERROR, an action's task is cleared) and the reason is
        its fault, for the operator to see why (a service of another release
        sent it, or an ``upgrade_levels`` pin is wrong).
        """
        reason = (f"compute {self.host} cannot handle {method}: {type(error).__name__}: {error}")[
            :255
        ]
        LOG.error("instance %s: %s; the request fails", instance_uuid, reason)
        try:
            instance = Instance.get_by_uuid(ctxt, instance_uuid)
        except PodiumError as lookup_error:
            LOG.warning("instance %s: cannot record the failure: %s", instance_uuid, lookup_error)
            return
        task = instance.task_state
        with self._locks.held(instance_uuid), _dropped_if_moved(instance, method):
            if task == states.SCHEDULING and instance.host == self.host:
                self._set_error(ctxt, instance, task, reason, code=500)
                return
            InstanceFault(
                ctxt, instance_uuid=instance_uuid, code=500, message=reason, host=self.host
            ).create()
            if task in (*_ACTION_TASK_STATES, states.DELETING) and instance.host == self.host:
                instance.task_state = None
                instance.save(expected_task_state=task)

    def terminate_instance(self, ctxt: RequestContext, instance: Instance) -> None:
        with self._locks.held(instance.uuid), _dropped_if_moved(instance, "delete"):
            try:
                instance.refresh()
            except NotFound:
                # Already deleted (a redelivered cast): make sure no VM outlives it.
                self.driver.destroy(instance.uuid)
                raise
            if instance.task_state != states.DELETING:
                LOG.info(
                    "instance %s is %s/%s, not deleting; delete dropped",
                    instance.uuid,
                    instance.vm_state,
                    instance.task_state,
                )
                return
            self._finish_delete(ctxt, instance)

    def _finish_delete(self, ctxt: RequestContext, instance: Instance) -> None:
        self.driver.destroy(instance.uuid)
        instance.vm_state = states.DELETED
        instance.task_state = None
        instance.power_state = states.NOSTATE
        instance.terminated_at = _now()
        # One transaction on the conductor: the fields above, the soft delete,
        # and the host's resources given back.
        instance.destroy()
        LOG.info("instance %s deleted from %s", instance.uuid, self.host)

    def _act(
        self,
        ctxt: RequestContext,
        instance: Instance,
        task_state: str,
        action: Callable[[str], None],
        vm_state: str,
    ) -> None:
        with self._locks.held(instance.uuid), _dropped_if_moved(instance, task_state):
            # The message may be stale (redelivered, or overtaken by a delete):
            # act only if the database still asks for this action.
            instance.refresh()
            if instance.task_state != task_state:
                LOG.info(
                    "instance %s is %s/%s, not %s; action dropped",
                    instance.uuid,
                    instance.vm_state,
                    instance.task_state,
                    task_state,
                )
                return
            try:
                action(instance.uuid)
            except Exception as error:
                self._action_failed(ctxt, instance, task_state, error)
                return
            instance.vm_state = vm_state
            instance.power_state = self.driver.get_power_state(instance.uuid)
            instance.task_state = None
            instance.save(expected_task_state=task_state)

    def _action_failed(
        self, ctxt: RequestContext, instance: Instance, task_state: str, error: Exception
    ) -> None:
        """Nova's ``reverts_task_state`` and ``wrap_instance_fault``: the task is cleared, the
        vm_state kept, and the failure recorded for the user to see."""
        LOG.warning("instance %s: %s failed on %s: %s", instance.uuid, task_state, self.host, error)
        instance.power_state = self.driver.get_power_state(instance.uuid)
        instance.task_state = None
        instance.save(expected_task_state=task_state)
        InstanceFault(
            ctxt,
            instance_uuid=instance.uuid,
            code=500,
            message=f"{task_state} failed: {type(error).__name__}: {error}",
            details="".join(traceback.format_exception(error)),
            host=self.host,
        ).create()

    def _set_error(
        self,
        ctxt: RequestContext,
        instance: Instance,
        expected: str,
        message: str,
        code: int,
        details: str | None = None,
    ) -> None:
        # The fault first: a reader that sees ERROR finds its reason (a fault
        # on an instance that is not in ERROR is never shown).
        InstanceFault(
            ctxt,
            instance_uuid=instance.uuid,
            code=code,
            message=message,
            details=details,
            host=self.host,
        ).create()
        instance.vm_state = states.ERROR
        instance.power_state = states.NOSTATE
        instance.task_state = None
        instance.save(expected_task_state=expected)
        LOG.warning("instance %s set to ERROR: %s", instance.uuid, message)


@contextmanager
def _dropped_if_moved(instance: Instance, what: str) -> Iterator[None]:
    """Drop a request whose instance another request changed or deleted meanwhile.

    A cast has no caller to raise to: an exception here would only be logged
    by the server as a crash, for what is the normal end of a race.
    """
    try:
        yield
    except UnexpectedTaskStateError as error:
        LOG.info("%s of instance %s dropped: %s", what, instance.uuid, error)
    except NotFound:
        LOG.info("%s of instance %s dropped: it was deleted", what, instance.uuid)
    except PolicyNotAuthorized:
        # The conductor lets a host see only its own instances: this one moved.
        LOG.info("%s of instance %s dropped: it is no longer on this host", what, instance.uuid)
