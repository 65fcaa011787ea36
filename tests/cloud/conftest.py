"""An in-process cloud spine for the cloud's tests: memory:// bus, a migrated database,
a conductor serving the cloud (objects and build flow), and this process playing a
worker whose cloud objects go through that conductor."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from tests.conftest import Servers

from podium.cloud.conductor import ComputeTaskManager
from podium.cloud.config import CloudConfig
from podium.cloud.objects import CloudObject
from podium.conductor import ConductorService, configure_worker
from podium.context import RequestContext, get_admin_context
from podium.db import Database
from podium.db.migration import sync
from podium.objects.fixture import indirection_api_set
from podium.rpc import Transport, get_transport

CLOUD_EXCEPTIONS = ["podium.exceptions", "podium.cloud.exceptions"]


@dataclass
class Spine:
    transport: Transport
    database: Database
    conductor: ConductorService
    build_flow: ComputeTaskManager
    config: CloudConfig

    @property
    def admin(self) -> RequestContext:
        return get_admin_context()


def cloud_config(**overrides: object) -> CloudConfig:
    """Settings for a test: fast heartbeats, a small fake hypervisor, no env leaking in."""
    values: dict[str, object] = {
        "report_interval": 0.2,
        "service_down_time": 1.0,
        "rpc_timeout": 10.0,
        "rpc_workers": 4,
        "compute_vcpus": 4,
        "compute_memory_mb": 8192,
        "compute_disk_gb": 100,
    }
    values.update(overrides)
    return CloudConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
def cloud_database(servers: Servers) -> Iterator[Database]:
    database = Database(servers.new_url("sqlite"), pool_size=8)
    sync(database)
    yield database
    database.dispose()


@pytest.fixture
def spine(cloud_database: Database) -> Iterator[Spine]:
    config = cloud_config()
    with get_transport(
        f"memory://cloud-{uuid.uuid4().hex}", allowed_remote_exmods=CLOUD_EXCEPTIONS
    ) as transport:
        build_flow = ComputeTaskManager(transport, cloud_database, "conductor-1", config)
        conductor = ConductorService(
            transport, cloud_database, host="conductor-1", workers=8, endpoints=[build_flow]
        )
        with conductor, indirection_api_set(None, CloudObject):
            configure_worker(transport, base=CloudObject, timeout=10)
            yield Spine(transport, cloud_database, conductor, build_flow, config)
