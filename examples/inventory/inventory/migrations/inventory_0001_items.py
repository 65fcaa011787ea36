"""The items table.

Revision ID: inventory_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from podium.db.types import UTCDateTime

revision = "inventory_0001"
down_revision = None
branch_labels = ("inventory",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inventory_items",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sku", sa.String(32), nullable=False),
        sa.Column("stock", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=True),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.Column("deleted", sa.Integer(), server_default="0", nullable=False),
        sa.UniqueConstraint("sku", "deleted", name="uniq_inventory_items0sku0deleted"),
    )


def downgrade() -> None:
    op.drop_table("inventory_items")
