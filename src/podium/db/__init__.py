"""Database: models with soft delete, engines by URL, migrations, block_db_access."""
