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
from datetime import UTC, datetime
from typing import Any

from podium.cloud.config import CloudConfig
from podium.cloud.exceptions import NoValidHost
from podium.cloud.objects import ComputeNode, ComputeNodeList, ServiceList
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
        chosen: list[tuple[str, HostState]] = []
        try:
            for uuid in uuids:
                chosen.append((uuid, self._place(admin, uuid, flavor, hosts, request_spec)))
        except NoValidHost:
            self._release(admin, chosen)
            raise
        return [{"host": state.host, "node": state.nodename} for _, state in chosen]

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
    ) -> HostState:
        removed: dict[str, int] = {}
        candidates = hosts
        for host_filter in self.filters:
            passed = [state for state in candidates if host_filter.host_passes(state, spec)]
            removed[host_filter.name] = len(candidates) - len(passed)
            candidates = passed
        lost: list[str] = []
        for state in self._weighed(candidates, spec):
            if ComputeNode.claim(ctxt, state.host, uuid, self.config.allocation_ratios()):
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
                return state
            # Another scheduler filled the host since our snapshot.
            lost.append(state.host)
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
        raise NoValidHost(message)

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

    def _release(self, ctxt: RequestContext, chosen: list[tuple[str, HostState]]) -> None:
        for uuid, state in chosen:
            ComputeNode.release(ctxt, state.host, uuid)
            LOG.info(
                "instance %s: claim on %s given back (its request found no host for all)",
                uuid,
                state.host,
            )
