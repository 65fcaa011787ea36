"""The reference cloud's tables, their shadow twins, and the default flavors.

Revision ID: cloud_0001
Revises:
Create Date: 2026-12-01

Written out by hand rather than generated from the models, so later model
changes never rewrite history; a test checks the migrated schema against them.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

from podium.db.types import UTCDateTime, utcnow

revision = "cloud_0001"
down_revision = None
branch_labels = ("cloud",)
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
        sa.Column("last_report_sent_at", UTCDateTime(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("forced_down", sa.Boolean(), nullable=False),
    ]


def _compute_nodes() -> list[sa.Column[object]]:
    return [
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("hypervisor_hostname", sa.String(255), nullable=True),
        sa.Column("vcpus", sa.Integer(), nullable=False),
        sa.Column("memory_mb", sa.Integer(), nullable=False),
        sa.Column("disk_gb", sa.Integer(), nullable=False),
        sa.Column("vcpus_used", sa.Integer(), nullable=False),
        sa.Column("memory_mb_used", sa.Integer(), nullable=False),
        sa.Column("disk_gb_used", sa.Integer(), nullable=False),
    ]


def _flavors() -> list[sa.Column[object]]:
    return [
        sa.Column("flavorid", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("vcpus", sa.Integer(), nullable=False),
        sa.Column("memory_mb", sa.Integer(), nullable=False),
        sa.Column("disk_gb", sa.Integer(), nullable=False),
        sa.Column("is_public", sa.Boolean(), nullable=False),
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
        sa.Column("flavor", sa.JSON(), nullable=True),
        sa.Column("guest_status", sa.String(255), nullable=True),
        sa.Column("guest_status_at", UTCDateTime(), nullable=True),
    ]


def _instance_faults() -> list[sa.Column[object]]:
    return [
        sa.Column("instance_uuid", sa.String(36), nullable=False),
        sa.Column("code", sa.Integer(), nullable=False),
        sa.Column("message", sa.String(255), nullable=False),
        sa.Column("details", sa.Text(), nullable=True),
        sa.Column("host", sa.String(255), nullable=True),
    ]


#: table -> (its columns, the columns of each unique constraint)
TABLES: dict[str, tuple[Callable[[], list[sa.Column[object]]], tuple[tuple[str, ...], ...]]] = {
    "services": (_services, (("host", "binary", "deleted"),)),
    "compute_nodes": (_compute_nodes, (("host", "deleted"),)),
    "flavors": (_flavors, (("flavorid", "deleted"), ("name", "deleted"))),
    "instances": (_instances, (("uuid", "deleted"),)),
    "instance_faults": (_instance_faults, ()),
}

#: (flavorid, name, vcpus, memory_mb, disk_gb): the sizes Nova's users know.
DEFAULT_FLAVORS = [
    ("1", "m1.tiny", 1, 512, 1),
    ("2", "m1.small", 1, 2048, 20),
    ("3", "m1.medium", 2, 4096, 40),
    ("4", "m1.large", 4, 8192, 80),
    ("5", "m1.xlarge", 8, 16384, 160),
]


def upgrade() -> None:
    for name, (columns, uniques) in TABLES.items():
        op.create_table(
            name,
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
            *columns(),
            *_soft_delete_columns(),
            sa.PrimaryKeyConstraint("id", name=f"pk_{name}"),
            *(
                sa.UniqueConstraint(*unique, name=f"uniq_{name}0" + "0".join(unique))
                for unique in uniques
            ),
            # SQLite would otherwise reuse the id of the last row once it is
            # archived, and that id already sits in the shadow table.
            sqlite_autoincrement=True,
            mysql_charset="utf8mb4",
        )
        # Shadow tables keep every column, id included (ids come from the live
        # table), and no unique constraint: a uuid may be deleted many times.
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
    op.create_index(
        "ix_instance_faults_instance_uuid_deleted", "instance_faults", ["instance_uuid", "deleted"]
    )
    flavors = sa.table(
        "flavors",
        *(sa.column(name) for name in ("flavorid", "name", "vcpus", "memory_mb", "disk_gb")),
        sa.column("is_public"),
        sa.column("created_at", UTCDateTime()),
        sa.column("deleted"),
    )
    created = utcnow()
    op.bulk_insert(
        flavors,
        [
            {
                "flavorid": flavorid,
                "name": name,
                "vcpus": vcpus,
                "memory_mb": memory_mb,
                "disk_gb": disk_gb,
                "is_public": True,
                "created_at": created,
                "deleted": 0,
            }
            for flavorid, name, vcpus, memory_mb, disk_gb in DEFAULT_FLAVORS
        ],
    )


def downgrade() -> None:
    for name in reversed(list(TABLES)):
        op.drop_table(f"shadow_{name}")
        op.drop_table(name)
