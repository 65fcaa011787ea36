"""The scheduler: picks a compute host for each instance and claims its resources there.

It holds no database credentials: it reads the hosts through the objects and
claims with :meth:`ComputeNode.claim`, both through the conductor. Several
schedulers may run at once, each on a snapshot that is stale as soon as it is
read; what keeps them from over-committing a host is the claim, one
conditional UPDATE (``used + wanted <= total * ratio``) that the database
applies to one request at a time. A lost claim only sends the request on to
the next host.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from podium.cloud.config import CloudConfig
from podium.cloud.exceptions import InstanceInvalidState, NoValidHost
from podium.cloud.objects import ComputeNode, ComputeNodeList, Instance, ServiceList
from podium.cloud.rpcapi import SchedulerAPI
from podium.cloud.scheduler.filters import (
    DEFAULT_FILTERS,
    DEFAULT_WEIGHERS,
    FlavorSpec,
    HostFilter,
    HostState,
    HostWeigher,
    flavor_of,
    make_filters,
    make_weighers,
)
from podium.context import RequestContext
from podium.rpc import Target

LOG = logging.getLogger(__name__)

#: The binary compute hosts report their heartbeats under.
COMPUTE_BINARY = "podium-compute"


class SchedulerManager:
    """The endpoint of topic ``scheduler``."""

    target = Target(version=SchedulerAPI.VERSION)

    def __init__(
        self,
        config: CloudConfig,
        *,
        filters: Sequence[str] = DEFAULT_FILTERS,
        weighers: Sequence[str] = DEFAULT_WEIGHERS,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.filters: list[HostFilter] = make_filters(filters)
        self.weighers: list[HostWeigher] = make_weighers(weighers)
        # Shared by the server's worker threads; Random's methods are thread-safe.
        self._random = rng or random.Random()

    def select_destinations(
        self, ctxt: RequestContext, request_spec: dict[str, Any]
    ) -> list[dict[str, str]]:
        """One claimed ``{"host", "node"}`` per instance of the spec, in its order.

        All or nothing: when one instance finds no host, the claims already
        made for the others are given back and :class:`NoValidHost` is raised.
        """
        # The scheduler reads every host and claims on the service's account,
        # whoever asked; deleted hosts never count, whatever the caller reads.
        admin = ctxt.elevated(read_deleted="no")
        uuids = [str(uuid) for uuid in request_spec.get("instance_uuids") or ()]
        flavor = flavor_of(request_spec)
        hosts = self._host_states(admin)
        chosen: list[_Placement] = []
        try:
            for uuid in uuids:
                chosen.append(self._place(admin, uuid, flavor, hosts, request_spec))
        except NoValidHost:
            self._release(admin, chosen)
            raise
        return [{"host": placement.host, "node": placement.node} for placement in chosen]

    def _host_states(self, ctxt: RequestContext) -> list[HostState]:
        services = {
            service.host: service for service in ServiceList.get_all(ctxt, binary=COMPUTE_BINARY)
        }
        ratios = self.config.allocation_ratios()
        now = datetime.now(UTC)
        return [
            HostState(
                node=node,
                service=services.get(node.host),
                ratios=ratios,
                now=now,
                service_down_time=self.config.service_down_time,
            )
            for node in ComputeNodeList.get_all(ctxt)
        ]

    def _place(
        self,
        ctxt: RequestContext,
        uuid: str,
        flavor: FlavorSpec,
        hosts: list[HostState],
        spec: Mapping[str, Any],
    ) -> _Placement:
        candidates, removed = self._filtered(hosts, spec)
        lost: list[str] = []
        for state in self._weighed(candidates, spec):
            try:
                claimed = ComputeNode.claim(ctxt, state.host, uuid, self.config.allocation_ratios())
            except InstanceInvalidState:
                # Claimed elsewhere: another delivery of this request (a
                # duplicate on another conductor) placed it first.
                placed = self._already_placed(ctxt, uuid)
                if placed is not None:
                    return placed
                continue  # given back since: the next host may take it
            if claimed:
                state.consume(flavor)
                LOG.info(
                    "instance %s -> %s (attempt %s; %d of %d hosts passed the filters%s)",
                    uuid,
                    state.host,
                    spec.get("num_attempts", 1),
                    len(candidates),
                    len(hosts),
                    f"; lost claims on {', '.join(lost)}" if lost else "",
                )
                return _Placement(uuid, state.host, state.nodename, claimed=True)
            # Another scheduler filled the host since our snapshot.
            lost.append(state.host)
        # The host that holds its claim may be what the filters removed (its
        # room is this very instance's): a duplicate request must not fail it.
        placed = self._already_placed(ctxt, uuid)
        if placed is not None:
            return placed
        raise self._no_valid_host(uuid, hosts, removed, lost, spec)

    def _filtered(
        self, hosts: list[HostState], spec: Mapping[str, Any]
    ) -> tuple[list[HostState], dict[str, int]]:
        """The hosts every filter passes, and how many each filter removed."""
        removed: dict[str, int] = {}
        candidates = hosts
        for host_filter in self.filters:
            passed = [state for state in candidates if host_filter.host_passes(state, spec)]
            removed[host_filter.name] = len(candidates) - len(passed)
            candidates = passed
        return candidates, removed

    @staticmethod
    def _no_valid_host(
        uuid: str,
        hosts: list[HostState],
        removed: dict[str, int],
        lost: list[str],
        spec: Mapping[str, Any],
    ) -> NoValidHost:
        reasons = ", ".join(f"{name} removed {count}" for name, count in removed.items())
        message = (
            f"There are not enough hosts available for instance {uuid} "
            f"({len(hosts)} compute hosts). Filters: {reasons}."
        )
        if lost:
            message += (
                f" Claims failed on {len(lost)} host(s) filled by concurrent requests: "
                f"{', '.join(lost)}."
            )
        LOG.info(
            "instance %s: no valid host (attempt %s). %s",
            uuid,
            spec.get("num_attempts", 1),
            message,
        )
        return NoValidHost(message)

    def _weighed(self, hosts: list[HostState], spec: Mapping[str, Any]) -> list[HostState]:
        """Best first; equal hosts in random order so concurrent schedulers spread out."""
        shuffled = list(hosts)
        self._random.shuffle(shuffled)
        totals = [0.0] * len(shuffled)
        for weigher in self.weighers:
            raw = [weigher.weigh(state, spec) for state in shuffled]
            low, high = min(raw, default=0.0), max(raw, default=0.0)
            span = high - low
            for index, value in enumerate(raw):
                totals[index] += weigher.multiplier * ((value - low) / span if span else 0.0)
        # sorted() is stable: ties keep the shuffled order.
        order = sorted(range(len(shuffled)), key=lambda index: -totals[index])
        return [shuffled[index] for index in order]

    def _already_placed(self, ctxt: RequestContext, uuid: str) -> _Placement | None:
        instance = Instance.get_by_uuid(ctxt, uuid)
        if instance.host is None:
            return None
        LOG.info(
            "instance %s is already claimed by %s; that is its destination", uuid, instance.host
        )
        return _Placement(uuid, instance.host, instance.node or instance.host, claimed=False)

    def _release(self, ctxt: RequestContext, chosen: list[_Placement]) -> None:
        for placement in chosen:
            if not placement.claimed:
                continue  # not this request's claim to give back
            ComputeNode.release(ctxt, placement.host, placement.uuid)
            LOG.info(
                "instance %s: claim on %s given back (its request found no host for all)",
                placement.uuid,
                placement.host,
            )


@dataclass(frozen=True)
class _Placement:
    """Where an instance of a request goes; ``claimed``: the claim is this request's own."""

    uuid: str
    host: str
    node: str
    claimed: bool
