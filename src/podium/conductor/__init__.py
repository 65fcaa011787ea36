"""Conductor: the only service that touches the database, on behalf of the others."""

from podium.conductor.api import CONDUCTOR_API_VERSION, ConductorAPI
from podium.conductor.manager import ConductorManager
from podium.conductor.service import ConductorService, configure_worker

__all__ = [
    "CONDUCTOR_API_VERSION",
    "ConductorAPI",
    "ConductorManager",
    "ConductorService",
    "configure_worker",
]
