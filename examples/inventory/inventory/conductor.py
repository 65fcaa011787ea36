"""What the conductor serves for this application besides object calls."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select

from inventory.models import Item as ItemRow
from podium.db import Database
from podium.rpc import RPCClient, Target, Transport


class Stocktake:
    """An endpoint of the conductor: questions only the database can answer."""

    target = Target(namespace="inventory", version="1.0")

    def __init__(self, database: Database) -> None:
        self.database = database

    def total_stock(self, ctxt: Any) -> int:
        query = select(func.coalesce(func.sum(ItemRow.stock), 0)).where(ItemRow.deleted == 0)
        return int(self.database.run(lambda session: session.scalar(query)))


def endpoints(transport: Transport, database: Database, host: str) -> Sequence[object]:
    return [Stocktake(database)]


class StocktakeAPI:
    """The worker's side of :class:`Stocktake`."""

    def __init__(self, transport: Transport, *, timeout: float = 30.0) -> None:
        target = Target(topic="conductor", namespace="inventory", version="1.0")
        self._client = RPCClient(transport, target, timeout=timeout)

    def total_stock(self, ctxt: Any) -> int:
        total: int = self._client.call(ctxt, "total_stock")
        return total
