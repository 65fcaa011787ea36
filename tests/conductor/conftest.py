from __future__ import annotations

from collections.abc import Iterator

import pytest

from podium.cloud.objects import CloudObject
from podium.conductor import ConductorAPI, ConductorService, configure_worker
from podium.context import RequestContext
from podium.db import Database
from podium.objects.fixture import indirection_api_set
from podium.rpc import Transport


@pytest.fixture
def database(podium_database: Database) -> Database:
    return podium_database


@pytest.fixture
def transport(podium_transport: Transport) -> Transport:
    # The kit's transport lets the installed apps' errors (UnexpectedTaskStateError...)
    # reach callers as themselves, as `podium conductor` and the cloud's services do.
    return podium_transport


@pytest.fixture
def conductor(transport: Transport, database: Database) -> Iterator[ConductorService]:
    with ConductorService(transport, database, host="conductor-1", workers=4) as service:
        yield service


@pytest.fixture
def worker(transport: Transport, conductor: ConductorService) -> Iterator[ConductorAPI]:
    """This test process plays a worker: its cloud objects go through the conductor."""
    # What was set before (nothing, or another test's) comes back after.
    with indirection_api_set(None, CloudObject):
        api = configure_worker(transport, base=CloudObject, timeout=10)
        assert api is not None
        yield api


@pytest.fixture
def ctx() -> RequestContext:
    return RequestContext(user_id="alice", project_id="p1")
