"""Who may make which of the cloud's object calls: the conductor's default rules.

The principle is Nova's compute isolation, enforced where the data is: a
compute host acts only on its own Service and ComputeNode rows and on the
instances whose stored ``host`` is itself (the scheduler's claim makes an
instance its host's); the api acts for the project of the user's token;
only the scheduler, the conductor and an admin's request through the api
cross hosts and projects. A sender's context says nothing it is trusted
for: ``is_admin`` counts only from the api, which took it from a token.

Every rule can be overridden by name in the conductor's ``policy_file``
(``podium policy list`` prints them all).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from podium.cloud import db as cloud_db
from podium.conductor.policy import LazyTarget, PolicyDefaults, PolicyRequest
from podium.db.current import get_database

_INSTANCE = "rule:cross_host or rule:own_host or rule:own_project"
_HOST = "rule:cross_host or rule:own_host"

RULES: dict[str, str] = {
    # Who the sender is.
    "admin_api": "service:api and is_admin:True",
    "cross_host": "service:conductor or service:scheduler or rule:admin_api",
    "own_host": "service:compute and host:%(host)s",
    "own_project": "service:api and project_id:%(project_id)s",
    "own_service": "host:%(host)s and service:%(service)s",
    # Anything not named below.
    "default": "rule:cross_host",
    # Instances, by their stored host and project (and the new ones, if changed).
    "Instance:create": "rule:cross_host or rule:own_project",
    "Instance:save": _INSTANCE,
    "Instance:destroy": _INSTANCE,
    "Instance:refresh": _INSTANCE,
    "Instance:get_by_uuid": _INSTANCE,
    "Instance:record_guest_status": _HOST,
    "InstanceList:get_all": "rule:cross_host or rule:own_project",
    "InstanceList:get_by_host": _HOST,
    "InstanceFault:create": _INSTANCE,
    "InstanceFault:get_latest_for_instance": _INSTANCE,
    # Hosts: each reports and recounts its own; only the scheduler claims.
    "ComputeNode:report": _HOST,
    "ComputeNode:get_by_host": _HOST,
    "ComputeNode:release": _HOST,
    "ComputeNode:reconcile_usage": _HOST,
    "ComputeNode:claim": "rule:cross_host",
    "ComputeNodeList:get_all": "rule:cross_host",
    # Services: each reports its own heartbeat; every service reads the
    # lowest version (the upgrade caps); the api shows them.
    "Service:report": "rule:cross_host or rule:own_service",
    "Service:save": "rule:cross_host or rule:own_service",
    "Service:get_minimum_version": "@",
    "Service:get_by_id": "rule:cross_host or service:api",
    "Service:get_by_host_and_binary": "rule:cross_host or service:api or rule:own_service",
    "ServiceList:get_all": "rule:cross_host or service:api",
    # The conductor's build flow: the api asks for builds, a compute for a
    # rebuild elsewhere of an instance it failed; a guest's heartbeat comes
    # from its own host.
    "compute_task:build_instances": "rule:cross_host or service:api or service:compute",
    "compute_task:guest_heartbeat": _HOST,
    # Flavors: everyone reads them; admins make them.
    "Flavor:get_by_flavor_id": "@",
    "FlavorList:get_all": "@",
    "Flavor:create": "rule:cross_host",
    "Flavor:destroy": "rule:cross_host",
}

#: Methods that only read: their checks take no row lock.
_READS = frozenset({"refresh", "get_by_uuid", "get_latest_for_instance"})


def _service_of(binary: Any) -> Any:
    """``podium-compute`` -> ``compute``: the service name a sender signs with."""
    return binary.removeprefix("podium-") if isinstance(binary, str) else None


def _stored_and_changed(
    load: Callable[[], Mapping[str, Any]], changes: Mapping[str, Any]
) -> Sequence[Mapping[str, Any]]:
    """The rule must hold for the row as stored and as the call would leave it."""
    stored = functools.cache(load)
    if not changes:
        return [LazyTarget(stored)]
    return [LazyTarget(stored), LazyTarget(stored, changes)]


def _writes(request: PolicyRequest) -> bool:
    """Whether the call may change the instance: its check then locks the row."""
    return request.method not in _READS


def _instance_owner(uuid: Any, lock: bool) -> Callable[[], Mapping[str, Any]]:
    def load() -> Mapping[str, Any]:
        if not isinstance(uuid, str):
            return {}  # nothing matches: refused
        return cloud_db.instance_get_owner(get_database(), uuid, lock=lock)

    return load


def _owner_fields(obj: Any, names: Sequence[str]) -> dict[str, Any]:
    changed = obj.obj_what_changed()
    return {name: getattr(obj, name) for name in names if name in changed}


def instance_targets(request: PolicyRequest) -> Sequence[Mapping[str, Any]]:
    obj = request.obj
    if obj is None:
        return [LazyTarget(_instance_owner(request.arguments.get("uuid"), _writes(request)))]
    if request.method == "create":
        # A new row: what it will be is all there is.
        return [_owner_fields(obj, ("host", "project_id"))]
    uuid = obj.uuid if obj.obj_attr_is_set("uuid") else None
    changes = _owner_fields(obj, ("host", "project_id"))
    return _stored_and_changed(_instance_owner(uuid, _writes(request)), changes)


def instance_list_targets(request: PolicyRequest) -> Sequence[Mapping[str, Any]]:
    if request.method == "get_all":
        filters = request.arguments.get("filters")
        project = filters.get("project_id") if isinstance(filters, dict) else None
        return [{"project_id": project}]
    return [request.arguments]


def instance_fault_targets(request: PolicyRequest) -> Sequence[Mapping[str, Any]]:
    obj = request.obj
    if obj is None:
        uuid = request.arguments.get("instance_uuid")
    else:
        uuid = obj.instance_uuid if obj.obj_attr_is_set("instance_uuid") else None
    return [LazyTarget(_instance_owner(uuid, _writes(request)))]


def service_targets(request: PolicyRequest) -> Sequence[Mapping[str, Any]]:
    obj = request.obj
    if obj is None:
        args = request.arguments
        return [{"host": args.get("host"), "service": _service_of(args.get("binary"))}]
    service_id = obj.id if obj.obj_attr_is_set("id") else None

    def load() -> Mapping[str, Any]:
        if not isinstance(service_id, int):
            return {}
        row = cloud_db.service_get(get_database(), request.context.elevated(), service_id)
        return {"host": row.host, "service": _service_of(row.binary)}

    changes = _owner_fields(obj, ("host", "binary"))
    if "binary" in changes:
        changes["service"] = _service_of(changes.pop("binary"))
    return _stored_and_changed(load, changes)


def compute_task_targets(request: PolicyRequest) -> Sequence[Mapping[str, Any]]:
    if request.method == "guest_heartbeat":
        uuid = request.arguments.get("instance_uuid")
        # Checked by the RPC server before the endpoint's own transaction: no lock to hold.
        return [LazyTarget(_instance_owner(uuid, lock=False))]
    return [request.arguments]


def defaults() -> PolicyDefaults:
    """The cloud's rules and targets (``App.policy``)."""
    return PolicyDefaults(
        RULES,
        {
            "Instance": instance_targets,
            "InstanceList": instance_list_targets,
            "InstanceFault": instance_fault_targets,
            "Service": service_targets,
            "compute_task": compute_task_targets,
        },
    )
