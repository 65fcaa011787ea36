"""The fake hypervisor on its own: power transitions, failure injection, concurrency."""

from __future__ import annotations

import threading
import time

import pytest
from tests.cloud.conftest import cloud_config

from podium.cloud import states
from podium.cloud.compute.driver import FakeDriver, HostResources, NoSuchVM
from podium.cloud.exceptions import BuildFailed, InstanceInvalidState


def test_resources_come_from_the_config() -> None:
    config = cloud_config(compute_vcpus=8, compute_memory_mb=4096, compute_disk_gb=40)
    driver = FakeDriver.from_config(config)
    assert driver.resources == HostResources(vcpus=8, memory_mb=4096, disk_gb=40)


def test_power_transitions_follow_the_hypervisor_rules() -> None:
    driver = FakeDriver()
    driver.spawn("vm-1")
    assert driver.get_power_state("vm-1") == states.RUNNING
    driver.pause("vm-1")
    assert driver.get_power_state("vm-1") == states.PAUSED_POWER
    with pytest.raises(InstanceInvalidState, match="cannot reboot"):
        driver.reboot("vm-1")
    with pytest.raises(InstanceInvalidState, match="cannot pause"):
        driver.pause("vm-1")
    driver.unpause("vm-1")
    driver.power_off("vm-1")
    assert driver.get_power_state("vm-1") == states.SHUTDOWN
    with pytest.raises(InstanceInvalidState, match="cannot unpause"):
        driver.unpause("vm-1")
    driver.reboot("vm-1")
    assert driver.get_power_state("vm-1") == states.RUNNING
    driver.power_off("vm-1")
    driver.power_on("vm-1")
    assert driver.get_power_state("vm-1") == states.RUNNING


def test_a_vm_the_host_does_not_have() -> None:
    driver = FakeDriver()
    assert driver.get_power_state("nowhere") == states.NOSTATE
    with pytest.raises(NoSuchVM):
        driver.pause("nowhere")
    driver.destroy("nowhere")  # already gone: nothing to do
    driver.spawn("vm-1")
    driver.destroy("vm-1")
    driver.destroy("vm-1")
    assert driver.list_instances() == []
    with pytest.raises(NoSuchVM):
        driver.power_on("vm-1")


def test_spawning_the_same_instance_twice_is_refused() -> None:
    driver = FakeDriver()
    driver.spawn("vm-1")
    with pytest.raises(BuildFailed, match="already exists"):
        driver.spawn("vm-1")
    assert driver.list_instances() == ["vm-1"]


def test_fail_next_builds_fails_that_many_and_leaves_nothing_behind() -> None:
    driver = FakeDriver()
    driver.fail_next_builds(2)
    for name in ("vm-1", "vm-2"):
        with pytest.raises(BuildFailed, match="told to fail"):
            driver.spawn(name)
    assert driver.list_instances() == []
    driver.spawn("vm-3")
    assert driver.list_instances() == ["vm-3"]
    assert driver.spawn_attempts == 3


def test_fail_builds_fails_every_build_until_switched_off() -> None:
    driver = FakeDriver(fail_builds=True)
    for name in ("vm-1", "vm-2", "vm-3"):
        with pytest.raises(BuildFailed):
            driver.spawn(name)
    driver.fail_builds = False
    driver.spawn("vm-4")
    assert driver.list_instances() == ["vm-4"]


def test_adopt_gives_a_restarted_agent_its_vms_back() -> None:
    driver = FakeDriver()
    driver.adopt("vm-1", states.SHUTDOWN)
    driver.spawn("vm-2")
    driver.adopt("vm-2", states.SHUTDOWN)  # one it already knows keeps its own state
    assert driver.get_power_state("vm-1") == states.SHUTDOWN
    assert driver.get_power_state("vm-2") == states.RUNNING
    driver.power_on("vm-1")
    assert sorted(driver.list_instances()) == ["vm-1", "vm-2"]


def test_spawn_waits_its_time_without_holding_up_other_instances() -> None:
    driver = FakeDriver(spawn_time=30.0)
    outcome: list[BaseException | None] = []
    started = time.monotonic()

    def slow_spawn() -> None:
        try:
            driver.spawn("slow")
        except BaseException as error:
            outcome.append(error)
        else:
            outcome.append(None)

    thread = threading.Thread(target=slow_spawn)
    thread.start()
    deadline = time.monotonic() + 10
    while driver.spawn_attempts == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    # While "slow" spawns, the host answers for everything else.
    driver.adopt("other", states.RUNNING)
    driver.pause("other")
    assert driver.list_instances() == ["other"]
    assert driver.get_power_state("slow") == states.NOSTATE
    # A destroy ends the wait at once: the spawn reports it was cut short.
    driver.destroy("slow")
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert time.monotonic() - started < 20
    [error] = outcome
    assert isinstance(error, BuildFailed) and "destroyed while it was spawning" in str(error)
    assert driver.list_instances() == ["other"]


def test_spawn_takes_its_spawn_time() -> None:
    driver = FakeDriver(spawn_time=0.2)
    started = time.monotonic()
    driver.spawn("vm-1")
    assert time.monotonic() - started >= 0.2
    assert driver.get_power_state("vm-1") == states.RUNNING


def test_concurrent_spawns_each_get_their_vm() -> None:
    driver = FakeDriver(spawn_time=0.05)
    threads = [threading.Thread(target=driver.spawn, args=(f"vm-{n}",)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(driver.list_instances()) == sorted(f"vm-{n}" for n in range(20))
    assert driver.spawn_attempts == 20


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="spawn_time"):
        FakeDriver(spawn_time=-1)
    with pytest.raises(ValueError, match="count"):
        FakeDriver().fail_next_builds(-1)
