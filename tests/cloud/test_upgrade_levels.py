"""Release skew inside one process: the releases table, ``upgrade_levels``, what a capped
client sends, and what a compute does with a request it cannot read."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from tests.cloud.conftest import Spine, cloud_config
from tests.cloud.instances import ADMIN, fetch, new_instance, wait_settled
from tests.polling import wait_for

from podium.cloud import states
from podium.cloud.compute import COMPUTE_BINARY, FakeDriver, compute_service
from podium.cloud.conductor import CONDUCTOR_BINARY
from podium.cloud.config import CloudConfig
from podium.cloud.exceptions import UpgradeInProgress
from podium.cloud.objects import CloudObject, ComputeNode, InstanceFault, Service
from podium.cloud.releases import (
    RELEASES,
    UnknownRelease,
    check_upgrade_levels,
    newest_release,
    release_for,
    release_named,
)
from podium.cloud.rpcapi import (
    BINARY_OF_TOPIC,
    COMPUTE_TASK_TOPIC,
    COMPUTE_TOPIC,
    SCHEDULER_TOPIC,
    ComputeAPI,
    ComputeTaskAPI,
    Pin,
    SchedulerAPI,
    VersionCap,
    sent_now,
)
from podium.cloud.scheduler import SCHEDULER_BINARY
from podium.cloud.service import SERVICE_VERSION
from podium.config import ConfigError
from podium.objects import VersionedObjectRegistry
from podium.rpc import NoOpSerializer, RPCClient, RPCDispatcher, RPCServer, Target

ACACIA = release_named("acacia")

# -- the releases table --------------------------------------------------------


def test_the_newest_release_is_what_this_code_runs() -> None:
    newest = newest_release()
    assert newest.service_version == SERVICE_VERSION
    assert newest.rpc == {
        COMPUTE_TOPIC: ComputeAPI.VERSION,
        SCHEDULER_TOPIC: SchedulerAPI.VERSION,
        COMPUTE_TASK_TOPIC: ComputeTaskAPI.VERSION,
    }
    registered = {
        name: classes[0].VERSION
        for name, classes in VersionedObjectRegistry.obj_classes().items()
        if classes[0].__module__ == "podium.cloud.objects"
    }
    assert dict(newest.objects) == registered


def test_releases_are_in_order_and_every_topic_has_its_binary() -> None:
    versions = [release.service_version for release in RELEASES]
    assert versions == sorted(set(versions))
    assert BINARY_OF_TOPIC == {
        COMPUTE_TOPIC: COMPUTE_BINARY,
        SCHEDULER_TOPIC: SCHEDULER_BINARY,
        COMPUTE_TASK_TOPIC: CONDUCTOR_BINARY,
    }
    assert release_for(0) is RELEASES[0]
    assert release_for(SERVICE_VERSION + 5) is newest_release()


@pytest.mark.parametrize(
    ("levels", "message"),
    [
        ({"computer": "auto"}, "no RPC API has the topic 'computer'"),
        ({"compute": "aspen"}, "no release is named 'aspen' (releases: acacia, birch)"),
        ({"compute": "2.0"}, "no release speaks compute 2.0"),
    ],
)
def test_an_unknown_topic_release_or_version_is_refused(
    levels: dict[str, str], message: str
) -> None:
    with pytest.raises(UnknownRelease, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_upgrade_levels(levels)


def test_the_setting_reads_from_a_table_a_variable_and_refuses_nonsense(tmp_path: Path) -> None:
    config_file = tmp_path / "podium.toml"
    config_file.write_text('[upgrade_levels]\ncompute = "acacia"\nscheduler = "auto"\n')
    loaded = CloudConfig.load(file=config_file, environ={})
    assert loaded.upgrade_levels == {"compute": "acacia", "scheduler": "auto"}
    from_env = CloudConfig.load(environ={"PODIUM_UPGRADE_LEVELS": "compute=1.0, scheduler=auto"})
    assert from_env.upgrade_levels == {"compute": "1.0", "scheduler": "auto"}
    assert CloudConfig.load(environ={}).upgrade_levels == {}
    with pytest.raises(ConfigError, match="'compute' is not KEY=VALUE"):
        CloudConfig.load(environ={"PODIUM_UPGRADE_LEVELS": "compute"})
    with pytest.raises(ConfigError, match="a level is auto, a version"):
        CloudConfig.load(environ={"PODIUM_UPGRADE_LEVELS": "compute=1.x"})


# -- VersionCap ----------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_pinned_level_never_reads_the_services() -> None:
    def unreachable(binary: str) -> int | None:
        raise AssertionError("a pinned level read the Service rows")

    by_name = VersionCap(COMPUTE_TOPIC, "acacia", minimum_version=unreachable)
    by_version = VersionCap(COMPUTE_TOPIC, "1.0", minimum_version=unreachable)
    newest = VersionCap(COMPUTE_TOPIC, "birch", minimum_version=unreachable)
    assert by_name.pin() == by_version.pin() == Pin("1.0", ACACIA)
    assert newest.pin() == Pin(None, None)


def test_auto_follows_the_oldest_live_service_once_per_interval() -> None:
    clock = _Clock()
    lowest: dict[str, int | None] = {COMPUTE_BINARY: 1}
    reads: list[str] = []

    def minimum_version(binary: str) -> int | None:
        reads.append(binary)
        return lowest[binary]

    cap = VersionCap(
        COMPUTE_TOPIC, refresh_interval=10.0, minimum_version=minimum_version, clock=clock
    )
    assert cap.pin() == Pin("1.0", ACACIA)
    lowest[COMPUTE_BINARY] = 2  # the last old compute reported in at the new version
    clock.now = 9.9
    assert cap.pin() == Pin("1.0", ACACIA)
    assert reads == [COMPUTE_BINARY]
    clock.now = 10.0
    assert cap.pin() == Pin(None, None)
    assert reads == [COMPUTE_BINARY] * 2
    lowest[COMPUTE_BINARY] = 1  # an old one came back
    clock.now = 20.0
    assert cap.pin() == Pin("1.0", ACACIA)
    lowest[COMPUTE_BINARY] = None  # no compute at all: nobody to be careful for
    clock.now = 30.0
    assert cap.pin() == Pin(None, None)


def test_auto_assumes_the_oldest_release_until_it_can_read_the_services() -> None:
    clock = _Clock()
    answers: list[Any] = [ConfigError("conductor away"), 2]

    def minimum_version(binary: str) -> int | None:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return int(answer)

    cap = VersionCap(COMPUTE_TOPIC, minimum_version=minimum_version, clock=clock)
    assert cap.pin() == Pin("1.0", ACACIA)
    clock.now = 10.0
    assert cap.pin() == Pin(None, None)


def test_auto_reads_the_service_rows_through_the_conductor(spine: Spine) -> None:
    for host, version in (("old-1", 1), ("new-1", 2)):
        Service.report(ADMIN, host, COMPUTE_BINARY, COMPUTE_TOPIC, version, sent_now())
    clock = _Clock()
    cap = VersionCap(COMPUTE_TOPIC, clock=clock)
    assert Service.get_minimum_version(ADMIN, COMPUTE_BINARY) == 1
    assert cap.pin() == Pin("1.0", ACACIA)
    Service.report(ADMIN, "old-1", COMPUTE_BINARY, COMPUTE_TOPIC, 2, sent_now())
    clock.now = cap.refresh_interval
    assert cap.pin() == Pin(None, None)
    assert Service.get_minimum_version(ADMIN, "podium-nothing") is None


# -- what a capped client sends ------------------------------------------------


class _Recorder:
    """A compute endpoint at 1.1 that keeps each request raw: its version, its arguments."""

    target = Target(version="1.1")

    def __init__(self) -> None:
        self.received: list[tuple[str, str, dict[str, Any]]] = []

    def _keep(self, method: str, version: str, kwargs: dict[str, Any]) -> None:
        self.received.append((method, version, kwargs))

    def reboot_instance(self, ctxt: Any, **kwargs: Any) -> None:
        self._keep("reboot_instance", _VERSION.pop(), kwargs)

    def build_and_run_instance(self, ctxt: Any, **kwargs: Any) -> None:
        self._keep("build_and_run_instance", _VERSION.pop(), kwargs)

    def get_console_output(self, ctxt: Any, **kwargs: Any) -> str:
        self._keep("get_console_output", _VERSION.pop(), kwargs)
        return "console\n"


_VERSION: list[str] = []


class _VersionKeeper(RPCDispatcher):
    def dispatch(self, message: dict[str, Any]) -> tuple[Any, Any]:
        _VERSION.append(str(message.get("version")))
        return super().dispatch(message)


@contextmanager
def _recording_host(spine: Spine, host: str) -> Iterator[_Recorder]:
    recorder = _Recorder()
    server = RPCServer(spine.transport, Target(topic=COMPUTE_TOPIC, server=host), [recorder])
    server.dispatcher = _VersionKeeper([recorder], NoOpSerializer())
    with server:
        yield recorder


def _instance_on(host: str) -> Any:
    instance = new_instance()
    instance.host = host
    instance.key_name = "my-key"
    instance.save()
    return fetch(instance.uuid)


def _data(primitive: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = primitive[CloudObject._obj_keys[3]]
    return data


def _version(primitive: dict[str, Any]) -> str:
    return str(primitive[CloudObject._obj_keys[2]])


def test_capped_at_the_old_release_a_client_sends_old_versions_and_old_objects(
    spine: Spine,
) -> None:
    config = cloud_config(upgrade_levels={COMPUTE_TOPIC: "acacia"})
    compute = ComputeAPI(spine.transport, config)
    with _recording_host(spine, "probe") as recorder:
        instance = _instance_on("probe")
        instance.flavor = None
        compute.reboot_instance(ADMIN, instance, "SOFT")
        compute.build_and_run_instance(ADMIN, "probe", instance, {})
        with pytest.raises(UpgradeInProgress, match="some compute service runs an older"):
            compute.get_console_output(ADMIN, instance)
        wait_for(lambda: len(recorder.received) == 2, "two requests")
    (reboot, reboot_version, reboot_args), (_build, build_version, build_args) = recorder.received
    assert (reboot, reboot_version) == ("reboot_instance", "1.0")
    assert "reboot_type" not in reboot_args
    assert build_version == "1.0"
    sent = build_args["instance"]
    assert _version(sent) == "1.2"
    assert "key_name" not in _data(sent)


def test_uncapped_a_client_sends_the_new_method_and_argument(spine: Spine) -> None:
    compute = ComputeAPI(spine.transport, cloud_config(upgrade_levels={COMPUTE_TOPIC: "birch"}))
    with _recording_host(spine, "probe") as recorder:
        instance = _instance_on("probe")
        compute.reboot_instance(ADMIN, instance, "SOFT")
        assert compute.get_console_output(ADMIN, instance, 5) == "console\n"
        wait_for(lambda: len(recorder.received) == 2, "two requests")
    received = {method: (version, args) for method, version, args in recorder.received}
    assert received["reboot_instance"][0] == "1.1"
    assert received["reboot_instance"][1]["reboot_type"] == "SOFT"
    assert received["get_console_output"][0] == "1.1"
    assert received["get_console_output"][1]["tail_length"] == 5
    assert _data(received["reboot_instance"][1]["instance"])["key_name"] == "my-key"


def test_the_manifest_backports_the_child_flavor_too(spine: Spine) -> None:
    from podium.cloud.objects import Flavor

    compute = ComputeAPI(spine.transport, cloud_config(upgrade_levels={COMPUTE_TOPIC: "1.0"}))
    with _recording_host(spine, "probe") as recorder:
        instance = _instance_on("probe")
        instance.flavor = Flavor.get_by_flavor_id(ADMIN, "1")
        instance.flavor.description = "the smallest"
        compute.build_and_run_instance(ADMIN, "probe", instance, {})
        wait_for(lambda: recorder.received, "the build")
    flavor = _data(recorder.received[0][2]["instance"])["flavor"]
    assert _version(flavor) == "1.0"
    assert "description" not in _data(flavor)


# -- a request this release cannot read ----------------------------------------


@contextmanager
def _compute(spine: Spine, host: str) -> Iterator[None]:
    service = compute_service(
        spine.transport, spine.config, host, FakeDriver.from_config(spine.config), block_db=False
    )
    with service:
        yield


def _claim(spine: Spine, host: str, instance_uuid: str) -> None:
    assert ComputeNode.claim(ADMIN, host, instance_uuid, spine.config.allocation_ratios())


def _raw_client(spine: Spine, host: str, version: str) -> RPCClient:
    return RPCClient(
        spine.transport, Target(topic=COMPUTE_TOPIC, server=host, version=version), timeout=10
    )


def test_an_object_nobody_can_backport_fails_the_build_with_its_reason_as_fault(
    spine: Spine, caplog: pytest.LogCaptureFixture
) -> None:
    with _compute(spine, "compute-1"):
        instance = new_instance()
        _claim(spine, "compute-1", instance.uuid)
        primitive = fetch(instance.uuid).obj_to_primitive()
        # From a release after this one: neither this compute nor the conductor knows 1.9.
        primitive[CloudObject._obj_keys[2]] = "1.9"
        with caplog.at_level(logging.ERROR, logger="podium.cloud.compute.manager"):
            _raw_client(spine, "compute-1", "1.0").cast(
                ADMIN.to_dict(), "build_and_run_instance", instance=primitive, request_spec={}
            )
            failed = wait_settled(instance.uuid, states.ERROR)
        fault = InstanceFault.get_latest_for_instance(ADMIN, instance.uuid)
        assert fault is not None
        assert fault.message.startswith(
            "compute compute-1 cannot handle build_and_run_instance: IncompatibleObjectVersion"
        )
        assert failed.fault is not None and failed.fault.message == fault.message
        assert any(
            instance.uuid in record.getMessage() and "the request fails" in record.getMessage()
            for record in caplog.records
        )
        # The compute goes on serving.
        after = new_instance()
        _claim(spine, "compute-1", after.uuid)
        ComputeAPI(spine.transport).build_and_run_instance(
            ADMIN, "compute-1", fetch(after.uuid), {}
        )
        wait_settled(after.uuid, states.ACTIVE)


def test_an_rpc_version_from_the_future_fails_the_action_and_frees_the_instance(
    spine: Spine,
) -> None:
    with _compute(spine, "compute-1"):
        instance = new_instance()
        _claim(spine, "compute-1", instance.uuid)
        ComputeAPI(spine.transport).build_and_run_instance(
            ADMIN, "compute-1", fetch(instance.uuid), {}
        )
        wait_settled(instance.uuid, states.ACTIVE)
        paused = fetch(instance.uuid)
        paused.task_state = states.PAUSING
        paused.save(expected_task_state=[None])
        _raw_client(spine, "compute-1", "1.7").cast(
            ADMIN.to_dict(), "pause_instance", instance=paused.obj_to_primitive()
        )
        settled = wait_settled(instance.uuid, states.ACTIVE)
        assert settled.power_state == states.RUNNING
        fault = InstanceFault.get_latest_for_instance(ADMIN, instance.uuid)
        assert fault is not None
        assert fault.message.startswith(
            "compute compute-1 cannot handle pause_instance: UnsupportedVersion"
        )
        assert "1.7" in fault.message


def test_heartbeats_carry_this_release_service_version(spine: Spine) -> None:
    with _compute(spine, f"compute-{uuid.uuid4().hex[:6]}"):
        assert Service.get_minimum_version(ADMIN, COMPUTE_BINARY) == SERVICE_VERSION
