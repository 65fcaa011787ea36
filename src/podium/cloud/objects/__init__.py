"""Versioned objects of the reference cloud, backed by :mod:`podium.cloud.db`.

The same ``instance.save()`` runs the SQL on a conductor (or a ``use_local``
process) and becomes an RPC on a worker whose indirection API is set: every
read and write below is remotable, so computes, schedulers and the API, which
hold no database credentials, use exactly this code.

Times that travel as method arguments (a heartbeat's send time) are ISO 8601
strings: what the wire carries for a datetime field too.
"""

from ._base import CloudObject, SoftDeletedObject, parse_sent_at
from ._compute_nodes import ComputeNode, ComputeNodeList
from ._flavors import Flavor, FlavorList
from ._instances import Instance, InstanceFault, InstanceList
from ._services import Service, ServiceList

__all__ = [
    "CloudObject",
    "ComputeNode",
    "ComputeNodeList",
    "Flavor",
    "FlavorList",
    "Instance",
    "InstanceFault",
    "InstanceList",
    "Service",
    "ServiceList",
    "SoftDeletedObject",
    "parse_sent_at",
]

# This package is the objects' one home: what an application names in
# App(objects=...), what the version table and the releases list them by, and
# what an upgrade test replaces whole with an older release's module. Their
# submodules are how the code is laid out, not where the objects live.
for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
