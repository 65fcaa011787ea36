"""The transport conformance suite of the testing kit, on memory:// and on the real RabbitMQ.

The ``transport`` fixture (tests/rpc/conftest.py) gives each test a fresh
transport of each kind; the outage tests take RabbitMQ away through a proxy
that cuts and refuses connections (tests/rpc/freezable_proxy.py), memory://
through its bus's own outage.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from freezable_proxy import flaky_rabbit

from podium.rpc import Transport
from podium.testing.conformance import TransportConformance
from podium.testing.outages import Flaky, OutageConformance


class TestTransportConformance(TransportConformance, OutageConformance):
    def forget_routes(self, transport: Transport) -> None:
        # rabbit:// remembers for a while that a queue had consumers.
        probed = getattr(transport.driver, "_probed", None)
        if probed is not None:
            probed.clear()

    def outage_of(self, transport: Transport) -> AbstractContextManager[Flaky]:
        if transport.url.scheme == "memory":
            return super().outage_of(transport)
        return flaky_rabbit(transport)
