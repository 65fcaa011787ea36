"""The item as workers see it: the same code reads the table on a conductor and
becomes an RPC on a worker."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from inventory.models import Item as ItemRow
from podium.context import RequestContext
from podium.db.current import get_database
from podium.exceptions import NotFound, PodiumError
from podium.objects import (
    VersionedObject,
    VersionedObjectRegistry,
    fields,
    remotable,
    remotable_classmethod,
)


class OutOfStock(PodiumError):
    msg_fmt = "only %(stock)s of %(sku)s left, %(wanted)s wanted"


@VersionedObjectRegistry.register
class Item(VersionedObject):
    VERSION = "1.0"

    fields = {
        "id": fields.IntegerField(read_only=True),
        "sku": fields.StringField(),
        "stock": fields.NonNegativeIntegerField(default=0),
    }

    @classmethod
    def _from_row(cls, context: RequestContext, row: Any) -> Item:
        item = cls(context, id=row.id, sku=row.sku, stock=row.stock)
        item.obj_reset_changes()
        return item

    @remotable
    def create(self) -> None:
        def insert(session: Session) -> int:
            row = ItemRow(sku=self.sku, stock=self.stock)
            session.add(row)
            session.flush()
            return row.id

        self.id = get_database().run(insert)
        self.obj_reset_changes()

    @remotable_classmethod
    def get_by_sku(cls, context: RequestContext, sku: str) -> Item:
        query = select(ItemRow).where(ItemRow.sku == sku, ItemRow.deleted == 0)
        row = get_database().run(lambda session: session.scalars(query).one_or_none())
        if row is None:
            raise NotFound(f"no item {sku!r}")
        return cls._from_row(context, row)

    @remotable
    def reserve(self, count: int) -> None:
        """Take ``count`` off the stock, in one statement: two workers never take the same one."""
        taken = (
            update(ItemRow)
            .where(ItemRow.id == self.id, ItemRow.stock >= count)
            .values(stock=ItemRow.stock - count)
            .returning(ItemRow.stock)
        )
        left = get_database().run(lambda session: session.scalars(taken).one_or_none())
        if left is None:
            current = type(self).get_by_sku(self._context, self.sku)
            raise OutOfStock(sku=self.sku, stock=current.stock, wanted=count)
        self.stock = left
        self.obj_reset_changes(["stock"])
