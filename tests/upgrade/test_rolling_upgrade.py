"""A rolling upgrade of the reference cloud, host by host, on RabbitMQ and PostgreSQL.

Release acacia (the one before this code's; its compute lives beside this
file) and release birch (this code) side by side: the schema is migrated
first (expand only), the conductor, the scheduler and the API run birch,
two computes run acacia and one birch. Every step goes through the REST API
and must end without an error; then the acacia computes are restarted at
birch one at a time, and ``upgrade_levels = auto`` lifts the compute RPC cap
by itself once the last one reported in.
"""

from __future__ import annotations

import os
import re
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
from podium.db import Database, migration

ROOT = Path(__file__).parents[2]
ACACIA_COMPUTE = "tests.upgrade.release_n1.compute"
COMPUTES = ("compute-1", "compute-2", "compute-3")
OLD = ("compute-1", "compute-2")
REPORT_INTERVAL = 0.5


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
        self.env = _settings(transport_url)
        self.processes: dict[str, ServiceProcess] = {}
        self.logs: dict[str, list[str]] = {}
        self.release: dict[str, str] = {}
        self._start(
            "conductor-1", ["conductor", "--host", "conductor-1", "--database-url", database_url]
        )
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
        self.logs.setdefault(host, []).append(self.processes.pop(host).stop())
        self.start_compute(host, release)

    def log(self, name: str) -> str:
        return "".join(self.logs.get(name, [])) + self.processes[name].log()

    def stop(self) -> None:
        # Workers first, the conductor last: their goodbyes still reach it.
        for name in sorted(self.processes, key=lambda name: name.startswith("conductor")):
            self.logs.setdefault(name, []).append(self.processes[name].stop())
        self.processes.clear()

    def all_logs(self) -> dict[str, str]:
        return {name: "".join(parts) for name, parts in self.logs.items()}


def _columns(database: Database) -> dict[str, dict[str, dict[str, Any]]]:
    with database.connection() as connection:
        inspector = sa.inspect(connection)
        return {
            table: {column["name"]: column for column in inspector.get_columns(table)}
            for table in inspector.get_table_names()
        }


def _migrate_expand_only(database: Database) -> None:
    """The previous release's schema, then this one's: nothing the old code uses may go."""
    migration.sync(database, revision="cloud_0001")
    before = _columns(database)
    migration.sync(database)
    after = _columns(database)
    assert migration.current_version(database)["cloud"] == "cloud_0002"
    for table, columns in before.items():
        assert table in after, f"the migration dropped {table}"
        kept = after[table]
        assert set(columns) <= set(kept), f"{table} lost {set(columns) - set(kept)}"
        for name in set(kept) - set(columns):
            # An old INSERT names only the columns it knows.
            assert kept[name]["nullable"] or kept[name]["default"] is not None, (table, name)
    assert "key_name" in after["instances"] and "description" in after["flavors"]


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
    database_url = servers.new_url("postgresql")
    database = Database(database_url)
    # A vhost of its own: no message left by another test reaches these services.
    with testing.rabbit_vhost(RABBIT_URL) as transport_url:
        try:
            _migrate_expand_only(database)
            cloud = SkewedCloud(transport_url, database_url)
        finally:
            database.dispose()
        try:
            yield cloud
        finally:
            cloud.stop()


@pytest.mark.rabbit
@pytest.mark.postgres
@pytest.mark.timeout(300)
def test_a_cloud_upgrades_host_by_host_without_an_error(cloud: SkewedCloud) -> None:
    for host in OLD:
        cloud.start_compute(host, "acacia")
    cloud.start_compute("compute-3", "birch")
    api = Api(cloud.api_url)
    try:
        api.wait_computes(COMPUTES)
        _skewed_cloud_serves_every_host(cloud, api)
        survivors = _computes_upgrade_one_by_one(cloud, api)
        _the_cap_lifts_and_the_new_method_is_used(cloud, api, survivors)
    except BaseException:
        cloud.stop()
        for name, log in cloud.all_logs().items():
            print(f"===== {name} =====\n{log[-5000:]}")
        raise
    finally:
        api.close()
    cloud.stop()
    for name, log in cloud.all_logs().items():
        assert "Traceback" not in log, f"{name}:\n{log[-4000:]}"
        assert " ERROR " not in log, f"{name}:\n{log[-4000:]}"
        assert "rejected request" not in log, f"{name}:\n{log[-4000:]}"


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
