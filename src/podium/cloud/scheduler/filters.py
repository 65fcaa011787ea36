"""The scheduler's host filters and weighers, after Nova's.

A filter says whether one host can take the request; a weigher scores the
hosts left so the best comes first. Both are small classes with one method,
registered by name so a scheduler can be given its list by configuration.
None of them touches the database: they judge a :class:`HostState` snapshot.
The snapshot may be stale by the time a host is chosen, which is why the
manager claims atomically afterwards; the resource filters only spare it
claims that cannot succeed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from podium.cloud.objects import ComputeNode, Service

__all__ = [
    "DEFAULT_FILTERS",
    "DEFAULT_WEIGHERS",
    "FILTERS",
    "RESOURCES",
    "WEIGHERS",
    "DiskFilter",
    "FlavorSpec",
    "HostFilter",
    "HostState",
    "HostWeigher",
    "IgnoreHostsFilter",
    "RamFilter",
    "RamWeigher",
    "ServiceEnabledFilter",
    "ServiceUpFilter",
    "VCPUFilter",
    "flavor_of",
    "make_filters",
    "make_weighers",
]

#: The resources a flavor asks for: compute-node column -> allocation-ratio key.
RESOURCES: Mapping[str, str] = {"vcpus": "cpu", "memory_mb": "ram", "disk_gb": "disk"}


@dataclass(frozen=True)
class FlavorSpec:
    """What one instance of the request needs."""

    vcpus: int
    memory_mb: int
    disk_gb: int

    def amount(self, resource: str) -> int:
        value: int = getattr(self, resource)
        return value


def flavor_of(request_spec: Mapping[str, Any]) -> FlavorSpec:
    """The request's flavor; a missing amount is zero (it asks for none of that resource)."""
    flavor = request_spec.get("flavor") or {}
    return FlavorSpec(
        vcpus=int(flavor.get("vcpus", 0)),
        memory_mb=int(flavor.get("memory_mb", 0)),
        disk_gb=int(flavor.get("disk_gb", 0)),
    )


@dataclass
class HostState:
    """One compute host as the scheduler sees it for one request.

    ``used`` starts from the compute node's row and grows as the request's
    own instances are claimed, so a multi-instance request sees its earlier
    claims without reading the database again.
    """

    node: ComputeNode
    service: Service | None
    ratios: Mapping[str, float]
    now: datetime
    service_down_time: float

    def __post_init__(self) -> None:
        self.used = {name: int(getattr(self.node, f"{name}_used")) for name in RESOURCES}

    @property
    def host(self) -> str:
        return str(self.node.host)

    @property
    def nodename(self) -> str:
        return str(self.node.hypervisor_hostname or self.node.host)

    def limit(self, resource: str) -> float:
        """Total times allocation ratio: the same bound the claim's UPDATE checks."""
        total: int = getattr(self.node, resource)
        return total * float(self.ratios.get(RESOURCES[resource], 1.0))

    def free(self, resource: str) -> float:
        return self.limit(resource) - self.used[resource]

    def fits(self, resource: str, flavor: FlavorSpec) -> bool:
        return self.used[resource] + flavor.amount(resource) <= self.limit(resource)

    def consume(self, flavor: FlavorSpec) -> None:
        for resource in RESOURCES:
            self.used[resource] += flavor.amount(resource)


# -- filters -------------------------------------------------------------------


class HostFilter:
    """Whether a host can take one instance of the request."""

    name: ClassVar[str]

    def host_passes(self, host_state: HostState, spec: Mapping[str, Any]) -> bool:
        raise NotImplementedError


class ServiceEnabledFilter(HostFilter):
    """An operator disabled the host's compute service: no new instances there."""

    name = "ServiceEnabledFilter"

    def host_passes(self, host_state: HostState, spec: Mapping[str, Any]) -> bool:
        # A node without a service row is left to ServiceUpFilter: it never reported.
        return host_state.service is None or not host_state.service.disabled


class ServiceUpFilter(HostFilter):
    """The host's compute service has not reported within ``service_down_time``."""

    name = "ServiceUpFilter"

    def host_passes(self, host_state: HostState, spec: Mapping[str, Any]) -> bool:
        service = host_state.service
        return service is not None and service.is_up(
            host_state.service_down_time, now=host_state.now
        )


class IgnoreHostsFilter(HostFilter):
    """Hosts the request excludes: where an earlier attempt of this build failed."""

    name = "IgnoreHostsFilter"

    def host_passes(self, host_state: HostState, spec: Mapping[str, Any]) -> bool:
        return host_state.host not in (spec.get("ignore_hosts") or ())


class _ResourceFilter(HostFilter):
    resource: ClassVar[str]

    def host_passes(self, host_state: HostState, spec: Mapping[str, Any]) -> bool:
        return host_state.fits(self.resource, flavor_of(spec))


class VCPUFilter(_ResourceFilter):
    """Not enough free vCPUs under ``cpu_allocation_ratio``."""

    name = "VCPUFilter"
    resource = "vcpus"


class RamFilter(_ResourceFilter):
    """Not enough free RAM under ``ram_allocation_ratio``."""

    name = "RamFilter"
    resource = "memory_mb"


class DiskFilter(_ResourceFilter):
    """Not enough free disk under ``disk_allocation_ratio``."""

    name = "DiskFilter"
    resource = "disk_gb"


# -- weighers ------------------------------------------------------------------


class HostWeigher:
    """Scores a host; higher is better. Scores are normalised across the hosts
    (0 to 1) and scaled by ``multiplier`` before weighers are summed, so one
    weigher's units never drown another's."""

    name: ClassVar[str]
    multiplier: float = 1.0

    def weigh(self, host_state: HostState, spec: Mapping[str, Any]) -> float:
        raise NotImplementedError


class RamWeigher(HostWeigher):
    """Most free RAM first (under the allocation ratio): spreads instances out."""

    name = "RamWeigher"

    def weigh(self, host_state: HostState, spec: Mapping[str, Any]) -> float:
        return host_state.free("memory_mb")


# -- selection by name -----------------------------------------------------------

FILTERS: Mapping[str, type[HostFilter]] = {
    cls.name: cls
    for cls in (
        ServiceEnabledFilter,
        ServiceUpFilter,
        IgnoreHostsFilter,
        VCPUFilter,
        RamFilter,
        DiskFilter,
    )
}
WEIGHERS: Mapping[str, type[HostWeigher]] = {cls.name: cls for cls in (RamWeigher,)}

#: Cheapest and most decisive first: the counts in a NoValidHost message then
#: say why a host went (a down host is reported down, not short of RAM).
DEFAULT_FILTERS: tuple[str, ...] = tuple(FILTERS)
DEFAULT_WEIGHERS: tuple[str, ...] = tuple(WEIGHERS)


def _build(kind: str, names: Sequence[str], known: Mapping[str, type[Any]]) -> list[Any]:
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown scheduler {kind} {unknown}; known: {sorted(known)}")
    return [known[name]() for name in names]


def make_filters(names: Sequence[str] = DEFAULT_FILTERS) -> list[HostFilter]:
    return _build("filters", names, FILTERS)


def make_weighers(names: Sequence[str] = DEFAULT_WEIGHERS) -> list[HostWeigher]:
    return _build("weighers", names, WEIGHERS)
