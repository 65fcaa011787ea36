"""The proof of the scheduler's claims: concurrent requests never over-commit a host.

50 builds race for room for exactly 40, through a real scheduler service on
the bus, on every database backend: the claim's conditional UPDATE is what
keeps the count, so it has to hold on each backend's locking, not only on
SQLite's single writer.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from tests.cloud.conftest import Spine, cloud_config
from tests.conftest import Servers

from podium.cloud import states
from podium.cloud.exceptions import NoValidHost
from podium.cloud.objects import ComputeNode, Instance, InstanceList, Service
from podium.cloud.rpcapi import SchedulerAPI, sent_now
from podium.cloud.scheduler import COMPUTE_BINARY, SCHEDULER_BINARY, scheduler_service
from podium.context import RequestContext
from podium.db import Database
from podium.db.migration import sync

HOSTS = 4
SLOTS_PER_HOST = 10
BUILDS = 50
TINY = {"vcpus": 1, "memory_mb": 512, "disk_gb": 1}


@pytest.fixture
def cloud_database(servers: Servers, backend: str) -> Iterator[Database]:
    """The spine's database on each backend (overrides the SQLite-only one of conftest)."""
    database = Database(servers.new_url(backend), pool_size=16)
    sync(database)
    yield database
    database.dispose()


def new_instance(ctxt: RequestContext) -> str:
    instance = Instance(
        ctxt,
        uuid=str(uuid.uuid4()),
        vcpus=TINY["vcpus"],
        memory_mb=TINY["memory_mb"],
        root_gb=TINY["disk_gb"],
        vm_state=states.BUILDING,
        task_state=states.SCHEDULING,
    )
    instance.create()
    return str(instance.uuid)


def test_concurrent_builds_never_over_commit_a_host(spine: Spine) -> None:
    ctxt = spine.admin
    hosts = [f"compute-{index}" for index in range(HOSTS)]
    for host in hosts:
        ComputeNode.report(
            ctxt,
            host,
            vcpus=SLOTS_PER_HOST * TINY["vcpus"],
            memory_mb=SLOTS_PER_HOST * TINY["memory_mb"],
            disk_gb=SLOTS_PER_HOST * TINY["disk_gb"],
        )
        Service.report(ctxt, host, COMPUTE_BINARY, "compute", 1, sent_now())
    uuids = [new_instance(ctxt) for _ in range(BUILDS)]
    config = cloud_config(
        # Enough workers that the 50 requests really overlap in the scheduler.
        rpc_workers=16,
        service_down_time=300.0,
        cpu_allocation_ratio=1.0,
        ram_allocation_ratio=1.0,
        disk_allocation_ratio=1.0,
    )
    api = SchedulerAPI(spine.transport, timeout=60.0)
    start = threading.Barrier(BUILDS)

    def build(instance_uuid: str) -> str | NoValidHost:
        spec = {
            "instance_uuids": [instance_uuid],
            "flavor": dict(TINY),
            "ignore_hosts": [],
            "num_attempts": 1,
        }
        start.wait(timeout=30)
        try:
            [destination] = api.select_destinations(ctxt, spec)
        except NoValidHost as error:
            return error
        return destination["host"]

    with scheduler_service(spine.transport, config, "scheduler-1"):
        assert Service.get_by_host_and_binary(ctxt, "scheduler-1", SCHEDULER_BINARY).report_count
        with ThreadPoolExecutor(max_workers=BUILDS) as pool:
            outcomes = dict(zip(uuids, pool.map(build, uuids), strict=True))

    placed = {u: host for u, host in outcomes.items() if isinstance(host, str)}
    refused = [error for error in outcomes.values() if isinstance(error, NoValidHost)]
    assert (len(placed), len(refused)) == (HOSTS * SLOTS_PER_HOST, BUILDS - HOSTS * SLOTS_PER_HOST)
    assert all("There are not enough hosts available" in str(error) for error in refused)

    for host in hosts:
        node = ComputeNode.get_by_host(ctxt, host)
        on_host = InstanceList.get_by_host(ctxt, host)
        # The node's books are the sum of what it holds, and what it holds fits.
        assert (node.vcpus_used, node.memory_mb_used, node.disk_gb_used) == (
            sum(instance.vcpus for instance in on_host),
            sum(instance.memory_mb for instance in on_host),
            sum(instance.root_gb for instance in on_host),
        )
        assert node.vcpus_used <= node.vcpus * config.cpu_allocation_ratio
        assert node.memory_mb_used <= node.memory_mb * config.ram_allocation_ratio
        assert node.disk_gb_used <= node.disk_gb * config.disk_allocation_ratio
        # Each instance is where the scheduler said, and only the placed ones are anywhere.
        assert {instance.uuid: host for instance in on_host} == {
            u: placed_on for u, placed_on in placed.items() if placed_on == host
        }
    for u in set(uuids) - set(placed):
        assert Instance.get_by_uuid(ctxt, u).host is None
