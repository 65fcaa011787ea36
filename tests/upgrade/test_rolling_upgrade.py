"""A rolling upgrade of the reference cloud, host by host, on RabbitMQ and PostgreSQL.

Release acacia (the one before this code's, kept beside this file) and
release birch (this code) side by side, in the documented order. An acacia
conductor and two acacia computes run on acacia's schema; the schema is
migrated to birch's under them (expand only) and they keep working; the
conductor is upgraded in place, then the scheduler and the API start at
birch, with a third compute at birch. Every step goes through the REST API
and must end without an error; then the acacia computes are restarted at
birch one at a time, and ``upgrade_levels = auto`` lifts the compute RPC cap
by itself once the last one reported in.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from tests.cloud.scenario import API_TOKENS, SETTLE_TIMEOUT, Api
from tests.conftest import RABBIT_URL, Servers
from tests.polling import wait_for
from tests.service_process import ServiceProcess

from podium import testing
from podium.cloud.releases import release_named
from podium.db import Database, migration

ROOT = Path(__file__).parents[2]
ACACIA_COMPUTE = "tests.upgrade.release_n1.compute"
ACACIA_COMMAND = "tests.upgrade.release_n1.run"
COMPUTES = ("compute-1", "compute-2", "compute-3")
OLD = ("compute-1", "compute-2")
REPORT_INTERVAL = 0.5
ACACIA_OBJECTS = release_named("acacia").objects


def _settings(transport_url: str) -> dict[str, str]:
    return {
        "PODIUM_TRANSPORT_URL": transport_url,
        "PODIUM_REPORT_INTERVAL": str(REPORT_INTERVAL),
        "PODIUM_SERVICE_DOWN_TIME": "5",
        "PODIUM_API_TOKENS": API_TOKENS,
        "PODIUM_API_LISTEN": "127.0.0.1:0",
        "PODIUM_API_RATE_LIMIT": "0",
        "PODIUM_RPC_TIMEOUT": "30",
        "PODIUM_LOG_LEVEL": "INFO",
        # What an operator leaves as it is: said here so the test reads as a deployment.
        "PODIUM_UPGRADE_LEVELS": "compute=auto,scheduler=auto,compute_task=auto",
        # The previous release's compute is imported from the test tree.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }


class SkewedCloud:
    """One process per service; each compute at the release asked."""

    def __init__(self, transport_url: str, database_url: str) -> None:
        self.transport_url = transport_url
        self.database_url = database_url
        self.env = _settings(transport_url)
        self.processes: dict[str, ServiceProcess] = {}
        self.logs: dict[str, list[str]] = {}
        self.release: dict[str, str] = {}
        self.api_url = ""

    def start_conductor(self, release: str) -> None:
        """``conductor-1`` at ``release``: the name of its process is ``conductor-<release>``."""
        argv = ["conductor", "--host", "conductor-1", "--database-url", self.database_url]
        module = ACACIA_COMMAND if release == "acacia" else "podium"
        self._start(f"conductor-{release}", argv, module)

    def stop(self, name: str) -> None:
        self.logs.setdefault(name, []).append(self.processes.pop(name).stop())

    def start_birch_workers(self) -> None:
        self._start("scheduler-1", ["scheduler", "--host", "scheduler-1"])
        self.api_url = self._start("api-1", ["api", "--host", "api-1"]).ready_value("url")

    def _start(self, name: str, argv: list[str], module: str = "podium") -> ServiceProcess:
        process = ServiceProcess(argv, env=self.env, module=module)
        self.processes[name] = process
        return process

    def start_compute(self, host: str, release: str) -> None:
        argv = ["--host", host] if release == "acacia" else ["compute", "--host", host]
        module = ACACIA_COMPUTE if release == "acacia" else "podium"
        process = self._start(host, argv, module)
        assert f"release={release}" in process.ready_line or release == "birch"
        self.release[host] = release

    def restart_compute(self, host: str, release: str) -> None:
        self.stop(host)
        self.start_compute(host, release)

    def log(self, name: str) -> str:
        return "".join(self.logs.get(name, [])) + self.processes[name].log()

    def stop_all(self) -> None:
        # Workers first, the conductor last: their goodbyes still reach it.
        for name in sorted(self.processes, key=lambda name: name.startswith("conductor")):
            self.stop(name)

    def all_logs(self) -> dict[str, str]:
        return {name: "".join(parts) for name, parts in self.logs.items()}


def _columns(database: Database) -> dict[str, dict[str, dict[str, Any]]]:
    with database.connection() as connection:
        inspector = sa.inspect(connection)
        return {
            table: {column["name"]: column for column in inspector.get_columns(table)}
            for table in inspector.get_table_names()
        }


def _check_expand_only(
    before: dict[str, dict[str, dict[str, Any]]], after: dict[str, dict[str, dict[str, Any]]]
) -> None:
    """Nothing the old code uses went, and what came needs no value from it."""
    for table, columns in before.items():
        assert table in after, f"the migration dropped {table}"
        kept = after[table]
        assert set(columns) <= set(kept), f"{table} lost {set(columns) - set(kept)}"
        for name in set(kept) - set(columns):
            # An old INSERT names only the columns it knows.
            assert kept[name]["nullable"] or kept[name]["default"] is not None, (table, name)
    assert "key_name" in after["instances"] and "description" in after["flavors"]


def _reports(database: Database, binary: str) -> dict[str, tuple[int, int]]:
    """host -> (version, report_count) of each live service of ``binary``."""
    query = sa.text(
        'SELECT host, version, report_count FROM services WHERE deleted = 0 AND "binary" = :b'
    )
    with database.connection() as connection:
        rows = connection.execute(query, {"b": binary})
        return {host: (version, count) for host, version, count in rows}


def _reports_grow(database: Database, hosts: tuple[str, ...], version: int) -> None:
    """Each host reports at ``version`` at least twice more from now on."""
    now = _reports(database, "podium-compute")

    def grown() -> bool:
        later = _reports(database, "podium-compute")
        return all(
            host in later and later[host][0] == version and later[host][1] >= now[host][1] + 2
            for host in hosts
        )

    wait_for(grown, f"{hosts} to report at version {version}", SETTLE_TIMEOUT)


def _acacia_instance_round_trip(transport_url: str) -> None:
    """Create, read and delete an instance on the acacia conductor, as acacia sends them."""
    from podium.cloud.objects import Instance
    from podium.conductor import CONDUCTOR_API_VERSION
    from podium.context import get_admin_context
    from podium.rpc import RPCClient, Target, get_transport

    admin = get_admin_context().to_dict()
    acacia = dict(ACACIA_OBJECTS)
    instance = Instance(
        get_admin_context(), uuid=str(uuid.uuid4()), display_name="acacia", vm_state="building"
    )
    with get_transport(transport_url) as transport:
        conductor = RPCClient(
            transport, Target(topic="conductor", version=CONDUCTOR_API_VERSION), timeout=30
        )
        sent = instance.obj_to_primitive(target_version=acacia["Instance"])
        updates, _ = conductor.call(
            admin, "object_action", objinst=sent, objmethod="create", args=[], kwargs={}
        )
        assert updates["id"] > 0
        read = conductor.call(
            admin,
            "object_class_action_versions",
            objname="Instance",
            objmethod="get_by_uuid",
            object_versions=acacia,
            args=[instance.uuid],
            kwargs={},
        )
        assert read["podium_object.version"] == "1.2"
        assert read["podium_object.data"]["display_name"] == "acacia"
        assert "key_name" not in read["podium_object.data"]
        conductor.call(
            admin, "object_action", objinst=read, objmethod="destroy", args=[], kwargs={}
        )


def _console(api: Api, server_id: str) -> httpx.Response:
    return api.user.post(
        f"/servers/{server_id}/action", json={"os-getConsoleOutput": {"length": 10}}
    )


def _lifecycle(api: Api, server_ids: list[str]) -> None:
    """Pause, unpause, stop, start, soft and hard reboot: each server at rest after each."""
    for body, status in (
        ({"pause": None}, "PAUSED"),
        ({"unpause": None}, "ACTIVE"),
        ({"os-stop": None}, "SHUTOFF"),
        ({"os-start": None}, "ACTIVE"),
        ({"reboot": {"type": "SOFT"}}, "ACTIVE"),
        ({"reboot": {"type": "HARD"}}, "ACTIVE"),
    ):
        for server_id in server_ids:
            api.act(server_id, body)
        settled = api.wait_status(server_ids, status)
        assert all(s["fault"] is None for s in settled.values()), settled


def _one_per_host(servers: dict[str, dict[str, Any]]) -> dict[str, str]:
    """host -> one of its servers."""
    return {server["host"]: server_id for server_id, server in sorted(servers.items())}


def _received(log: str, method: str) -> list[str]:
    return re.findall(rf"acacia received {method} (rpc=\S+ .*)", log)


@pytest.fixture
def cloud(rabbit_url: str, servers: Servers) -> Iterator[SkewedCloud]:
    # A vhost of its own: no message left by another test reaches these services.
    with testing.rabbit_vhost(RABBIT_URL) as transport_url:
        cloud = SkewedCloud(transport_url, servers.new_url("postgresql"))
        try:
            yield cloud
        finally:
            cloud.stop_all()


@pytest.mark.upgrade
@pytest.mark.rabbit
@pytest.mark.postgres
@pytest.mark.timeout(300)
def test_a_cloud_upgrades_host_by_host_without_an_error(cloud: SkewedCloud) -> None:
    database = Database(cloud.database_url)
    api: Api | None = None
    try:
        _acacia_runs_on_the_migrated_schema(cloud, database)
        _the_conductor_upgrades_in_place(cloud, database)
        cloud.start_birch_workers()
        cloud.start_compute("compute-3", "birch")
        api = Api(cloud.api_url)
        api.wait_computes(COMPUTES)
        _skewed_cloud_serves_every_host(cloud, api)
        survivors = _computes_upgrade_one_by_one(cloud, api)
        _the_cap_lifts_and_the_new_method_is_used(cloud, api, survivors)
    except BaseException:
        cloud.stop_all()
        for name, log in cloud.all_logs().items():
            print(f"===== {name} =====\n{log[-5000:]}")
        raise
    finally:
        if api is not None:
            api.close()
        database.dispose()
    cloud.stop_all()
    for name, log in cloud.all_logs().items():
        assert "Traceback" not in log, f"{name}:\n{log[-4000:]}"
        assert " ERROR " not in log, f"{name}:\n{log[-4000:]}"
        assert "rejected request" not in log, f"{name}:\n{log[-4000:]}"


def _acacia_runs_on_the_migrated_schema(cloud: SkewedCloud, database: Database) -> None:
    """Schema first: migrated under a running acacia conductor and computes, which go on."""
    migration.sync(database, revision="podium_0001")
    migration.sync(database, revision="cloud_0001")
    cloud.start_conductor("acacia")
    for host in OLD:
        cloud.start_compute(host, "acacia")
    _reports_grow(database, OLD, 1)
    before = _columns(database)
    migration.sync(database)
    assert migration.current_version(database)["cloud"] == "cloud_0002"
    _check_expand_only(before, _columns(database))
    # Acacia's statements on birch's tables: heartbeats and host reports...
    _reports_grow(database, OLD, 1)
    # ... and an instance written, read and deleted as acacia does it.
    _acacia_instance_round_trip(cloud.transport_url)


def _the_conductor_upgrades_in_place(cloud: SkewedCloud, database: Database) -> None:
    """Birch's conductor joins on the same host, then acacia's leaves: no gap for anyone."""
    cloud.start_conductor("birch")
    cloud.stop("conductor-acacia")
    conductors = wait_for(
        lambda: (lambda rows: rows if rows.get("conductor-1", (0,))[0] == 2 else None)(
            _reports(database, "podium-conductor")
        ),
        "the conductor to report at birch",
        SETTLE_TIMEOUT,
    )
    assert set(conductors) == {"conductor-1"}
    _reports_grow(database, OLD, 1)


def _skewed_cloud_serves_every_host(cloud: SkewedCloud, api: Api) -> None:
    ids = [_create(api, f"skew-{n}") for n in range(6)]
    built = api.wait_status(ids, "ACTIVE")
    assert {server["host"] for server in built.values()} == set(COMPUTES)
    per_host = _one_per_host(built)
    _lifecycle(api, list(per_host.values()))
    # Some compute runs acacia: the cap holds every compute at RPC 1.0, birch's too.
    for server_id in per_host.values():
        refused = _console(api, server_id)
        assert refused.status_code == 409, refused.text
        assert "some compute service runs an older release" in refused.text
    for host in OLD:
        log = cloud.log(host)
        builds = _received(log, "build_and_run_instance")
        assert builds, log[-3000:]
        # Sent at the old RPC version, the objects already backported to acacia's
        # versions by the sender (the release's manifest), the child flavor too.
        assert all(b.startswith("rpc=1.0 Instance=1.2 ") for b in builds), builds
        assert all("Flavor=1.0" in b for b in builds), builds
        reboots = _received(log, "reboot_instance")
        assert len(reboots) == 2 and all(r.startswith("rpc=1.0 ") for r in reboots), reboots
        # Every object came at a version acacia reads: none needed the conductor.
        assert "acacia backported" not in log, log[-3000:]
    for host in COMPUTES:
        api.delete(per_host[host])
    gone = set(per_host.values())
    wait_for(lambda: not gone & set(api.servers()), "one server per host deleted", SETTLE_TIMEOUT)


def _create(api: Api, name: str) -> str:
    response = api.user.post(
        "/servers", json={"server": {"name": name, "flavorRef": "1", "key_name": f"key-{name}"}}
    )
    assert response.status_code == 202, response.text
    return str(response.json()["server"]["id"])


def _computes_upgrade_one_by_one(cloud: SkewedCloud, api: Api) -> dict[str, dict[str, Any]]:
    for host in OLD:
        before = {i: s for i, s in api.servers().items() if s["host"] == host}
        assert before, f"{host} runs no server to keep"
        cloud.restart_compute(host, "birch")
        api.wait_computes(COMPUTES)
        after = api.wait_status(before, "ACTIVE")
        for server_id, server in before.items():
            kept = after[server_id]
            for key in ("status", "power_state", "host", "key_name", "flavor", "launched_at"):
                assert kept[key] == server[key], (host, key, server, kept)
        # New builds keep succeeding while the other old compute still runs.
        fresh = [_create(api, f"during-{host}-{n}") for n in range(3)]
        api.wait_status(fresh, "ACTIVE")
        if host != OLD[-1]:
            some = next(iter(after))
            assert _console(api, some).status_code == 409
    return api.servers()


def _the_cap_lifts_and_the_new_method_is_used(
    cloud: SkewedCloud, api: Api, servers: dict[str, dict[str, Any]]
) -> None:
    per_host = _one_per_host(servers)
    assert set(per_host) == set(COMPUTES), per_host

    def console_everywhere() -> dict[str, str] | None:
        answers = {host: _console(api, server_id) for host, server_id in per_host.items()}
        if any(answer.status_code == 409 for answer in answers.values()):
            return None
        return {host: answer.json()["output"] for host, answer in answers.items()}

    # No restart of the API: it reads the Service rows again within an interval.
    outputs = wait_for(console_everywhere, "the compute RPC cap to lift", SETTLE_TIMEOUT)
    for host, output in outputs.items():
        assert f"{per_host[host]} login:" in output, (host, output)
    assert "compute RPC: sending version 1.1 (release birch)" in cloud.log("api-1")
    assert "compute RPC: sending version 1.0 (release acacia)" in cloud.log("api-1")
    _lifecycle(api, list(per_host.values()))
    for server_id in api.servers():
        api.delete(server_id)
    wait_for(lambda: not api.servers(), "every server deleted", SETTLE_TIMEOUT)
