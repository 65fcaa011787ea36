"""The transport conformance suite on ``rabbit://?routing=exchange``.

Requests, replies and a server's retries all go through exchanges there (the
route of broker accounts restricted per service, docs/broker.md); here with
an account that may do anything, so that only the routing differs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager

import pytest
from freezable_proxy import flaky_rabbit
from rpc_helpers import SERVERS, delete_queues

from podium.rpc import Transport, get_transport
from podium.testing.conformance import TransportConformance
from podium.testing.outages import Flaky, OutageConformance

pytestmark = pytest.mark.rabbit


class TestExchangeRoutingConformance(TransportConformance, OutageConformance):
    @pytest.fixture
    def transport(self, rabbit_url: str, topic: str) -> Iterator[Transport]:
        t = get_transport(rabbit_url + "?routing=exchange")
        try:
            yield t
        finally:
            t.cleanup()
            delete_queues(rabbit_url, [topic, *(f"{topic}.{s}" for s in SERVERS)])

    def forget_routes(self, transport: Transport) -> None:
        # rabbit:// remembers for a while that a queue had consumers.
        transport.driver._probed.clear()  # type: ignore[attr-defined]

    def outage_of(self, transport: Transport) -> AbstractContextManager[Flaky]:
        return flaky_rabbit(transport)
