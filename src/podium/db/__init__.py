"""Database: models with soft delete, engines by URL, migrations, block_db_access.

Only the conductor (and ``podium db`` commands) open the database; worker
services call :func:`block_db_access` at start-up. See docs/db.md.
"""

from podium.db.engine import Database, allow_db_access, block_db_access, default_url

__all__ = ["Database", "allow_db_access", "block_db_access", "default_url"]
