"""Builds that a lost message, a failed cast or a duplicate delivery must not lose or fail.

The RPC server acks a cast whose handler raised, so a build whose cast is lost
is gone unless the conductor notices. Each test breaks one hand-over (a cast
that raises once, a conductor gone after its claim, a duplicate on a second
conductor) and checks the instance still ends ACTIVE, or in ERROR with a fault
and nothing held: never building forever, never holding a claim it does not use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.cloud.conftest import Spine
from tests.cloud.instances import ADMIN, fetch, new_instance, usage, wait_settled
from tests.polling import wait_for

from podium.cloud import db as cloud_db
from podium.cloud import states
from podium.cloud.compute import FakeDriver, compute_service
from podium.cloud.compute.manager import ComputeManager
from podium.cloud.objects import ComputeNode, Instance
from podium.cloud.rpcapi import ComputeAPI, ComputeTaskAPI, SchedulerAPI
from podium.cloud.scheduler import scheduler_service
from podium.cloud.service import CloudService
from podium.exceptions import TransportError


def wait_fault(instance_uuid: str) -> Instance:
    """The instance in ERROR with its fault (written just before the state)."""
    wait_settled(instance_uuid, states.ERROR)
    return wait_for(
        lambda: (lambda i: i if i.fault else None)(fetch(instance_uuid)), "the instance's fault"
    )


@contextmanager
def computes(spine: Spine, *hosts: str) -> Iterator[dict[str, CloudService]]:
    # block_db=False: the conductor runs in this process, and the block is process-wide.
    services = {
        host: compute_service(
            spine.transport,
            spine.config,
            host,
            FakeDriver.from_config(spine.config),
            block_db=False,
        )
        for host in hosts
    }
    started: list[CloudService] = []
    try:
        for service in services.values():
            service.start()
            started.append(service)
        yield services
    finally:
        for service in started:
            service.stop()
        for service in started:
            service.wait()


def driver_of(service: CloudService) -> FakeDriver:
    manager = service.manager
    assert isinstance(manager, ComputeManager)
    return manager.driver


class FailingCasts:
    """Wraps a client method: the first ``failures`` calls raise TransportError, as a broker
    connection lost in the middle of a publish would; the calls are recorded either way."""

    def __init__(self, method: Callable[..., None], failures: int) -> None:
        self.method = method
        self.failures = failures
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append(args)
        if self.failures > 0:
            self.failures -= 1
            raise TransportError("connection lost while publishing (injected)")
        self.method(*args, **kwargs)


def backdate(spine: Spine, instance_uuid: str, seconds: float) -> None:
    """As if the instance had not been written for ``seconds``."""
    then = datetime.now(UTC) - timedelta(seconds=seconds)
    cloud_db.instance_update(spine.database, ADMIN, instance_uuid, {"updated_at": then})


# -- 1a: a claim whose cast was never sent ---------------------------------------


def test_a_claimed_build_still_scheduling_is_cast_again(spine: Spine) -> None:
    with computes(spine, "compute-1") as services:
        # A conductor claimed the host and died before its cast: the bus
        # redelivers build_instances to another conductor.
        instance = new_instance()
        assert ComputeNode.claim(
            ADMIN, "compute-1", instance.uuid, spine.config.allocation_ratios()
        )
        ComputeTaskAPI(spine.transport).build_instances(ADMIN, [instance], {})
        built = wait_settled(instance.uuid, states.ACTIVE)
        assert usage("compute-1") == (1, 512, 1)
    assert built.host == "compute-1"
    assert driver_of(services["compute-1"]).list_instances() == [instance.uuid]


# -- 1b: the cast to the compute fails -------------------------------------------


def test_a_failed_build_cast_gives_the_claim_back_and_tries_another_host(
    spine: Spine, monkeypatch: pytest.MonkeyPatch
) -> None:
    casts = FailingCasts(spine.build_flow.compute.build_and_run_instance, failures=1)
    monkeypatch.setattr(spine.build_flow.compute, "build_and_run_instance", casts)
    with (
        computes(spine, "compute-1", "compute-2") as services,
        scheduler_service(spine.transport, spine.config, "scheduler-1"),
    ):
        instance = new_instance()
        ComputeTaskAPI(spine.transport).build_instances(ADMIN, [instance], {})
        built = wait_settled(instance.uuid, states.ACTIVE)
        first, second = (call[1] for call in casts.calls)
        assert first != second
        assert usage(first) == (0, 0, 0)
        assert usage(second) == (1, 512, 1)
    assert built.host == second
    assert driver_of(services[first]).list_instances() == []
    assert driver_of(services[second]).list_instances() == [instance.uuid]
    retry_spec = casts.calls[1][3]
    assert retry_spec["ignore_hosts"] == [first] and retry_spec["num_attempts"] == 2


def test_build_casts_failing_everywhere_end_in_error_holding_nothing(
    spine: Spine, monkeypatch: pytest.MonkeyPatch
) -> None:
    casts = FailingCasts(spine.build_flow.compute.build_and_run_instance, failures=10)
    monkeypatch.setattr(spine.build_flow.compute, "build_and_run_instance", casts)
    with (
        computes(spine, "compute-1") as services,
        scheduler_service(spine.transport, spine.config, "scheduler-1"),
    ):
        instance = new_instance()
        ComputeTaskAPI(spine.transport).build_instances(ADMIN, [instance], {})
        failed = wait_fault(instance.uuid)
        assert usage("compute-1") == (0, 0, 0)
    # One host: its cast failed, then the retry had nowhere else to go.
    assert [call[1] for call in casts.calls] == ["compute-1"]
    assert failed.host is None
    assert failed.fault is not None and failed.fault.message.startswith("No valid host")
    assert driver_of(services["compute-1"]).list_instances() == []


# -- 1c: the compute cannot hand a failed build back ------------------------------


def test_a_reschedule_that_cannot_reach_the_conductor_ends_in_error(
    spine: Spine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with computes(spine, "compute-1") as services:
        manager = services["compute-1"].manager
        assert isinstance(manager, ComputeManager)
        manager.driver.fail_builds = True
        back = FailingCasts(manager.compute_task.build_instances, failures=1)
        monkeypatch.setattr(manager.compute_task, "build_instances", back)
        instance = new_instance()
        assert ComputeNode.claim(
            ADMIN, "compute-1", instance.uuid, spine.config.allocation_ratios()
        )
        instance.refresh()
        ComputeAPI(spine.transport).build_and_run_instance(ADMIN, "compute-1", instance, {})
        failed = wait_fault(instance.uuid)
        assert usage("compute-1") == (0, 0, 0)
    assert len(back.calls) == 1
    assert failed.host is None and failed.power_state == states.NOSTATE
    assert failed.fault is not None
    assert "could not be rescheduled: TransportError" in failed.fault.message
    assert "BuildFailed" in failed.fault.message
    assert failed.fault.host == "compute-1"
    assert manager.driver.list_instances() == []


# -- 1d: the conductor drives stuck builds again ----------------------------------


def test_builds_stuck_in_scheduling_are_driven_again(spine: Spine) -> None:
    flow = spine.build_flow
    [task] = [task for task in flow.periodic_tasks() if task.name.endswith("stuck-builds")]
    with (
        computes(spine, "compute-1") as services,
        scheduler_service(spine.transport, spine.config, "scheduler-1"),
    ):
        # Never handed to a conductor at all (its build_instances cast was lost).
        unscheduled = new_instance("unscheduled")
        # Claimed by a conductor that died before its cast.
        claimed = new_instance("claimed")
        assert ComputeNode.claim(ADMIN, "compute-1", claimed.uuid, spine.config.allocation_ratios())
        # Just created: its build may well be on its way; left alone.
        fresh = new_instance("fresh")
        for stuck in (unscheduled, claimed):
            backdate(spine, stuck.uuid, flow.build_timeout + 60)

        assert task.run_once()

        for stuck in (unscheduled, claimed):
            assert wait_settled(stuck.uuid, states.ACTIVE).host == "compute-1"
        assert usage("compute-1") == (2, 1024, 2)
        still = fetch(fresh.uuid)
        assert (still.task_state, still.host) == (states.SCHEDULING, None)
    assert set(driver_of(services["compute-1"]).list_instances()) == {
        unscheduled.uuid,
        claimed.uuid,
    }


def test_the_stuck_build_scan_counts_only_builds_older_than_the_timeout(
    spine: Spine, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow = spine.build_flow
    old = new_instance("old")
    new_instance("fresh")
    # A build that moved on is no business of the scan, however old.
    done = new_instance("done")
    done.task_state = None
    done.vm_state = states.ACTIVE
    done.save()
    for instance in (old, done):
        backdate(spine, instance.uuid, flow.build_timeout + 60)
    # No scheduler runs: the old one is scheduled, times out, and fails.
    monkeypatch.setattr(flow, "scheduler", SchedulerAPI(spine.transport, timeout=0.5))
    assert flow.redrive_stuck_builds() == 1
    failed = wait_fault(old.uuid)
    assert failed.fault is not None and "Scheduling failed" in failed.fault.message


# -- 3: a duplicate build on a second conductor ----------------------------------


def test_a_duplicate_build_that_loses_the_claim_race_casts_to_the_winner(
    spine: Spine, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow = spine.build_flow
    real_select = flow.scheduler.select_destinations
    instance = new_instance()

    def other_conductor_claims_first(ctxt: Any, spec: dict[str, Any]) -> Any:
        # This delivery read the instance without a host; before its own
        # scheduling, the other delivery's claim on compute-1 lands.
        assert ComputeNode.claim(
            ADMIN, "compute-1", instance.uuid, spine.config.allocation_ratios()
        )
        return real_select(ctxt, spec)

    monkeypatch.setattr(flow.scheduler, "select_destinations", other_conductor_claims_first)
    with (
        computes(spine, "compute-1", "compute-2") as services,
        scheduler_service(spine.transport, spine.config, "scheduler-1"),
    ):
        # compute-1 ignored: the scheduler can only try compute-2, where the
        # claim finds the instance already claimed.
        ComputeTaskAPI(spine.transport).build_instances(
            ADMIN, [instance], {"ignore_hosts": ["compute-1"]}
        )
        built = wait_settled(instance.uuid, states.ACTIVE)
        assert usage("compute-1") == (1, 512, 1)
        assert usage("compute-2") == (0, 0, 0)
    assert built.host == "compute-1" and built.fault is None
    assert driver_of(services["compute-1"]).list_instances() == [instance.uuid]
    assert driver_of(services["compute-2"]).list_instances() == []
