"""Instances for the compute and build tests: made, read and waited for through the objects."""

from __future__ import annotations

import uuid

from tests.polling import wait_for

from podium.cloud import states
from podium.cloud.objects import ComputeNode, Instance
from podium.context import RequestContext, get_admin_context

ADMIN = get_admin_context()
DELETED_TOO = get_admin_context(read_deleted="yes")
FLAVOR = {"vcpus": 1, "memory_mb": 512, "root_gb": 1}


def fetch(instance_uuid: str, context: RequestContext = ADMIN) -> Instance:
    return Instance.get_by_uuid(context, instance_uuid)


def wait_settled(instance_uuid: str, vm_state: str) -> Instance:
    """The instance once it is at rest (no task) in ``vm_state``."""

    def settled() -> Instance | None:
        instance = fetch(instance_uuid)
        ok = instance.task_state is None and instance.vm_state == vm_state
        return instance if ok else None

    return wait_for(settled, f"instance {instance_uuid} to be {vm_state} with no task")


def usage(host: str) -> tuple[int, int, int]:
    node = ComputeNode.get_by_host(ADMIN, host)
    return node.vcpus_used, node.memory_mb_used, node.disk_gb_used


def new_instance(name: str = "vm") -> Instance:
    instance = Instance(
        ADMIN,
        uuid=str(uuid.uuid4()),
        display_name=name,
        project_id="project-a",
        user_id="user-a",
        vm_state=states.BUILDING,
        task_state=states.SCHEDULING,
        **FLAVOR,
    )
    instance.create()
    return instance
