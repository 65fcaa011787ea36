"""The framework's tables: the conductor's inbox and the RPC servers' shared de-dup store.

Revision ID: podium_0001
Revises:
Create Date: 2026-11-27

The first revision of the branch ``podium``; applications' tables are in their
own branches. Written out by hand rather than from the models, so that later
changes to the models never rewrite history; tests/db/test_migration.py checks
that the migrated schema still matches the models.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from podium.db.types import UTCDateTime

revision = "podium_0001"
down_revision = None
branch_labels = ("podium",)
depends_on = None


def _reply() -> sa.types.TypeEngine[bytes]:
    return sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "conductor_inbox",
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("method", sa.String(255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("reply", _reply(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_conductor_inbox"),
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_conductor_inbox_created_at", "conductor_inbox", ["created_at"])
    op.create_table(
        "rpc_dedup",
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("owner", sa.String(255), nullable=True),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("reply", _reply(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_rpc_dedup"),
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_rpc_dedup_created_at", "rpc_dedup", ["created_at"])


def downgrade() -> None:
    op.drop_table("rpc_dedup")
    op.drop_table("conductor_inbox")
