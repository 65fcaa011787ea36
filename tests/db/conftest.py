"""Fixtures: one isolated database per backend and test session, with a toy application.

The isolated databases come from the ``servers`` fixture of tests/conftest.py.
The generic DB tests run against the toy application of ``toy_app`` (its own
tables and Alembic branch), migrated beside the framework and every installed
application, so they exercise podium.db as any application uses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from toy_app import TOY

from podium.apps import App, installed_apps
from podium.db import Database, allow_db_access, migration
from podium.db.models import Base

if TYPE_CHECKING:
    from tests.conftest import Servers


def all_apps() -> tuple[App, ...]:
    """The installed applications and the toy one."""
    return (*installed_apps(), TOY)


@pytest.fixture
def apps() -> tuple[App, ...]:
    return all_apps()


@pytest.fixture
def empty_url(servers: Servers, backend: str) -> str:
    """The URL of a new, empty database on ``backend``."""
    return servers.new_url(backend)


_MIGRATED: dict[str, str] = {}


def _migrated_url(servers: Servers, backend: str) -> str:
    """A database on ``backend`` migrated with the toy application, once a session."""
    url = _MIGRATED.get(backend)
    if url is None:
        url = servers.new_url(backend)
        database = Database(url)
        try:
            migration.sync(database, apps=all_apps())
        finally:
            database.dispose()
        _MIGRATED[backend] = url
    return url


@pytest.fixture(scope="session", autouse=True)
def _forget_migrated() -> Iterator[None]:
    # The URLs die with the session's `servers` (dropped at its end).
    yield
    _MIGRATED.clear()


@pytest.fixture
def database(servers: Servers, backend: str) -> Iterator[Database]:
    """A migrated database on ``backend`` (toy app included), every table emptied first."""
    allow_db_access()
    database = Database(_migrated_url(servers, backend))
    with database.connection() as connection:
        present = set(sa.inspect(connection).get_table_names())
        for table in reversed(Base.metadata.sorted_tables):
            if table.name in present:
                connection.execute(table.delete())
    yield database
    database.dispose()
