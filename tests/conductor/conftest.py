from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from podium.apps import installed_apps
from podium.cloud.objects import CloudObject
from podium.conductor import ConductorAPI, ConductorService, configure_worker
from podium.context import RequestContext
from podium.db import Database
from podium.db.migration import sync
from podium.rpc import Transport, get_transport


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'conductor.sqlite'}")
    sync(db)
    yield db
    db.dispose()


@pytest.fixture
def transport() -> Iterator[Transport]:
    with get_transport(f"memory://conductor-{uuid.uuid4().hex}") as transport:
        # As `podium conductor` and the cloud's services do: the installed apps'
        # errors (UnexpectedTaskStateError...) reach callers as themselves.
        transport.allowed_remote_exmods.extend(
            module for app in installed_apps() for module in app.remote_exceptions
        )
        yield transport


@pytest.fixture
def conductor(transport: Transport, database: Database) -> Iterator[ConductorService]:
    with ConductorService(transport, database, host="conductor-1", workers=4) as service:
        yield service


@pytest.fixture
def worker(transport: Transport, conductor: ConductorService) -> Iterator[ConductorAPI]:
    """This test process plays a worker: its cloud objects go through the conductor."""
    api = configure_worker(transport, base=CloudObject, timeout=10)
    assert api is not None
    try:
        yield api
    finally:
        CloudObject.indirection_api = None


@pytest.fixture
def ctx() -> RequestContext:
    return RequestContext(user_id="alice", project_id="p1")
