"""The scheduler's filters, weigher and claims, on real objects through the spine's conductor."""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.cloud.conftest import Spine, cloud_config

from podium.cloud import states
from podium.cloud.exceptions import NoValidHost
from podium.cloud.objects import ComputeNode, Instance, Service
from podium.cloud.scheduler import COMPUTE_BINARY, SchedulerManager
from podium.cloud.scheduler.filters import FlavorSpec, HostState, RamWeigher
from podium.context import RequestContext

TINY = {"vcpus": 1, "memory_mb": 512, "disk_gb": 1}


def scheduler(**overrides: Any) -> SchedulerManager:
    """A scheduler whose hosts stay up for the test's length, at ratio 1.0 unless told."""
    values: dict[str, Any] = {
        "service_down_time": 300.0,
        "cpu_allocation_ratio": 1.0,
        "ram_allocation_ratio": 1.0,
        "disk_allocation_ratio": 1.0,
    }
    values.update(overrides)
    return SchedulerManager(cloud_config(**values), rng=random.Random(1234))


def add_host(
    ctxt: RequestContext,
    host: str,
    vcpus: int = 8,
    memory_mb: int = 8192,
    disk_gb: int = 100,
    *,
    last_seen_up: datetime | None = None,
    service: bool = True,
) -> None:
    ComputeNode.report(ctxt, host, vcpus, memory_mb, disk_gb)
    if service:
        reported = Service.report(
            ctxt, host, COMPUTE_BINARY, "compute", 1, datetime.now(UTC).isoformat()
        )
        if last_seen_up is not None:
            # As if its last report had been stored then (the conductor's clock
            # stamps it when stored: a report cannot be made old by its sender).
            reported.last_seen_up = last_seen_up
            reported.save()


def new_instance(ctxt: RequestContext, flavor: dict[str, int] = TINY) -> str:
    instance = Instance(
        ctxt,
        uuid=str(uuid.uuid4()),
        vcpus=flavor["vcpus"],
        memory_mb=flavor["memory_mb"],
        root_gb=flavor["disk_gb"],
        vm_state=states.BUILDING,
        task_state=states.SCHEDULING,
    )
    instance.create()
    return str(instance.uuid)


def request(
    uuids: Sequence[str], flavor: dict[str, int] = TINY, ignore_hosts: Sequence[str] = ()
) -> dict[str, Any]:
    return {
        "instance_uuids": list(uuids),
        "flavor": dict(flavor),
        "ignore_hosts": list(ignore_hosts),
        "num_attempts": 1,
    }


def place(
    manager: SchedulerManager,
    ctxt: RequestContext,
    flavor: dict[str, int] = TINY,
    ignore_hosts: Sequence[str] = (),
) -> str:
    """Schedule one new instance of ``flavor``; the host it was claimed on."""
    spec = request([new_instance(ctxt, flavor)], flavor, ignore_hosts)
    [destination] = manager.select_destinations(ctxt, spec)
    return destination["host"]


def usage(ctxt: RequestContext, host: str) -> tuple[int, int, int]:
    node = ComputeNode.get_by_host(ctxt, host)
    return node.vcpus_used, node.memory_mb_used, node.disk_gb_used


def test_the_chosen_host_is_claimed_for_the_instance(spine: Spine) -> None:
    ctxt = spine.admin
    add_host(ctxt, "h1")
    instance_uuid = new_instance(ctxt)

    destinations = scheduler().select_destinations(ctxt, request([instance_uuid]))

    assert destinations == [{"host": "h1", "node": "h1"}]
    assert usage(ctxt, "h1") == (1, 512, 1)
    stored = Instance.get_by_uuid(ctxt, instance_uuid)
    assert (stored.host, stored.node) == ("h1", "h1")


@pytest.mark.parametrize("short_of", ["vcpus", "memory_mb", "disk_gb"])
def test_resource_filters_keep_hosts_without_room_out(spine: Spine, short_of: str) -> None:
    ctxt = spine.admin
    flavor = {"vcpus": 2, "memory_mb": 1024, "disk_gb": 10}
    # One unit less than the flavor of one resource; plenty of the others (and
    # the most free RAM where RAM is not the point, so the weigher would pick it).
    small = {"vcpus": 16, "memory_mb": 65536, "disk_gb": 1000, short_of: flavor[short_of] - 1}
    add_host(ctxt, "small", small["vcpus"], small["memory_mb"], small["disk_gb"])
    add_host(ctxt, "exact", flavor["vcpus"], flavor["memory_mb"], flavor["disk_gb"])
    manager = scheduler()

    assert place(manager, ctxt, flavor) == "exact"  # used + wanted == total fits

    with pytest.raises(NoValidHost) as raised:
        place(manager, ctxt, flavor)
    # "exact" is now full in every resource, so the first resource filter
    # removes it; "small" falls to its own filter only if it got that far.
    message = str(raised.value)
    removed = {
        "VCPUFilter": 2 if short_of == "vcpus" else 1,
        "RamFilter": 1 if short_of == "memory_mb" else 0,
        "DiskFilter": 1 if short_of == "disk_gb" else 0,
    }
    for filter_name, count in removed.items():
        assert f"{filter_name} removed {count}" in message


def test_allocation_ratios_let_a_host_take_more_than_its_size(spine: Spine) -> None:
    ctxt = spine.admin
    add_host(ctxt, "h1", vcpus=2, memory_mb=1024, disk_gb=10)
    manager = scheduler(cpu_allocation_ratio=2.0, ram_allocation_ratio=2.0)

    placed = [place(manager, ctxt) for _ in range(4)]

    assert placed == ["h1"] * 4
    assert usage(ctxt, "h1") == (4, 2048, 4)
    with pytest.raises(NoValidHost, match="VCPUFilter removed 1"):
        place(manager, ctxt)
    assert usage(ctxt, "h1") == (4, 2048, 4)


def test_the_weigher_prefers_the_most_free_ram(spine: Spine) -> None:
    ctxt = spine.admin
    add_host(ctxt, "small", memory_mb=2048)
    add_host(ctxt, "large", memory_mb=4096)
    add_host(ctxt, "medium", memory_mb=3072)
    manager = scheduler()
    flavor = {"vcpus": 1, "memory_mb": 1024, "disk_gb": 1}

    # Free RAM (large, medium, small): 4096/3072/2048 -> 3072/3072/2048 (a tie,
    # either first) -> ... each pick takes the most free RAM left.
    first = place(manager, ctxt, flavor)
    second_third = {place(manager, ctxt, flavor), place(manager, ctxt, flavor)}
    assert first == "large"
    assert second_third == {"large", "medium"}
    assert [usage(ctxt, host)[1] for host in ("small", "medium", "large")] == [0, 1024, 2048]


def test_the_ram_weigher_counts_free_ram_under_the_ratio(spine: Spine) -> None:
    ctxt = spine.admin
    add_host(ctxt, "h1", memory_mb=1000)
    node = ComputeNode.get_by_host(ctxt, "h1")
    state = HostState(
        node=node, service=None, ratios={"ram": 1.5}, now=datetime.now(UTC), service_down_time=60
    )
    assert RamWeigher().weigh(state, {}) == 1500.0
    state.consume(FlavorSpec(vcpus=0, memory_mb=600, disk_gb=0))
    assert RamWeigher().weigh(state, {}) == 900.0


def test_equal_hosts_are_chosen_in_random_order(spine: Spine) -> None:
    ctxt = spine.admin
    for host in ("h1", "h2", "h3"):
        add_host(ctxt, host)
    manager = scheduler()
    chosen = []
    for _ in range(30):
        instance_uuid = new_instance(ctxt)
        [destination] = manager.select_destinations(ctxt, request([instance_uuid]))
        chosen.append(destination["host"])
        # Give it back so the hosts stay equal: every pick is a three-way tie.
        assert ComputeNode.release(ctxt, destination["host"], instance_uuid)
    # Always the same host would send concurrent schedulers into the same claims.
    assert set(chosen) == {"h1", "h2", "h3"}


def test_ignore_hosts_excludes_the_hosts_a_build_failed_on(spine: Spine) -> None:
    ctxt = spine.admin
    add_host(ctxt, "big", memory_mb=16384)
    add_host(ctxt, "little", memory_mb=4096)
    manager = scheduler()

    assert place(manager, ctxt, ignore_hosts=["big"]) == "little"
    with pytest.raises(NoValidHost, match="IgnoreHostsFilter removed 2"):
        place(manager, ctxt, ignore_hosts=["big", "little"])


def test_down_hosts_are_excluded(spine: Spine) -> None:
    ctxt = spine.admin
    stale = datetime.now(UTC) - timedelta(seconds=301)
    add_host(ctxt, "down", memory_mb=16384, last_seen_up=stale)
    add_host(ctxt, "never-reported", memory_mb=16384, service=False)
    add_host(ctxt, "up", memory_mb=4096)
    manager = scheduler()

    assert {place(manager, ctxt) for _ in range(3)} == {"up"}

    forced = Service.get_by_host_and_binary(ctxt, "up", COMPUTE_BINARY)
    forced.forced_down = True
    forced.save()
    with pytest.raises(NoValidHost, match="ServiceUpFilter removed 3"):
        place(manager, ctxt)


def test_disabled_hosts_are_excluded(spine: Spine) -> None:
    ctxt = spine.admin
    add_host(ctxt, "disabled", memory_mb=16384)
    add_host(ctxt, "enabled", memory_mb=4096)
    service = Service.get_by_host_and_binary(ctxt, "disabled", COMPUTE_BINARY)
    service.disabled = True
    service.disabled_reason = "maintenance"
    service.save()
    manager = scheduler()

    assert {place(manager, ctxt) for _ in range(3)} == {"enabled"}
    assert usage(ctxt, "disabled") == (0, 0, 0)


def test_no_valid_host_says_what_each_filter_removed(spine: Spine) -> None:
    ctxt = spine.admin
    add_host(ctxt, "disabled")
    add_host(ctxt, "down", last_seen_up=datetime.now(UTC) - timedelta(hours=1))
    add_host(ctxt, "ignored")
    add_host(ctxt, "tiny", memory_mb=256)
    service = Service.get_by_host_and_binary(ctxt, "disabled", COMPUTE_BINARY)
    service.disabled = True
    service.save()
    instance_uuid = new_instance(ctxt)

    with pytest.raises(NoValidHost) as raised:
        scheduler().select_destinations(ctxt, request([instance_uuid], ignore_hosts=["ignored"]))

    assert str(raised.value) == (
        f"There are not enough hosts available for instance {instance_uuid} (4 compute hosts). "
        "Filters: ServiceEnabledFilter removed 1, ServiceUpFilter removed 1, "
        "IgnoreHostsFilter removed 1, VCPUFilter removed 0, RamFilter removed 1, "
        "DiskFilter removed 0."
    )
    assert Instance.get_by_uuid(ctxt, instance_uuid).host is None


def lose_claims_on(host: str, manager: SchedulerManager, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another scheduler fills ``host`` between this one's read of the hosts and its claim."""
    read_hosts = manager._host_states

    def snapshot_then_lose(ctxt: RequestContext) -> list[HostState]:
        hosts = read_hosts(ctxt)
        assert ComputeNode.claim(ctxt, host, new_instance(ctxt), {"cpu": 1.0})
        return hosts

    monkeypatch.setattr(manager, "_host_states", snapshot_then_lose)


def test_a_claim_lost_to_another_scheduler_moves_on_to_the_next_host(
    spine: Spine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctxt = spine.admin
    add_host(ctxt, "best", vcpus=1, memory_mb=8192)
    add_host(ctxt, "next", vcpus=1, memory_mb=4096)
    manager = scheduler()
    lose_claims_on("best", manager, monkeypatch)

    assert place(manager, ctxt) == "next"
    assert usage(ctxt, "best") == (1, 512, 1)  # the other scheduler's instance only
    assert usage(ctxt, "next") == (1, 512, 1)


def test_no_valid_host_names_the_hosts_whose_claims_were_lost(
    spine: Spine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctxt = spine.admin
    add_host(ctxt, "only", vcpus=1)
    manager = scheduler()
    lose_claims_on("only", manager, monkeypatch)

    with pytest.raises(NoValidHost) as raised:
        place(manager, ctxt)

    assert "VCPUFilter removed 0" in str(raised.value)
    assert str(raised.value).endswith(
        "Claims failed on 1 host(s) filled by concurrent requests: only."
    )


def test_a_request_for_several_instances_is_all_or_nothing(spine: Spine) -> None:
    ctxt = spine.admin
    add_host(ctxt, "h1", vcpus=2)
    add_host(ctxt, "h2", vcpus=1)
    manager = scheduler()

    uuids = [new_instance(ctxt) for _ in range(3)]
    placed = manager.select_destinations(ctxt, request(uuids))
    assert sorted(d["host"] for d in placed) == ["h1", "h1", "h2"]
    assert [Instance.get_by_uuid(ctxt, u).host for u in uuids] == [d["host"] for d in placed]

    for u, destination in zip(uuids, placed, strict=True):
        ComputeNode.release(ctxt, destination["host"], u)
    too_many = [new_instance(ctxt) for _ in range(4)]
    with pytest.raises(NoValidHost, match=f"instance {too_many[3]} "):
        manager.select_destinations(ctxt, request(too_many))
    # The three that found a host gave their claims back.
    assert [Instance.get_by_uuid(ctxt, u).host for u in too_many] == [None] * 4
    assert usage(ctxt, "h1") == usage(ctxt, "h2") == (0, 0, 0)


# -- duplicate requests ----------------------------------------------------------


def test_an_instance_claimed_elsewhere_by_a_duplicate_request_keeps_its_host(
    spine: Spine,
) -> None:
    ctxt = spine.admin
    add_host(ctxt, "first")
    add_host(ctxt, "other")
    instance_uuid = new_instance(ctxt)
    # The first delivery of the build claimed "first"; the duplicate's
    # scheduler may only try "other", where the claim meets the first one's.
    assert ComputeNode.claim(ctxt, "first", instance_uuid, {"cpu": 1.0})

    destinations = scheduler().select_destinations(
        ctxt, request([instance_uuid], ignore_hosts=["first"])
    )

    assert destinations == [{"host": "first", "node": "first"}]
    assert Instance.get_by_uuid(ctxt, instance_uuid).host == "first"
    assert usage(ctxt, "first") == (1, 512, 1)
    assert usage(ctxt, "other") == (0, 0, 0)


def test_a_duplicate_request_whose_claim_filled_the_only_host_finds_it(spine: Spine) -> None:
    ctxt = spine.admin
    add_host(ctxt, "exact", vcpus=1)
    instance_uuid = new_instance(ctxt)
    manager = scheduler()
    first = manager.select_destinations(ctxt, request([instance_uuid]))

    # The host is full of this very instance: the filters remove it.
    assert manager.select_destinations(ctxt, request([instance_uuid])) == first
    assert usage(ctxt, "exact") == (1, 512, 1)


def test_an_all_or_nothing_failure_keeps_a_claim_that_was_not_its_own(spine: Spine) -> None:
    ctxt = spine.admin
    add_host(ctxt, "h1", vcpus=1)
    placed_before = new_instance(ctxt)
    assert ComputeNode.claim(ctxt, "h1", placed_before, {"cpu": 1.0})
    homeless = new_instance(ctxt)

    with pytest.raises(NoValidHost, match=f"instance {homeless} "):
        scheduler().select_destinations(ctxt, request([placed_before, homeless]))

    # The claim made by another request stands.
    assert Instance.get_by_uuid(ctxt, placed_before).host == "h1"
    assert usage(ctxt, "h1") == (1, 512, 1)
