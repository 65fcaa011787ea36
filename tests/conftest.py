"""Shared fixtures: the real services of the machine, and how their absence is treated.

Under ``CI=true`` a missing service is a failure, never a skip: a green CI run
must mean the integration tests really ran.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from podium import testing
from podium.testing.plugin import require_service

RABBIT_URL = os.environ.get("PODIUM_TEST_RABBIT_URL", "rabbit://guest:guest@127.0.0.1:5672/")
POSTGRES_URL = os.environ.get(
    "PODIUM_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("PODIUM_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("PODIUM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def rabbit_url() -> Iterator[str]:
    """The broker URL, on a throwaway vhost when rabbitmqctl can make one."""
    require_service("RabbitMQ", "127.0.0.1", 5672)
    if "PODIUM_TEST_RABBIT_URL" in os.environ:
        yield RABBIT_URL
        return
    with testing.rabbit_vhost(RABBIT_URL) as url:
        yield url


#: The database backends a test parametrized by ``backend`` runs on.
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    pytest.param("mysql", id="mysql", marks=pytest.mark.mysql),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    return POSTGRES_URL


@pytest.fixture(scope="session")
def mysql_url() -> str:
    require_service("MariaDB", "127.0.0.1", 3306)
    return MYSQL_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    require_service("Redis", "127.0.0.1", 6379)
    return REDIS_URL


class Servers:
    """Creates isolated, empty databases; drops them at the end of the session."""

    def __init__(self, request: pytest.FixtureRequest, tmp: pytest.TempPathFactory) -> None:
        self._request = request
        self._tmp = tmp
        self._cleanups: list[Callable[[], None]] = []
        self._migrated: dict[tuple[str, str], str] = {}

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

    def migrated_url(self, backend: str, purpose: str = "") -> str:
        """A database on ``backend`` migrated to head, made once per ``purpose`` a session."""
        url = self._migrated.get((backend, purpose))
        if url is None:
            from podium.db import Database, migration

            url = self.new_url(backend)
            database = Database(url)
            migration.sync(database)
            database.dispose()
            self._migrated[(backend, purpose)] = url
        return url

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
    """Isolated, empty databases: SQLite files, or a fresh schema / database named
    ``podium_test_<random>`` on the shared PostgreSQL and MariaDB servers, dropped
    at the end of the session so parallel runs never see each other's rows."""
    servers = Servers(request, tmp_path_factory)
    yield servers
    servers.close()
