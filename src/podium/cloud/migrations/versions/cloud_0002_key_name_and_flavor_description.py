"""Instance.key_name and Flavor.description (release birch).

Revision ID: cloud_0002
Revises: cloud_0001
Create Date: 2026-12-01

Expand only: two nullable columns, on each table and its shadow twin. The
services of the release before keep working on the migrated schema (their
statements name the columns they know; the new ones read as NULL), so the
schema is upgraded first, while they run.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "cloud_0002"
down_revision = "cloud_0001"
branch_labels = None
depends_on = None

#: table -> the column it gains
COLUMNS = {"instances": "key_name", "flavors": "description"}


def upgrade() -> None:
    for table, column in COLUMNS.items():
        for name in (table, f"shadow_{table}"):
            op.add_column(name, sa.Column(column, sa.String(255), nullable=True))


def downgrade() -> None:
    for table, column in COLUMNS.items():
        for name in (table, f"shadow_{table}"):
            op.drop_column(name, column)
