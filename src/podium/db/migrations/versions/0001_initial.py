"""Initial schema: services, compute_nodes, instances and their shadow tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-26

Written out by hand rather than from the models, so that later changes to the
models never rewrite history; tests/db/test_migration.py checks that the
migrated schema still matches the models.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

from podium.db.types import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _soft_delete_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=True),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.Column("deleted", sa.Integer(), server_default="0", nullable=False),
    ]


def _services() -> list[sa.Column[object]]:
    return [
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("binary", sa.String(255), nullable=False),
        sa.Column("topic", sa.String(255), nullable=True),
        sa.Column("report_count", sa.Integer(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.String(255), nullable=True),
        sa.Column("last_seen_up", UTCDateTime(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("forced_down", sa.Boolean(), nullable=False),
    ]


def _compute_nodes() -> list[sa.Column[object]]:
    return [
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("hypervisor_hostname", sa.String(255), nullable=True),
        sa.Column("vcpus", sa.Integer(), nullable=False),
        sa.Column("memory_mb", sa.Integer(), nullable=False),
        sa.Column("local_gb", sa.Integer(), nullable=False),
        sa.Column("vcpus_used", sa.Integer(), nullable=False),
        sa.Column("memory_mb_used", sa.Integer(), nullable=False),
        sa.Column("local_gb_used", sa.Integer(), nullable=False),
    ]


def _instances() -> list[sa.Column[object]]:
    return [
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("hostname", sa.String(255), nullable=True),
        sa.Column("display_name", sa.String(255), nullable=True),
        sa.Column("project_id", sa.String(255), nullable=True),
        sa.Column("user_id", sa.String(255), nullable=True),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("node", sa.String(255), nullable=True),
        sa.Column("vm_state", sa.String(255), nullable=True),
        sa.Column("task_state", sa.String(255), nullable=True),
        sa.Column("power_state", sa.Integer(), nullable=False),
        sa.Column("memory_mb", sa.Integer(), nullable=False),
        sa.Column("vcpus", sa.Integer(), nullable=False),
        sa.Column("root_gb", sa.Integer(), nullable=False),
        sa.Column("image_ref", sa.String(255), nullable=True),
        sa.Column("launched_at", UTCDateTime(), nullable=True),
        sa.Column("terminated_at", UTCDateTime(), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
    ]


TABLES: dict[str, tuple[Callable[[], list[sa.Column[object]]], tuple[str, ...]]] = {
    "services": (_services, ("host", "binary", "deleted")),
    "compute_nodes": (_compute_nodes, ("host", "deleted")),
    "instances": (_instances, ("uuid", "deleted")),
}


def upgrade() -> None:
    for name, (columns, unique) in TABLES.items():
        op.create_table(
            name,
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
            *columns(),
            *_soft_delete_columns(),
            sa.PrimaryKeyConstraint("id", name=f"pk_{name}"),
            sa.UniqueConstraint(*unique, name=f"uniq_{name}0" + "0".join(unique)),
            # SQLite would otherwise reuse the id of the last row once it is
            # archived, and that id already sits in the shadow table.
            sqlite_autoincrement=True,
            mysql_charset="utf8mb4",
        )
        # Shadow tables keep every column, id included (no autoincrement:
        # ids come from the live table), but no unique constraint: a uuid may
        # have been deleted many times.
        op.create_table(
            f"shadow_{name}",
            sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
            *columns(),
            *_soft_delete_columns(),
            sa.PrimaryKeyConstraint("id", name=f"pk_shadow_{name}"),
            mysql_charset="utf8mb4",
        )
    op.create_index("ix_instances_host_deleted", "instances", ["host", "deleted"])
    op.create_index("ix_instances_project_id_deleted", "instances", ["project_id", "deleted"])


def downgrade() -> None:
    for name in reversed(list(TABLES)):
        op.drop_table(f"shadow_{name}")
        op.drop_table(name)
