"""Fixtures: one isolated database per backend and test session.

SQLite uses a file under the session's tmp dir. On the shared PostgreSQL and
MariaDB servers every test session creates its own schema / database named
``podium_test_<random>`` and drops it at the end, so parallel runs (other
helpers, CI) never see each other's rows.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from podium.db import Database, allow_db_access, migration
from podium.db.models import Base

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    pytest.param("mysql", id="mysql", marks=pytest.mark.mysql),
]


class Servers:
    """Creates isolated, empty databases; drops them at the end of the session."""

    def __init__(self, request: pytest.FixtureRequest, tmp: pytest.TempPathFactory) -> None:
        self._request = request
        self._tmp = tmp
        self._cleanups: list[Callable[[], None]] = []

    def new_url(self, backend: str) -> str:
        name = f"podium_test_{secrets.token_hex(6)}"
        if backend == "sqlite":
            return f"sqlite:///{self._tmp.mktemp('db') / (name + '.sqlite')}"
        if backend == "postgresql":
            base = make_url(self._request.getfixturevalue("postgres_url"))
            self._admin(base, f'CREATE SCHEMA "{name}"', f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
            return base.update_query_dict({"options": f"-csearch_path={name}"}).render_as_string(
                hide_password=False
            )
        if backend == "mysql":
            base = make_url(self._request.getfixturevalue("mysql_url"))
            self._admin(
                base,
                f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4",
                f"DROP DATABASE IF EXISTS `{name}`",
            )
            return base.set(database=name).render_as_string(hide_password=False)
        raise AssertionError(backend)

    def _admin(self, base: sa.URL, create: str, drop: str) -> None:
        engine = sa.create_engine(base, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
        with engine.connect() as connection:
            connection.execute(sa.text(create))

        def cleanup() -> None:
            with engine.connect() as connection:
                connection.execute(sa.text(drop))
            engine.dispose()

        self._cleanups.append(cleanup)

    def close(self) -> None:
        for cleanup in reversed(self._cleanups):
            cleanup()


@pytest.fixture(scope="session")
def servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Servers]:
    servers = Servers(request, tmp_path_factory)
    yield servers
    servers.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def empty_url(servers: Servers, backend: str) -> str:
    """The URL of a new, empty database on ``backend``."""
    return servers.new_url(backend)


_migrated: dict[str, str] = {}


def _create_schema(database: Database) -> None:
    migration.sync(database)
    database.dispose()


@pytest.fixture
def database(servers: Servers, backend: str) -> Iterator[Database]:
    """A migrated database on ``backend``, with every table emptied before the test."""
    allow_db_access()
    url = _migrated.get(backend)
    if url is None:
        url = servers.new_url(backend)
        _create_schema(Database(url))
        _migrated[backend] = url
    database = Database(url)
    with database.connection() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())
    yield database
    database.dispose()
