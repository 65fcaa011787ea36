"""podium's pytest plugin (loaded by pytest through the ``pytest11`` entry point).

The fixtures are named ``podium_*`` so that they never shadow a suite's own.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from podium import testing

if TYPE_CHECKING:
    from podium.apps import App
    from podium.conductor import ConductorAPI
    from podium.db import Database
    from podium.objects import VersionedObjectRegistry
    from podium.rpc import Transport


def require_service(name: str, host: str, port: int) -> None:
    """In a test: go on if ``host:port`` answers; else skip, or fail under ``CI=true``."""
    try:
        testing.require_service(name, host, port)
    except testing.ServiceMissing as missing:
        if missing.required:
            pytest.fail(str(missing), pytrace=False)
        pytest.skip(str(missing))


@pytest.fixture
def podium_apps() -> Sequence[App] | None:
    """The applications the other fixtures serve; ``None``: the installed ones.

    Override it in a ``conftest.py`` to test an application that is not installed.
    """
    return None


@pytest.fixture
def podium_transport(podium_apps: Sequence[App] | None) -> Iterator[Transport]:
    """A ``memory://`` transport on an in-process broker of the test's own."""
    with testing.memory_transport(apps=podium_apps) as transport:
        yield transport


@pytest.fixture(scope="session")
def podium_rabbit_url() -> Iterator[str]:
    """A throwaway vhost on the RabbitMQ at 127.0.0.1:5672 (fails under CI=true if it is down)."""
    require_service("RabbitMQ", "127.0.0.1", 5672)
    with testing.rabbit_vhost() as url:
        yield url


@pytest.fixture
def podium_database(tmp_path: Path, podium_apps: Sequence[App] | None) -> Iterator[Database]:
    """A SQLite database in ``tmp_path``, migrated to head."""
    with testing.migrated_sqlite(tmp_path / "podium.sqlite", apps=podium_apps) as database:
        yield database


@pytest.fixture
def podium_conductor(
    podium_transport: Transport, podium_database: Database, podium_apps: Sequence[App] | None
) -> Iterator[ConductorAPI]:
    """A conductor in the test process; the test's objects go through it, as a worker's do."""
    with testing.in_process_conductor(podium_transport, podium_database, apps=podium_apps) as api:
        yield api


@pytest.fixture
def podium_registry() -> Iterator[VersionedObjectRegistry]:
    """An empty default registry for the test; the previous one is restored after."""
    with testing.isolated_default_registry() as registry:
        yield registry
