"""The reference cloud's DB functions: one per operation, each one transaction.

They follow podium.db's conventions: ``(db, context, ...)``, reads honour
``context.read_deleted``, rows come back detached and loaded, a missing row is
:class:`~podium.exceptions.NotFound`, a unique clash
:class:`~podium.exceptions.DuplicateEntry`.

Resource accounting keeps one invariant: a compute node's ``*_used`` columns
are the sum over the live instances whose ``host`` is that node. Every change
to either side (claim, release, destroy) is one transaction that changes both.
"""

from __future__ import annotations

from podium.cloud.db._compute_nodes import (
    compute_node_claim,
    compute_node_create,
    compute_node_destroy,
    compute_node_get,
    compute_node_get_all,
    compute_node_get_by_host,
    compute_node_reconcile,
    compute_node_release,
    compute_node_report,
    compute_node_update,
)
from podium.cloud.db._flavors import (
    flavor_create,
    flavor_destroy,
    flavor_get_all,
    flavor_get_by_flavor_id,
)
from podium.cloud.db._instances import (
    INSTANCE_SORT_KEYS,
    instance_create,
    instance_destroy,
    instance_fault_create,
    instance_fault_get_latest,
    instance_get_all,
    instance_get_all_by_host,
    instance_get_by_uuid,
    instance_get_owner,
    instance_record_guest_status,
    instance_update,
)
from podium.cloud.db._services import (
    service_create,
    service_destroy,
    service_get,
    service_get_all,
    service_get_by_host_and_binary,
    service_get_minimum_version,
    service_report,
    service_update,
)

__all__ = [
    "INSTANCE_SORT_KEYS",
    "compute_node_claim",
    "compute_node_create",
    "compute_node_destroy",
    "compute_node_get",
    "compute_node_get_all",
    "compute_node_get_by_host",
    "compute_node_reconcile",
    "compute_node_release",
    "compute_node_report",
    "compute_node_update",
    "flavor_create",
    "flavor_destroy",
    "flavor_get_all",
    "flavor_get_by_flavor_id",
    "instance_create",
    "instance_destroy",
    "instance_fault_create",
    "instance_fault_get_latest",
    "instance_get_all",
    "instance_get_all_by_host",
    "instance_get_by_uuid",
    "instance_get_owner",
    "instance_record_guest_status",
    "instance_update",
    "service_create",
    "service_destroy",
    "service_get",
    "service_get_all",
    "service_get_by_host_and_binary",
    "service_get_minimum_version",
    "service_report",
    "service_update",
]

# Shown and documented under this package, their public home.
for _name in __all__:
    if callable(globals()[_name]):
        globals()[_name].__module__ = __name__
