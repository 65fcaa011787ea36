"""The toy application's tables: widgets and their parts, both soft-deleted."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from podium.db.models import Base, SoftDeleteMixin


class Widget(SoftDeleteMixin, Base):
    __tablename__ = "toy_widgets"
    __table_args__ = (
        UniqueConstraint("name", "deleted", name="uniq_toy_widgets0name0deleted"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    colour: Mapped[str | None] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(default=0)
    made_at: Mapped[datetime | None]
    # The column ``metadata`` (a name SQLAlchemy's declarative base reserves).
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)


class Part(SoftDeleteMixin, Base):
    __tablename__ = "toy_parts"
    __table_args__ = (
        Index("ix_toy_parts_widget_id_deleted", "widget_id", "deleted"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    widget_id: Mapped[int]
    label: Mapped[str | None] = mapped_column(String(64))
