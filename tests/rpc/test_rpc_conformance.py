"""The transport conformance suite of the testing kit, on memory:// and on the real RabbitMQ.

The ``transport`` fixture (tests/rpc/conftest.py) gives each test a fresh
transport of each kind.
"""

from __future__ import annotations

from podium.rpc import Transport
from podium.testing.conformance import TransportConformance


class TestTransportConformance(TransportConformance):
    def forget_routes(self, transport: Transport) -> None:
        # rabbit:// remembers for a while that a queue had consumers.
        probed = getattr(transport.driver, "_probed", None)
        if probed is not None:
            probed.clear()
