"""An application's own endpoints, served by the conductor beside its object calls."""

from __future__ import annotations

from typing import Any

from podium.conductor import ConductorService
from podium.context import RequestContext
from podium.db import Database
from podium.rpc import RPCClient, Target, Transport


class ToyFlow:
    """What an App's ``conductor_endpoints`` returns: any RPC endpoint."""

    target = Target(namespace="toy_flow", version="1.0")

    def __init__(self, database: Database) -> None:
        self.database = database

    def where(self, ctxt: RequestContext) -> dict[str, Any]:
        return {"database": self.database.safe_url, "user": ctxt.user_id}


def test_extra_endpoints_are_served_beside_the_object_calls(
    transport: Transport, database: Database, ctx: RequestContext
) -> None:
    with ConductorService(
        transport, database, host="conductor-e", workers=2, endpoints=[ToyFlow(database)]
    ):
        flow = RPCClient(
            transport, Target(topic="conductor", namespace="toy_flow", version="1.0"), timeout=10
        )
        assert flow.call(ctx, "where") == {"database": database.safe_url, "user": "alice"}
        # The conductor's own API still answers on the same topic.
        conductor = RPCClient(transport, Target(topic="conductor", version="1.0"), timeout=10)
        assert conductor.call(ctx, "ping")["host"] == "conductor-e"
