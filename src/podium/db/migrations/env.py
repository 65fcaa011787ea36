"""Alembic environment for podium's schema: the framework's branch and every app's.

There is no alembic.ini: :mod:`podium.db.migration` builds the Config and
hands over an open connection (``config.attributes["connection"]``) and the
applications migrated (``config.attributes["apps"]``), so that migrations go
through :class:`podium.db.Database` like everything else and honour
``block_db_access``.
"""

from __future__ import annotations

from alembic import context

from podium.apps import import_modules
from podium.db.models import Base, shadow_tables

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "podium migrations run through podium.db.migration.sync() or `podium db sync`, "
        "which pass an open connection"
    )

# Every app's tables in Base.metadata (and their shadow twins), so that the
# metadata compared with the database is the whole schema.
import_modules(context.config.attributes.get("apps", ()), "models")
shadow_tables()

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)

with context.begin_transaction():
    context.run_migrations()
