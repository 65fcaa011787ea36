"""The application's one table."""

from __future__ import annotations

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from podium.db.models import Base, SoftDeleteMixin


class Item(SoftDeleteMixin, Base):
    __tablename__ = "inventory_items"
    __table_args__ = (UniqueConstraint("sku", "deleted", name="uniq_inventory_items0sku0deleted"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(32))
    stock: Mapped[int] = mapped_column(default=0)
