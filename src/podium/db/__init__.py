"""Database: models with soft delete, engines by URL, migrations, block_db_access.

Only the conductor (and ``podium db`` commands) open the database; worker
services call :func:`block_db_access` at start-up. See docs/db.md.
"""

from typing import TYPE_CHECKING

from podium._lazy import lazy_exports

if TYPE_CHECKING:
    from podium.db.engine import Database, allow_db_access, block_db_access, default_url

__all__ = ["Database", "allow_db_access", "block_db_access", "default_url"]

__getattr__ = lazy_exports(__name__, dict.fromkeys(__all__, "podium.db.engine"))
