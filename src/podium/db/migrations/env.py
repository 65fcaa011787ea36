"""Alembic environment for podium's schema.

There is no alembic.ini: :mod:`podium.db.migration` builds the Config and
hands over an open connection (``config.attributes["connection"]``), so that
migrations go through :class:`podium.db.Database` like everything else and
honour ``block_db_access``.
"""

from __future__ import annotations

from alembic import context

from podium.db.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "podium migrations run through podium.db.migration.sync() or `podium db sync`, "
        "which pass an open connection"
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)

with context.begin_transaction():
    context.run_migrations()
