"""The toy application's tables and their shadow twins.

Revision ID: toy_0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

from podium.db.types import UTCDateTime

revision = "toy_0001"
down_revision = None
branch_labels = ("toy",)
depends_on = None


def _soft_delete_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=True),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.Column("deleted", sa.Integer(), server_default="0", nullable=False),
    ]


def _widgets() -> list[sa.Column[object]]:
    return [
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("colour", sa.String(32), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("made_at", UTCDateTime(), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
    ]


def _parts() -> list[sa.Column[object]]:
    return [
        sa.Column("widget_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(64), nullable=True),
    ]


# Table -> (its columns but the soft-delete ones, the unique key with "deleted").
TABLES: dict[str, tuple[Callable[[], list[sa.Column[object]]], tuple[str, ...]]] = {
    "toy_widgets": (_widgets, ("name", "deleted")),
    "toy_parts": (_parts, ()),
}


def upgrade() -> None:
    for name, (columns, unique) in TABLES.items():
        constraints = [sa.UniqueConstraint(*unique, name=f"uniq_{name}0" + "0".join(unique))]
        op.create_table(
            name,
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
            *columns(),
            *_soft_delete_columns(),
            sa.PrimaryKeyConstraint("id", name=f"pk_{name}"),
            *(constraints if unique else []),
            sqlite_autoincrement=True,
            mysql_charset="utf8mb4",
        )
        # No unique constraint on the shadow: a name may have been deleted many times.
        op.create_table(
            f"shadow_{name}",
            sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
            *columns(),
            *_soft_delete_columns(),
            sa.PrimaryKeyConstraint("id", name=f"pk_shadow_{name}"),
            mysql_charset="utf8mb4",
        )
    op.create_index("ix_toy_parts_widget_id_deleted", "toy_parts", ["widget_id", "deleted"])


def downgrade() -> None:
    for name in reversed(list(TABLES)):
        op.drop_table(f"shadow_{name}")
        op.drop_table(name)
