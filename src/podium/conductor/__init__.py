"""Conductor: the only service that touches the database, on behalf of the others."""

from typing import TYPE_CHECKING

from podium._lazy import lazy_exports

if TYPE_CHECKING:
    from podium.conductor.api import CONDUCTOR_API_VERSION, ConductorAPI
    from podium.conductor.manager import ConductorManager
    from podium.conductor.policy import LazyTarget, Policy, PolicyDefaults, PolicyRequest
    from podium.conductor.service import ConductorService, configure_worker

__all__ = [
    "CONDUCTOR_API_VERSION",
    "ConductorAPI",
    "ConductorManager",
    "ConductorService",
    "LazyTarget",
    "Policy",
    "PolicyDefaults",
    "PolicyRequest",
    "configure_worker",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "CONDUCTOR_API_VERSION": "podium.conductor.api",
        "ConductorAPI": "podium.conductor.api",
        "ConductorManager": "podium.conductor.manager",
        "ConductorService": "podium.conductor.service",
        "configure_worker": "podium.conductor.service",
        "LazyTarget": "podium.conductor.policy",
        "Policy": "podium.conductor.policy",
        "PolicyDefaults": "podium.conductor.policy",
        "PolicyRequest": "podium.conductor.policy",
    },
)
