"""Objects -> response bodies: the server status Nova shows, and who may see what."""

from __future__ import annotations

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
from podium.cloud.objects import ComputeNode, Flavor, Instance, Service

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

#: The filters a status stands for: (vm_state, task_state or None for any).
STATUS_FILTERS: dict[str, tuple[str, str | None]] = {
    "BUILD": (states.BUILDING, None),
    "ACTIVE": (states.ACTIVE, None),
    "PAUSED": (states.PAUSED, None),
    "SHUTOFF": (states.STOPPED, None),
    "REBOOT": (states.ACTIVE, states.REBOOTING),
    "ERROR": (states.ERROR, None),
    "DELETED": (states.DELETED, None),
}


def server_status(vm_state: str | None, task_state: str | None, deleted: bool) -> ServerStatus:
    if deleted:
        # A row soft-deleted without its vm_state set (a local delete) is gone all the same.
        return "DELETED"
    if task_state == states.REBOOTING and vm_state in _REBOOT_SHOWN:
        return "REBOOT"
    return _STATUS.get(vm_state, "UNKNOWN")


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
        fault=None
        if fault is None
        else ServerFault(
            code=fault.code,
            message=fault.message,
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
