"""The compute agent on the in-process spine: builds, actions, races, reschedules, restarts,
guest heartbeats, and the database block at start-up.

Every state change is awaited by polling the database (through the objects)
with a deadline; nothing sleeps for a fixed time and hopes.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from tests.cloud.conftest import Spine, cloud_config
from tests.cloud.instances import (
    ADMIN,
    DELETED_TOO,
    fetch,
    new_instance,
    usage,
    wait_settled,
)
from tests.polling import wait_for

from podium.cloud import db as cloud_db
from podium.cloud import states
from podium.cloud.compute import COMPUTE_BINARY, ComputeManager, FakeDriver, compute_service
from podium.cloud.config import CloudConfig
from podium.cloud.exceptions import NoValidHost, UnexpectedTaskStateError
from podium.cloud.objects import (
    CloudObject,
    ComputeNode,
    Instance,
    InstanceFault,
    InstanceList,
    Service,
)
from podium.cloud.rpcapi import SCHEDULER_TOPIC, ComputeAPI, ComputeTaskAPI, SchedulerAPI
from podium.cloud.service import CloudService
from podium.context import RequestContext
from podium.db import Database, allow_db_access
from podium.exceptions import DBNotAllowed
from podium.objects import VersionedObjectSerializer
from podium.objects.fixture import indirection_api_set
from podium.rpc import RPCServer, Target, get_transport

T = TypeVar("T")

DEADLINE = 15.0


def wait_deleted(instance_uuid: str) -> Instance:
    return wait_for(
        lambda: (lambda i: i if i.deleted else None)(fetch(instance_uuid, DELETED_TOO)),
        f"instance {instance_uuid} to be deleted",
    )


@contextmanager
def running_compute(
    spine: Spine, host: str, driver: FakeDriver | None = None, config: CloudConfig | None = None
) -> Iterator[CloudService]:
    # block_db=False: the conductor runs in this process, and the block is process-wide.
    service = compute_service(spine.transport, config or spine.config, host, driver, block_db=False)
    with service:
        yield service


def build_on(spine: Spine, host: str, instance: Instance) -> Instance:
    """What the conductor does once the scheduler picked ``host``: claim there, cast the build."""
    assert ComputeNode.claim(ADMIN, host, instance.uuid, spine.config.allocation_ratios())
    instance.refresh()
    ComputeAPI(spine.transport).build_and_run_instance(
        ADMIN, host, instance, {"instance_uuids": [instance.uuid], "num_attempts": 1}
    )
    return wait_settled(instance.uuid, states.ACTIVE)


def request(spine: Spine, instance_uuid: str, task_state: str, method: str) -> Instance:
    """What the API does for an action: the guard task_state (CAS on "no task"), then the cast."""
    instance = fetch(instance_uuid)
    instance.task_state = task_state
    instance.save(expected_task_state=[None])
    getattr(ComputeAPI(spine.transport), method)(ADMIN, instance)
    return instance


def request_delete(spine: Spine, instance_uuid: str) -> None:
    # Nova's API lets a delete take over whatever task is running.
    instance = fetch(instance_uuid)
    instance.task_state = states.DELETING
    instance.save()
    ComputeAPI(spine.transport).terminate_instance(ADMIN, instance)


# -- build and actions ---------------------------------------------------------


def test_build_reaches_active_and_the_host_reports_in(spine: Spine) -> None:
    driver = FakeDriver.from_config(spine.config)
    with running_compute(spine, "compute-1", driver):
        node = ComputeNode.get_by_host(ADMIN, "compute-1")
        assert (node.vcpus, node.memory_mb, node.disk_gb) == (4, 8192, 100)
        service = Service.get_by_host_and_binary(ADMIN, "compute-1", COMPUTE_BINARY)
        assert service.topic == "compute" and service.is_up(spine.config.service_down_time)

        instance = build_on(spine, "compute-1", new_instance())

    assert instance.power_state == states.RUNNING
    assert instance.host == "compute-1"
    assert instance.launched_at is not None
    assert driver.list_instances() == [instance.uuid]
    assert driver.get_power_state(instance.uuid) == states.RUNNING
    assert usage("compute-1") == (1, 512, 1)


#: One walk through every action, each starting where the previous one left off.
ACTION_SEQUENCE = [
    (states.PAUSING, "pause_instance", states.PAUSED, states.PAUSED_POWER),
    (states.UNPAUSING, "unpause_instance", states.ACTIVE, states.RUNNING),
    (states.POWERING_OFF, "stop_instance", states.STOPPED, states.SHUTDOWN),
    (states.POWERING_ON, "start_instance", states.ACTIVE, states.RUNNING),
    (states.POWERING_OFF, "stop_instance", states.STOPPED, states.SHUTDOWN),
    (states.REBOOTING, "reboot_instance", states.ACTIVE, states.RUNNING),
    (states.REBOOTING, "reboot_instance", states.ACTIVE, states.RUNNING),
]


def test_each_action_moves_the_states_as_nova_does(spine: Spine) -> None:
    driver = FakeDriver.from_config(spine.config)
    with running_compute(spine, "compute-1", driver):
        instance = build_on(spine, "compute-1", new_instance())
        for task_state, method, vm_state, power_state in ACTION_SEQUENCE:
            request(spine, instance.uuid, task_state, method)
            done = wait_settled(instance.uuid, vm_state)
            assert done.power_state == power_state, method
            assert driver.get_power_state(instance.uuid) == power_state, method
        # A hypervisor refusal (no pause for a stopped guest) clears the task,
        # keeps the state, and leaves a fault saying why.
        request(spine, instance.uuid, states.POWERING_OFF, "stop_instance")
        wait_settled(instance.uuid, states.STOPPED)
        request(spine, instance.uuid, states.PAUSING, "pause_instance")
        wait_for(
            lambda: InstanceFault.get_latest_for_instance(ADMIN, instance.uuid),
            "a fault for the refused pause",
        )
        after = wait_settled(instance.uuid, states.STOPPED)
    assert after.power_state == states.SHUTDOWN
    fault = InstanceFault.get_latest_for_instance(ADMIN, instance.uuid)
    assert fault is not None and fault.message.startswith("pausing failed: InstanceInvalidState")
    assert fault.host == "compute-1"


def test_delete_soft_deletes_and_gives_the_resources_back(spine: Spine) -> None:
    driver = FakeDriver.from_config(spine.config)
    with running_compute(spine, "compute-1", driver):
        built = [build_on(spine, "compute-1", new_instance(f"vm-{n}")) for n in range(3)]
        assert usage("compute-1") == (3, 3 * 512, 3)
        # One stopped first: a delete takes any instance, whatever its power state.
        request(spine, built[0].uuid, states.POWERING_OFF, "stop_instance")
        wait_settled(built[0].uuid, states.STOPPED)
        for instance in built:
            request_delete(spine, instance.uuid)
        gone = [wait_deleted(instance.uuid) for instance in built]
        assert usage("compute-1") == (0, 0, 0)
    assert driver.list_instances() == []
    for instance in gone:
        assert instance.vm_state == states.DELETED
        assert instance.task_state is None
        assert instance.power_state == states.NOSTATE
        assert instance.terminated_at is not None
    assert InstanceList.get_by_host(ADMIN, "compute-1").objects == []


def test_racing_actions_leave_a_consistent_state_and_the_compute_serving(
    spine: Spine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="podium.cloud.compute.manager")
    driver = FakeDriver.from_config(spine.config)
    with running_compute(spine, "compute-1", driver):
        instance = build_on(spine, "compute-1", new_instance())

        # Two API workers read the instance at rest and race for its task_state:
        # the CAS lets exactly one through.
        start = threading.Barrier(2)
        outcomes: dict[str, Instance | Exception] = {}

        def api_worker(task_state: str) -> None:
            mine = fetch(instance.uuid)
            mine.task_state = task_state
            start.wait()
            try:
                mine.save(expected_task_state=[None])
            except UnexpectedTaskStateError as error:
                outcomes[task_state] = error
            else:
                outcomes[task_state] = mine

        workers = [
            threading.Thread(target=api_worker, args=(task,))
            for task in (states.PAUSING, states.POWERING_OFF)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        winners = {task for task, outcome in outcomes.items() if isinstance(outcome, Instance)}
        assert len(winners) == 1, outcomes
        [winner] = winners
        loser = states.POWERING_OFF if winner == states.PAUSING else states.PAUSING
        method = {states.PAUSING: "pause_instance", states.POWERING_OFF: "stop_instance"}
        # Both casts reach the compute (the loser's as a stale or replayed
        # message would): only the one the database asks for is carried out.
        stale = fetch(instance.uuid)
        stale.task_state = loser
        getattr(ComputeAPI(spine.transport), method[loser])(ADMIN, stale)
        getattr(ComputeAPI(spine.transport), method[winner])(ADMIN, outcomes[winner])
        expected = states.PAUSED if winner == states.PAUSING else states.STOPPED
        done = wait_settled(instance.uuid, expected)
        wait_for(lambda: f"not {loser}; action dropped" in caplog.text, "the stale cast dropped")
        assert done.power_state == driver.get_power_state(instance.uuid)
        assert done.power_state == (
            states.PAUSED_POWER if winner == states.PAUSING else states.SHUTDOWN
        )

        # A delete takes over an action in flight: whichever runs first, the
        # instance ends deleted, with no VM and nothing held.
        second = build_on(spine, "compute-1", new_instance("second"))
        request(spine, second.uuid, states.PAUSING, "pause_instance")
        request_delete(spine, second.uuid)
        wait_deleted(second.uuid)
        assert second.uuid not in driver.list_instances()

        # The server survived all of it: another build goes through.
        third = build_on(spine, "compute-1", new_instance("third"))
    assert set(driver.list_instances()) == {instance.uuid, third.uuid}
    assert usage("compute-1") == (2, 1024, 2)
    assert "Traceback" not in caplog.text


def test_a_delete_during_the_spawn_leaves_no_vm_behind(spine: Spine) -> None:
    # A slow spawn, and a delete arriving while it runs: the delete waits for
    # the build (one lock per instance), then removes what it made.
    driver = FakeDriver(spawn_time=0.5, vcpus=4, memory_mb=8192, disk_gb=100)
    with running_compute(spine, "compute-1", driver):
        instance = new_instance()
        assert ComputeNode.claim(
            ADMIN, "compute-1", instance.uuid, spine.config.allocation_ratios()
        )
        instance.refresh()
        ComputeAPI(spine.transport).build_and_run_instance(ADMIN, "compute-1", instance, {})
        wait_for(lambda: fetch(instance.uuid).task_state == states.SPAWNING, "spawning")
        request_delete(spine, instance.uuid)
        gone = wait_deleted(instance.uuid)
        assert usage("compute-1") == (0, 0, 0)
    assert gone.vm_state == states.DELETED
    assert driver.list_instances() == []


# -- reschedules ---------------------------------------------------------------


class StubScheduler:
    """Claims the first host of a fixed list that is not ignored and still fits.

    The real scheduler's filters and weigher are not what these tests are
    about; the claim and the NoValidHost are, and they are the real ones.
    """

    target = Target(version=SchedulerAPI.VERSION)

    def __init__(self, hosts: list[str], ratios: dict[str, float]) -> None:
        self.hosts = hosts
        self.ratios = ratios
        self.requests: list[dict[str, Any]] = []

    def select_destinations(
        self, ctxt: RequestContext, request_spec: dict[str, Any]
    ) -> list[dict[str, str]]:
        self.requests.append(request_spec)
        ignored = set(request_spec.get("ignore_hosts") or ())
        chosen = []
        for instance_uuid in request_spec["instance_uuids"]:
            for host in self.hosts:
                if host not in ignored and ComputeNode.claim(
                    ctxt, host, instance_uuid, self.ratios
                ):
                    chosen.append({"host": host, "node": host})
                    break
            else:
                raise NoValidHost(f"none of {self.hosts} fits once {sorted(ignored)} are ignored")
        return chosen


@contextmanager
def stub_scheduler(spine: Spine, hosts: list[str]) -> Iterator[StubScheduler]:
    scheduler = StubScheduler(hosts, spine.config.allocation_ratios())
    server = RPCServer(
        spine.transport,
        Target(topic=SCHEDULER_TOPIC, server="scheduler-1"),
        [scheduler],
        serializer=VersionedObjectSerializer(),
    )
    with server:
        yield scheduler


def test_a_failed_build_is_rescheduled_and_lands_on_another_host(spine: Spine) -> None:
    failing = FakeDriver.from_config(spine.config)
    failing.fail_builds = True
    working = FakeDriver.from_config(spine.config)
    with (
        running_compute(spine, "bad", failing),
        running_compute(spine, "good", working),
        stub_scheduler(spine, ["bad", "good"]) as scheduler,
    ):
        instance = new_instance()
        ComputeTaskAPI(spine.transport).build_instances(ADMIN, [instance], {})
        built = wait_settled(instance.uuid, states.ACTIVE)
        assert usage("bad") == (0, 0, 0)
        assert usage("good") == (1, 512, 1)
    assert built.host == "good"
    assert failing.spawn_attempts == 1 and failing.list_instances() == []
    assert working.list_instances() == [instance.uuid]
    retry = scheduler.requests[-1]
    assert retry["ignore_hosts"] == ["bad"] and retry["num_attempts"] == 2
    assert "BuildFailed" in retry["last_failure"] and "(host bad)" in retry["last_failure"]
    assert "Traceback" in retry["last_failure_details"]


def test_builds_failing_everywhere_end_in_error_after_max_attempts(spine: Spine) -> None:
    hosts = ["bad-1", "bad-2", "bad-3"]
    assert spine.config.max_build_attempts == len(hosts)
    drivers = {host: FakeDriver.from_config(spine.config) for host in hosts}
    for driver in drivers.values():
        driver.fail_next_builds(5)
    with (
        running_compute(spine, "bad-1", drivers["bad-1"]),
        running_compute(spine, "bad-2", drivers["bad-2"]),
        running_compute(spine, "bad-3", drivers["bad-3"]),
        stub_scheduler(spine, hosts),
    ):
        instance = new_instance()
        ComputeTaskAPI(spine.transport).build_instances(ADMIN, [instance], {})
        wait_settled(instance.uuid, states.ERROR)
        # The conductor records the fault just after the state: wait for both.
        failed = wait_for(
            lambda: (lambda i: i if i.fault else None)(fetch(instance.uuid)), "the fault"
        )
        for host in hosts:
            assert usage(host) == (0, 0, 0)
    assert failed.host is None
    assert failed.fault is not None
    assert "Exceeded maximum number of build attempts (3)" in failed.fault.message
    assert [driver.spawn_attempts for driver in drivers.values()] == [1, 1, 1]


# -- restart -------------------------------------------------------------------


def test_a_restarted_compute_reconciles_what_the_database_says_it_has(spine: Spine) -> None:
    first = FakeDriver.from_config(spine.config)
    with running_compute(spine, "compute-1", first):
        names = ("at-rest", "spawning", "deleting", "pausing", "stopped")
        built = {name: build_on(spine, "compute-1", new_instance(name)) for name in names}
        request(spine, built["stopped"].uuid, states.POWERING_OFF, "stop_instance")
        wait_settled(built["stopped"].uuid, states.STOPPED)

    # While it is down, the database holds instances caught in the middle of
    # a task, and the node's usage drifted (a release lost with a crash).
    for name, task_state in [
        ("spawning", states.SPAWNING),
        ("deleting", states.DELETING),
        ("pausing", states.PAUSING),
    ]:
        instance = fetch(built[name].uuid)
        instance.task_state = task_state
        instance.save()
    node = ComputeNode.get_by_host(ADMIN, "compute-1")
    cloud_db.compute_node_update(spine.database, ADMIN, node.id, {"vcpus_used": 40})

    # The fake hypervisor forgot everything with the process.
    second = FakeDriver.from_config(spine.config)
    with running_compute(spine, "compute-1", second):
        # init_host runs before the service takes requests: all settled already.
        at_rest = fetch(built["at-rest"].uuid)
        assert (at_rest.vm_state, at_rest.task_state) == (states.ACTIVE, None)

        spawning = fetch(built["spawning"].uuid)
        assert (spawning.vm_state, spawning.task_state) == (states.ERROR, None)
        assert spawning.fault is not None
        assert spawning.fault.message == "compute restarted during build"

        deleted = fetch(built["deleting"].uuid, DELETED_TOO)
        assert deleted.deleted and deleted.vm_state == states.DELETED

        pausing = fetch(built["pausing"].uuid)
        assert (pausing.vm_state, pausing.task_state) == (states.ACTIVE, None)
        assert pausing.power_state == states.RUNNING

        stopped = fetch(built["stopped"].uuid)
        assert second.get_power_state(stopped.uuid) == states.SHUTDOWN

        assert set(second.list_instances()) == {
            built[name].uuid for name in ("at-rest", "pausing", "stopped")
        }
        # Recounted: the live instances still on the host (the one in ERROR too).
        assert usage("compute-1") == (4, 4 * 512, 4)

        # The adopted VMs answer actions as before.
        request(spine, at_rest.uuid, states.PAUSING, "pause_instance")
        assert wait_settled(at_rest.uuid, states.PAUSED).power_state == states.PAUSED_POWER
        request(spine, stopped.uuid, states.POWERING_ON, "start_instance")
        wait_settled(stopped.uuid, states.ACTIVE)


# -- guest heartbeats ----------------------------------------------------------


def test_guest_heartbeats_reach_the_instances(spine: Spine) -> None:
    with running_compute(spine, "compute-1"):
        instance = build_on(spine, "compute-1", new_instance())
        wait_for(lambda: fetch(instance.uuid).guest_status == "HEALTHY", "a HEALTHY heartbeat")
        request(spine, instance.uuid, states.POWERING_OFF, "stop_instance")
        wait_settled(instance.uuid, states.STOPPED)
        wait_for(lambda: fetch(instance.uuid).guest_status == "SHUTDOWN", "a SHUTDOWN heartbeat")
    assert fetch(instance.uuid).guest_status_at is not None


def test_a_guest_heartbeat_delivered_out_of_order_does_not_overwrite(spine: Spine) -> None:
    instance = new_instance()
    api = ComputeTaskAPI(spine.transport)
    newer = datetime.now(UTC).replace(microsecond=0)
    older = newer - timedelta(seconds=30)

    api.guest_heartbeat(ADMIN, instance.uuid, "SHUTDOWN", newer.isoformat())
    wait_for(lambda: fetch(instance.uuid).guest_status == "SHUTDOWN", "the newer heartbeat")
    dropped = spine.build_flow.stale_heartbeats
    # The older report arrives after the newer one: the conductor drops it.
    api.guest_heartbeat(ADMIN, instance.uuid, "HEALTHY", older.isoformat())
    wait_for(lambda: spine.build_flow.stale_heartbeats > dropped, "the late heartbeat dropped")
    stored = fetch(instance.uuid)
    assert stored.guest_status == "SHUTDOWN"
    assert stored.guest_status_at == newer


# -- the database block --------------------------------------------------------


class RecordingConductor:
    """Stands in for the conductor over the bus (which cannot share a process with
    the block); it checks, at each request, that the compute can no longer reach
    the database itself."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.calls: list[str] = []
        self.refused: list[str] = []

    def object_class_action_versions(
        self,
        context: RequestContext,
        objname: str,
        objmethod: str,
        object_versions: dict[str, str],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        self.calls.append(f"{objname}.{objmethod}")
        try:
            with Database(self.database_url).session():
                pass
        except DBNotAllowed as error:
            self.refused.append(str(error))
        if objname == "InstanceList":
            return InstanceList(context, objects=[])
        return ComputeNode(context, host=args[0], vcpus=4, memory_mb=8192, disk_gb=100)

    def object_action(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"unexpected object_action {args} {kwargs}")

    def object_backport_versions(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"unexpected object_backport_versions {args} {kwargs}")


def test_init_host_blocks_database_access_before_anything_else(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'compute.sqlite'}"
    conductor = RecordingConductor(url)
    with (
        get_transport(f"memory://block-{uuid.uuid4().hex}") as transport,
        indirection_api_set(conductor, CloudObject),
    ):
        manager = ComputeManager(transport, cloud_config(), "compute-9", FakeDriver())
        try:
            manager.init_host()
            with pytest.raises(DBNotAllowed, match="'podium-compute'"):
                Database(url).engine  # noqa: B018
        finally:
            allow_db_access()
    assert conductor.calls == [
        "ComputeNode.report",
        "InstanceList.get_by_host",
        "ComputeNode.reconcile_usage",
    ]
    # Refused at every one of them: the block came first.
    assert len(conductor.refused) == 3
    assert all("'podium-compute'" in message for message in conductor.refused)


def test_the_node_is_reported_every_interval(spine: Spine) -> None:
    with running_compute(spine, "compute-1"):
        node = ComputeNode.get_by_host(ADMIN, "compute-1")
        # Totals changed behind the compute's back are put right by its next report.
        cloud_db.compute_node_update(spine.database, ADMIN, node.id, {"vcpus": 1, "disk_gb": 2})
        wait_for(
            lambda: ComputeNode.get_by_host(ADMIN, "compute-1").vcpus == 4,
            "the periodic resource report",
        )
    assert ComputeNode.get_by_host(ADMIN, "compute-1").disk_gb == 100


def test_a_build_cast_to_a_host_that_does_not_hold_the_claim_is_dropped(
    spine: Spine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="podium.cloud.compute.manager")
    ComputeNode.report(ADMIN, "compute-1", 4, 8192, 100)
    driver = FakeDriver.from_config(spine.config)
    with running_compute(spine, "compute-2", driver):
        instance = new_instance()
        assert ComputeNode.claim(
            ADMIN, "compute-1", instance.uuid, spine.config.allocation_ratios()
        )
        # The message's copy says compute-2 (stale, or wrong): the database says compute-1.
        instance.refresh()
        instance.host = "compute-2"
        ComputeAPI(spine.transport).build_and_run_instance(ADMIN, "compute-2", instance, {})
        wait_for(
            lambda: "claimed by 'compute-1', not by compute-2; build dropped" in caplog.text,
            "the build dropped by compute-2",
        )
    stored = fetch(instance.uuid)
    assert (stored.vm_state, stored.task_state, stored.host) == (
        states.BUILDING,
        states.SCHEDULING,
        "compute-1",
    )
    assert driver.list_instances() == [] and driver.spawn_attempts == 0
