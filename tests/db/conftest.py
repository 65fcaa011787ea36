"""Fixtures: one isolated database per backend and test session.

The isolated databases come from the ``servers`` fixture of tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from podium.db import Database, allow_db_access
from podium.db.models import Base

if TYPE_CHECKING:
    from tests.conftest import Servers


@pytest.fixture
def empty_url(servers: Servers, backend: str) -> str:
    """The URL of a new, empty database on ``backend``."""
    return servers.new_url(backend)


@pytest.fixture
def database(servers: Servers, backend: str) -> Iterator[Database]:
    """A migrated database on ``backend``, with every table emptied before the test."""
    allow_db_access()
    url = servers.migrated_url(backend)
    database = Database(url)
    with database.connection() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())
    yield database
    database.dispose()
