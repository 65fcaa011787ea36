# Release acacia (the one before this code's), as it shipped: only its imports of the
# modules that changed since point into this directory. Do not edit it to follow later
# changes; a release that shipped does not change.
"""A fake hypervisor: the VMs of one compute host, held in memory.

It plays the part of a real driver (libvirt, ...) closely enough for the
compute manager's state machine to be exercised end to end: spawn takes time,
power-state transitions are checked, a build can be told to fail, and — like
an agent that restarts while its hypervisor keeps running — VMs can be handed
back to it with :meth:`FakeDriver.adopt` after the process lost them.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from podium.cloud import states
from podium.cloud.config import CloudConfig
from podium.cloud.exceptions import BuildFailed, CloudError, InstanceInvalidState

LOG = logging.getLogger(__name__)

__all__ = ["FakeDriver", "HostResources", "NoSuchVM"]


class NoSuchVM(CloudError):
    """The hypervisor has no VM for that instance (never built here, or destroyed)."""


@dataclass(frozen=True)
class HostResources:
    """What the host offers, before any allocation ratio."""

    vcpus: int
    memory_mb: int
    disk_gb: int


@dataclass
class _VM:
    uuid: str
    power_state: int
    # Set while spawn waits; destroy() sets ``gone`` so that wait ends early.
    building: bool = False
    gone: threading.Event = field(default_factory=threading.Event)


class FakeDriver:
    """An in-memory hypervisor; every method is safe to call from any thread."""

    def __init__(
        self,
        spawn_time: float = 0.0,
        fail_builds: bool = False,
        *,
        vcpus: int = 16,
        memory_mb: int = 32768,
        disk_gb: int = 500,
    ) -> None:
        if spawn_time < 0:
            raise ValueError(f"spawn_time must be >= 0, not {spawn_time}")
        self.spawn_time = spawn_time
        self.resources = HostResources(vcpus, memory_mb, disk_gb)
        self._lock = threading.Lock()
        self._vms: dict[str, _VM] = {}
        self._fail_builds = fail_builds
        self._failures_left = 0
        #: Spawns started, failed ones included (what a test counts attempts by).
        self.spawn_attempts = 0

    @classmethod
    def from_config(cls, config: CloudConfig) -> FakeDriver:
        return cls(
            config.fake_spawn_time,
            config.fake_fail_builds,
            vcpus=config.compute_vcpus,
            memory_mb=config.compute_memory_mb,
            disk_gb=config.compute_disk_gb,
        )

    # -- failure injection -----------------------------------------------------

    @property
    def fail_builds(self) -> bool:
        return self._fail_builds

    @fail_builds.setter
    def fail_builds(self, value: bool) -> None:
        with self._lock:
            self._fail_builds = value

    def fail_next_builds(self, count: int) -> None:
        """Make the next ``count`` spawns fail (on top of ``fail_builds``)."""
        if count < 0:
            raise ValueError(f"count must be >= 0, not {count}")
        with self._lock:
            self._failures_left = count

    def _should_fail(self) -> bool:
        with self._lock:
            if self._fail_builds:
                return True
            if self._failures_left > 0:
                self._failures_left -= 1
                return True
            return False

    # -- lifecycle -------------------------------------------------------------

    def spawn(self, instance_uuid: str) -> None:
        """Create and boot the VM; raises :class:`BuildFailed` when told to, or if destroyed
        while it was being built.

        The wait is outside the lock, so one slow spawn holds up no other instance.
        """
        vm = _VM(instance_uuid, states.NOSTATE, building=True)
        with self._lock:
            self.spawn_attempts += 1
            if instance_uuid in self._vms:
                raise BuildFailed(f"a VM for instance {instance_uuid} already exists on this host")
            self._vms[instance_uuid] = vm
        destroyed = vm.gone.wait(self.spawn_time) if self.spawn_time > 0 else vm.gone.is_set()
        failed = self._should_fail()
        with self._lock:
            if destroyed or self._vms.get(instance_uuid) is not vm:
                raise BuildFailed(f"instance {instance_uuid} was destroyed while it was spawning")
            if failed:
                # A failed build leaves nothing behind, as a hypervisor that
                # rolls back a half-made domain does.
                del self._vms[instance_uuid]
                raise BuildFailed(
                    f"the fake hypervisor was told to fail the build of {instance_uuid}"
                )
            vm.building = False
            vm.power_state = states.RUNNING

    def destroy(self, instance_uuid: str) -> None:
        """Remove the VM; one that is not there is already destroyed (idempotent)."""
        with self._lock:
            vm = self._vms.pop(instance_uuid, None)
        if vm is not None:
            vm.gone.set()

    def adopt(self, instance_uuid: str, power_state: int) -> None:
        """Know an existing VM again (what a real hypervisor remembers across agent restarts)."""
        with self._lock:
            if instance_uuid not in self._vms:
                self._vms[instance_uuid] = _VM(instance_uuid, power_state)

    # -- power -----------------------------------------------------------------

    def _transition(
        self, instance_uuid: str, allowed: tuple[int, ...], to: int, action: str
    ) -> None:
        with self._lock:
            vm = self._vms.get(instance_uuid)
            if vm is None or vm.building:
                raise NoSuchVM(f"no VM for instance {instance_uuid} on this host to {action}")
            if vm.power_state not in allowed:
                raise InstanceInvalidState(
                    f"cannot {action} instance {instance_uuid} in power state {vm.power_state}"
                )
            vm.power_state = to

    def pause(self, instance_uuid: str) -> None:
        self._transition(instance_uuid, (states.RUNNING,), states.PAUSED_POWER, "pause")

    def unpause(self, instance_uuid: str) -> None:
        self._transition(instance_uuid, (states.PAUSED_POWER,), states.RUNNING, "unpause")

    def power_off(self, instance_uuid: str) -> None:
        self._transition(
            instance_uuid,
            (states.RUNNING, states.PAUSED_POWER, states.SHUTDOWN),
            states.SHUTDOWN,
            "power off",
        )

    def power_on(self, instance_uuid: str) -> None:
        self._transition(
            instance_uuid, (states.SHUTDOWN, states.RUNNING), states.RUNNING, "power on"
        )

    def reboot(self, instance_uuid: str) -> None:
        # A hard reboot: whatever the guest was doing (a paused guest must be
        # unpaused first, as on libvirt).
        self._transition(instance_uuid, (states.RUNNING, states.SHUTDOWN), states.RUNNING, "reboot")

    def get_power_state(self, instance_uuid: str) -> int:
        """The VM's power state; NOSTATE for one this host does not have or is still building."""
        with self._lock:
            vm = self._vms.get(instance_uuid)
            return states.NOSTATE if vm is None or vm.building else vm.power_state

    def list_instances(self) -> list[str]:
        """The uuids of the VMs built on this host (not those still spawning)."""
        with self._lock:
            return [uuid for uuid, vm in self._vms.items() if not vm.building]
