"""Objects -> response bodies: the server status Nova shows, and who may see what."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from podium.cloud import states
from podium.cloud.api.schemas import (
    FlavorView,
    HypervisorView,
    ServerFault,
    ServerFlavor,
    ServerStatus,
    ServerView,
    ServiceView,
)
from podium.cloud.objects import ComputeNode, Flavor, Instance, InstanceFault, Service
from podium.context import ReadDeleted

# Nova's _STATE_MAP (nova/api/openstack/common.py), cut to the states this cloud has.
_STATUS: dict[str | None, ServerStatus] = {
    states.BUILDING: "BUILD",
    states.ACTIVE: "ACTIVE",
    states.PAUSED: "PAUSED",
    states.STOPPED: "SHUTOFF",
    states.ERROR: "ERROR",
    states.DELETED: "DELETED",
}
# A reboot shows through the vm_state only from these (Nova: a paused server
# being rebooted still says PAUSED).
_REBOOT_SHOWN = (states.ACTIVE, states.STOPPED)

# The scheduler's NoValidHost names the hosts it lost claims on from here on.
_LOST_CLAIMS = re.compile(r"\s*Claims failed on \d+ host\(s\) filled by concurrent requests:")
# What may touch a host name in a message without being part of it (so that
# "compute-1" is not found inside "compute-10").
_NAME_CHAR = r"[A-Za-z0-9_-]"


def server_status(vm_state: str | None, task_state: str | None, deleted: bool) -> ServerStatus:
    if deleted:
        # A row soft-deleted without its vm_state set (a local delete) is gone all the same.
        return "DELETED"
    if task_state == states.REBOOTING and vm_state in _REBOOT_SHOWN:
        return "REBOOT"
    return _STATUS.get(vm_state, "UNKNOWN")


@dataclass(frozen=True)
class StatusQuery:
    """How to find the servers that show a status.

    The database filters only by equality, so ``filters`` (with ``read_deleted``)
    select a superset; :meth:`shows` picks the servers out by the very rule the
    view uses, so that a listing by status and the status shown never disagree.
    """

    status: str
    read_deleted: ReadDeleted
    filters: dict[str, Any]

    def shows(self, instance: Instance) -> bool:
        status = server_status(instance.vm_state, instance.task_state, instance.deleted)
        return status == self.status


def status_query(status: str, read_deleted: ReadDeleted) -> StatusQuery | None:
    """The query for the servers showing ``status`` among ``read_deleted``; None if none can."""
    if status == "DELETED":
        if read_deleted == "no":
            return StatusQuery(status, "no", {"vm_state": states.DELETED})
        # Every deleted row shows DELETED, whatever its vm_state.
        return StatusQuery(status, read_deleted, {})
    if read_deleted == "only":
        return None
    # Anything else shows only on a live row.
    if status == "REBOOT":
        return StatusQuery(
            status, "no", {"vm_state": list(_REBOOT_SHOWN), "task_state": states.REBOOTING}
        )
    vm_states = sorted(str(vm) for vm, shown in _STATUS.items() if shown == status)
    if not vm_states:
        return None
    return StatusQuery(status, "no", {"vm_state": vm_states})


def fault_message(fault: InstanceFault, *, admin: bool) -> str:
    """The fault's message; for others than admins, with no host named."""
    message = str(fault.message)
    if admin:
        return message
    lost = _LOST_CLAIMS.search(message)
    if lost is not None:
        message = message[: lost.start()]
    if fault.host:
        unnamed = rf"(?<!{_NAME_CHAR}){re.escape(fault.host)}(?!{_NAME_CHAR})"
        message = re.sub(unnamed, "a host", message)
    return message


def server_view(instance: Instance, *, admin: bool) -> ServerView:
    flavor = instance.flavor
    fault = instance.fault if instance.vm_state == states.ERROR else None
    return ServerView(
        id=instance.uuid,
        name=instance.display_name,
        status=server_status(instance.vm_state, instance.task_state, instance.deleted),
        vm_state=instance.vm_state,
        task_state=instance.task_state,
        power_state=instance.power_state,
        tenant_id=instance.project_id,
        user_id=instance.user_id,
        # Which host runs what is the operator's business (Nova: OS-EXT-SRV-ATTR, admin only).
        host=instance.host if admin else None,
        flavor=None
        if flavor is None
        else ServerFlavor(
            id=flavor.flavorid,
            name=flavor.name,
            vcpus=flavor.vcpus,
            ram=flavor.memory_mb,
            disk=flavor.disk_gb,
        ),
        image=instance.image_ref,
        metadata=dict(instance.metadata),
        key_name=instance.key_name,
        fault=None
        if fault is None
        else ServerFault(
            code=fault.code,
            # Which hosts a cloud has is the operator's business, as ``host`` is.
            message=fault_message(fault, admin=admin),
            created=fault.created_at,
            # Details hold tracebacks from inside the services: operators only.
            details=fault.details if admin else None,
        ),
        guest_status=instance.guest_status,
        created=instance.created_at,
        updated=instance.updated_at,
        launched_at=instance.launched_at,
        terminated_at=instance.terminated_at,
    )


def flavor_view(flavor: Flavor) -> FlavorView:
    return FlavorView(
        id=flavor.flavorid,
        name=flavor.name,
        vcpus=flavor.vcpus,
        ram=flavor.memory_mb,
        disk=flavor.disk_gb,
        is_public=flavor.is_public,
        description=flavor.description if flavor.obj_attr_is_set("description") else None,
    )


def service_view(service: Service, service_down_time: float) -> ServiceView:
    return ServiceView(
        id=service.id,
        binary=service.binary,
        host=service.host,
        topic=service.topic,
        status="disabled" if service.disabled else "enabled",
        state="up" if service.is_up(service_down_time) else "down",
        disabled_reason=service.disabled_reason,
        forced_down=service.forced_down,
        report_count=service.report_count,
        last_seen_up=service.last_seen_up,
        version=service.version,
        updated_at=service.updated_at,
    )


def hypervisor_view(
    node: ComputeNode, service: Service | None, service_down_time: float
) -> HypervisorView:
    return HypervisorView(
        id=node.id,
        hypervisor_hostname=node.hypervisor_hostname,
        host=node.host,
        # A node whose compute service never reported (or was removed) runs nothing.
        state="up" if service is not None and service.is_up(service_down_time) else "down",
        status="disabled" if service is not None and service.disabled else "enabled",
        vcpus=node.vcpus,
        vcpus_used=node.vcpus_used,
        memory_mb=node.memory_mb,
        memory_mb_used=node.memory_mb_used,
        local_gb=node.disk_gb,
        local_gb_used=node.disk_gb_used,
    )
