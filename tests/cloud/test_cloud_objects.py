"""The cloud's objects through a real conductor: resources, heartbeats, faults, flavors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from tests.cloud.conftest import Spine

from podium.cloud import states
from podium.cloud.exceptions import InstanceInvalidState, UnexpectedTaskStateError
from podium.cloud.objects import (
    ComputeNode,
    ComputeNodeList,
    Flavor,
    FlavorList,
    Instance,
    InstanceFault,
    InstanceList,
    Service,
    ServiceList,
)
from podium.context import RequestContext
from podium.exceptions import NotFound, ObjectFieldError

RATIO_ONE = {"cpu": 1.0, "ram": 1.0, "disk": 1.0}


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _new_instance(ctx: RequestContext, flavorid: str = "1", **values: object) -> Instance:
    flavor = Flavor.get_by_flavor_id(ctx, flavorid)
    instance = Instance(
        ctx,
        uuid=str(uuid.uuid4()),
        project_id=ctx.project_id,
        user_id=ctx.user_id,
        flavor=flavor,
        vcpus=flavor.vcpus,
        memory_mb=flavor.memory_mb,
        root_gb=flavor.disk_gb,
        vm_state=states.BUILDING,
        task_state=states.SCHEDULING,
        **values,
    )
    instance.create()
    return instance


def test_default_flavors_are_there_and_an_instance_keeps_its_flavor(spine: Spine) -> None:
    ctx = spine.admin
    names = [flavor.name for flavor in FlavorList.get_all(ctx)]
    assert names == ["m1.tiny", "m1.small", "m1.medium", "m1.large", "m1.xlarge"]
    instance = _new_instance(ctx, "2")
    Flavor.get_by_flavor_id(ctx, "2").destroy()
    stored = Instance.get_by_uuid(ctx, instance.uuid)
    assert stored.flavor is not None
    assert (stored.flavor.name, stored.flavor.memory_mb) == ("m1.small", 2048)
    with pytest.raises(NotFound):
        Flavor.get_by_flavor_id(ctx, "2")


def test_a_claim_takes_room_and_a_destroy_gives_it_back(spine: Spine) -> None:
    ctx = spine.admin
    ComputeNode.report(ctx, "h1", vcpus=2, memory_mb=1024, disk_gb=2)
    first, second, third = (_new_instance(ctx) for _ in range(3))
    assert ComputeNode.claim(ctx, "h1", first.uuid, RATIO_ONE)
    assert ComputeNode.claim(ctx, "h1", second.uuid, RATIO_ONE)
    # m1.tiny is 512 MB: the third no longer fits at ratio 1.0, but does at 1.5.
    assert not ComputeNode.claim(ctx, "h1", third.uuid, RATIO_ONE)
    assert Instance.get_by_uuid(ctx, third.uuid).host is None
    assert ComputeNode.claim(ctx, "h1", third.uuid, {"cpu": 2.0, "ram": 1.5, "disk": 2.0})
    node = ComputeNode.get_by_host(ctx, "h1")
    assert (node.vcpus_used, node.memory_mb_used, node.disk_gb_used) == (3, 1536, 3)
    # A replayed claim for the same host is a success that takes nothing more.
    assert ComputeNode.claim(ctx, "h1", first.uuid, RATIO_ONE)
    assert ComputeNode.get_by_host(ctx, "h1").memory_mb_used == 1536
    for instance in (first, second, third):
        instance.refresh()
        instance.destroy()
        assert instance.deleted and instance.deleted_at is not None
    node = ComputeNode.get_by_host(ctx, "h1")
    assert (node.vcpus_used, node.memory_mb_used, node.disk_gb_used) == (0, 0, 0)


def test_a_claim_held_elsewhere_is_refused_until_released(spine: Spine) -> None:
    ctx = spine.admin
    for host in ("h1", "h2"):
        ComputeNode.report(ctx, host, vcpus=4, memory_mb=4096, disk_gb=10)
    instance = _new_instance(ctx)
    assert ComputeNode.claim(ctx, "h1", instance.uuid, RATIO_ONE)
    with pytest.raises(InstanceInvalidState):
        ComputeNode.claim(ctx, "h2", instance.uuid, RATIO_ONE)
    assert ComputeNode.release(ctx, "h1", instance.uuid)
    assert not ComputeNode.release(ctx, "h1", instance.uuid)  # idempotent
    assert ComputeNode.claim(ctx, "h2", instance.uuid, RATIO_ONE)
    used = {node.host: node.memory_mb_used for node in ComputeNodeList.get_all(ctx)}
    assert used == {"h1": 0, "h2": 512}


def test_a_report_changes_totals_only_and_reconcile_recounts_usage(spine: Spine) -> None:
    ctx = spine.admin
    ComputeNode.report(ctx, "h1", vcpus=4, memory_mb=4096, disk_gb=40)
    instance = _new_instance(ctx, "2")
    assert ComputeNode.claim(ctx, "h1", instance.uuid, RATIO_ONE)
    node = ComputeNode.report(ctx, "h1", vcpus=8, memory_mb=8192, disk_gb=80)
    assert (node.vcpus, node.memory_mb, node.memory_mb_used) == (8, 8192, 2048)
    with spine.database.connection() as connection:
        connection.exec_driver_sql("UPDATE compute_nodes SET memory_mb_used = 7")
    node = ComputeNode.reconcile_usage(ctx, "h1")
    assert (node.vcpus_used, node.memory_mb_used, node.disk_gb_used) == (1, 2048, 20)
    with pytest.raises(ObjectFieldError):
        ComputeNode.report(ctx, "h1", vcpus=-1, memory_mb=1, disk_gb=1)


def test_a_late_heartbeat_never_moves_a_service_back(spine: Spine) -> None:
    ctx = spine.admin
    now = datetime.now(UTC)
    newer = Service.report(ctx, "h1", "podium-compute", "compute", 1, _iso(now))
    assert newer.report_count == 1
    # Up is judged by when the conductor stored the report, by its own clock.
    assert newer.last_seen_up is not None and newer.last_seen_up >= now
    late = Service.report(ctx, "h1", "podium-compute", "compute", 1, _iso(now - timedelta(10)))
    assert (late.report_count, late.last_seen_up) == (1, newer.last_seen_up)
    again = Service.report(ctx, "h1", "podium-compute", "compute", 1, _iso(now + timedelta(1)))
    assert again.report_count == 2
    assert again.is_up(60.0, now=again.last_seen_up + timedelta(seconds=30))
    assert not again.is_up(60.0, now=again.last_seen_up + timedelta(days=2))
    # A sender whose clock ran a day ahead did not shut out the reports after it.
    later = _iso(datetime.now(UTC))
    assert Service.report(ctx, "h1", "podium-compute", "compute", 1, later).report_count == 3
    with pytest.raises(ObjectFieldError):
        Service.report(ctx, "h1", "podium-compute", "compute", 1, "yesterday")


def test_a_service_is_disabled_with_a_reason(spine: Spine) -> None:
    ctx = spine.admin
    Service.report(ctx, "h1", "podium-compute", "compute", 1, _iso(datetime.now(UTC)))
    Service.report(ctx, "s1", "podium-scheduler", "scheduler", 1, _iso(datetime.now(UTC)))
    service = Service.get_by_host_and_binary(ctx, "h1", "podium-compute")
    service.disabled, service.disabled_reason = True, "maintenance"
    service.save()
    stored = Service.get_by_id(ctx, service.id)
    assert (stored.disabled, stored.disabled_reason) == (True, "maintenance")
    assert [s.host for s in ServiceList.get_all(ctx, binary="podium-compute")] == ["h1"]
    # The conductor reports itself too, from its own heartbeat task.
    binaries = {s.binary for s in ServiceList.get_all(ctx)} - {"podium-conductor"}
    assert binaries == {"podium-compute", "podium-scheduler"}


def test_guest_status_keeps_the_newest_report(spine: Spine) -> None:
    ctx = spine.admin
    instance = _new_instance(ctx)
    now = datetime.now(UTC)
    assert Instance.record_guest_status(ctx, instance.uuid, "HEALTHY", _iso(now))
    assert not Instance.record_guest_status(
        ctx, instance.uuid, "BOOTING", _iso(now - timedelta(seconds=1))
    )
    stored = Instance.get_by_uuid(ctx, instance.uuid)
    assert (stored.guest_status, stored.guest_status_at) == ("HEALTHY", now)
    instance.destroy()
    with pytest.raises(NotFound):
        Instance.record_guest_status(ctx, instance.uuid, "HEALTHY", _iso(now + timedelta(1)))


def test_an_instance_in_error_carries_its_latest_fault(spine: Spine) -> None:
    ctx = spine.admin
    instance = _new_instance(ctx)
    for message in ("first", "x" * 300):
        InstanceFault(ctx, instance_uuid=instance.uuid, code=500, message=message).create()
    instance.vm_state, instance.task_state = states.ERROR, None
    instance.save(expected_task_state=states.SCHEDULING)
    assert instance.fault is not None
    assert instance.fault.message == "x" * 252 + "..."
    assert instance.fault.details == "x" * 300
    [listed] = InstanceList.get_all(ctx, filters={"uuid": instance.uuid})
    assert listed.fault is not None and listed.fault.id == instance.fault.id
    with pytest.raises(UnexpectedTaskStateError):
        instance.task_state = states.SPAWNING
        instance.save(expected_task_state=states.SCHEDULING)


def test_listing_pages_sorts_and_hides_the_deleted(spine: Spine) -> None:
    ctx = RequestContext(user_id="u", project_id="p1")
    created = [_new_instance(ctx, display_name=f"vm-{n}") for n in range(5)]
    created[0].destroy()
    page = InstanceList.get_all(ctx, sort_key="display_name", sort_dir="desc", limit=2)
    assert [i.display_name for i in page] == ["vm-4", "vm-3"]
    rest = InstanceList.get_all(ctx, sort_key="display_name", sort_dir="desc", marker=page[-1].uuid)
    assert [i.display_name for i in rest] == ["vm-2", "vm-1"]
    everything = InstanceList.get_all(ctx.elevated(read_deleted="yes"))
    assert len(everything) == 5
    only = InstanceList.get_all(ctx.elevated(read_deleted="only"))
    assert [i.uuid for i in only] == [created[0].uuid]
    assert only[0].deleted and only[0].vm_state == states.BUILDING


def test_older_peers_get_instances_without_the_new_fields(spine: Spine) -> None:
    ctx = spine.admin
    instance = _new_instance(ctx)
    data = instance.obj_to_primitive(target_version="1.1")["podium_object.data"]
    assert "flavor" not in data and "guest_status" not in data and "node" in data
    old = instance.obj_to_primitive(target_version="1.0")["podium_object.data"]
    assert "node" not in old
    listed = InstanceList.get_all(ctx).obj_to_primitive(target_version="1.1")
    [item] = listed["podium_object.data"]["objects"]
    assert item["podium_object.version"] == "1.1"


@pytest.mark.parametrize("sort_dir", ["asc", "desc"])
def test_paging_walks_every_instance_once_even_through_null_sort_values(
    spine: Spine, sort_dir: str
) -> None:
    ctx = RequestContext(user_id="u", project_id="p1")
    for name in (None, "b", None, "a", "b", None):
        _new_instance(ctx, display_name=name)
    whole = InstanceList.get_all(ctx, sort_key="display_name", sort_dir=sort_dir)
    names = [i.display_name for i in whole]
    nulls_at = [None] * 3
    assert names == (
        [*nulls_at, "a", "b", "b"] if sort_dir == "asc" else ["b", "b", "a", *nulls_at]
    )
    walked: list[str] = []
    marker = None
    while True:
        page = InstanceList.get_all(
            ctx, sort_key="display_name", sort_dir=sort_dir, limit=2, marker=marker
        )
        if not page:
            break
        walked.extend(i.uuid for i in page)
        marker = page[-1].uuid
    assert walked == [i.uuid for i in whole]


def test_a_compare_and_swap_has_one_winner_even_when_both_write_the_same(spine: Spine) -> None:
    ctx = spine.admin
    instance = _new_instance(ctx)
    first, second = (Instance.get_by_uuid(ctx, instance.uuid) for _ in range(2))
    for builder in (first, second):
        builder.task_state = states.SPAWNING
    first.save(expected_task_state=states.SCHEDULING)
    # The row now holds what the second asks, but the second did not win the swap.
    with pytest.raises(UnexpectedTaskStateError):
        second.save(expected_task_state=states.SCHEDULING)


def test_a_compare_and_swap_on_vm_state(spine: Spine) -> None:
    ctx = spine.admin
    instance = _new_instance(ctx)
    instance.vm_state, instance.task_state = states.STOPPED, None
    instance.save()
    instance.task_state = states.REBOOTING
    with pytest.raises(UnexpectedTaskStateError, match="vm_state in \\['active'\\]"):
        instance.save(expected_task_state=[None], expected_vm_state=[states.ACTIVE])
    assert Instance.get_by_uuid(ctx, instance.uuid).task_state is None
    instance.save(expected_task_state=[None], expected_vm_state=[states.ACTIVE, states.STOPPED])
    assert Instance.get_by_uuid(ctx, instance.uuid).task_state == states.REBOOTING
