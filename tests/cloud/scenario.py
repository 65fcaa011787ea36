"""The reference cloud's end-to-end scenario, through the REST API only.

The same steps run against the distributed shape (one process per service on
RabbitMQ and PostgreSQL) and the embedded one (one process, memory:// and
SQLite): the shapes differ in how a compute dies and how rows are read, which
the ``CloudUnderTest`` of each test provides.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from tests.polling import wait_for

ADMIN_TOKEN = "admin-token-e2e"
DEMO_TOKEN = "demo-token-e2e"
API_TOKENS = f"{ADMIN_TOKEN}=admin:admin:admin;{DEMO_TOKEN}=demo:demo:member"
COMPUTES = ("compute-1", "compute-2", "compute-3")
#: Heartbeats fast enough that a dead host shows within seconds.
REPORT_INTERVAL = 0.5
SERVICE_DOWN_TIME = 3.0
#: How long a build or an action may take before the scenario gives up.
SETTLE_TIMEOUT = 120.0


class CloudUnderTest(Protocol):
    api_url: str

    def kill_compute(self, host: str) -> None: ...

    def start_compute(self, host: str, *, fail_builds: bool) -> None: ...

    def scalar(self, sql: str) -> Any:
        """One value from the database, read directly (the scenario's audit)."""
        ...

    def build_failures(self, host: str) -> int:
        """How many builds failed on ``host``."""
        ...


@dataclass
class Api:
    """The REST API as a user (demo) and an operator (admin) see it."""

    url: str
    user: httpx.Client = field(init=False)
    admin: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.user = httpx.Client(
            base_url=self.url, headers={"X-Auth-Token": DEMO_TOKEN}, timeout=30
        )
        self.admin = httpx.Client(
            base_url=self.url, headers={"X-Auth-Token": ADMIN_TOKEN}, timeout=30
        )

    def close(self) -> None:
        self.user.close()
        self.admin.close()

    def create(self, name: str, flavor: str = "1") -> str:
        response = self.user.post("/servers", json={"server": {"name": name, "flavorRef": flavor}})
        assert response.status_code == 202, response.text
        return str(response.json()["server"]["id"])

    def servers(self) -> dict[str, dict[str, Any]]:
        """Every live server of every project, with its host (admin view)."""
        response = self.admin.get("/servers", params={"all_tenants": "true", "limit": 1000})
        assert response.status_code == 200, response.text
        return {server["id"]: server for server in response.json()["servers"]}

    def wait_status(self, ids: Iterable[str], status: str) -> dict[str, dict[str, Any]]:
        wanted = set(ids)

        def settled() -> dict[str, dict[str, Any]] | None:
            servers = self.servers()
            mine = {i: servers[i] for i in wanted if i in servers}
            errors = [s for s in mine.values() if s["status"] == "ERROR" and status != "ERROR"]
            assert not errors, f"servers in ERROR: {errors}"
            done = all(s["status"] == status and s["task_state"] is None for s in mine.values())
            return mine if len(mine) == len(wanted) and done else None

        result: dict[str, dict[str, Any]] = wait_for(
            settled, f"{len(wanted)} servers {status}", SETTLE_TIMEOUT
        )
        return result

    def act(self, server_id: str, body: dict[str, Any]) -> None:
        response = self.user.post(f"/servers/{server_id}/action", json=body)
        assert response.status_code == 202, response.text

    def delete(self, server_id: str) -> None:
        response = self.user.delete(f"/servers/{server_id}")
        assert response.status_code == 204, response.text

    def services(self) -> dict[str, dict[str, Any]]:
        response = self.admin.get("/os-services")
        assert response.status_code == 200, response.text
        return {
            service["host"]: service
            for service in response.json()["services"]
            if service["binary"] == "podium-compute"
        }

    def wait_computes(self, up: Iterable[str], down: Iterable[str] = ()) -> None:
        want_up, want_down = set(up), set(down)

        def states_match() -> bool:
            services = self.services()
            return all(
                host in services and services[host]["state"] == "up" for host in want_up
            ) and all(host in services and services[host]["state"] == "down" for host in want_down)

        wait_for(
            states_match,
            f"computes up {sorted(want_up)}, down {sorted(want_down)}",
            SETTLE_TIMEOUT,
        )


def run_scenario(cloud: CloudUnderTest, servers: int = 30) -> dict[str, float]:
    """The issue's proof, step by step; returns a few timings for the test's log."""
    api = Api(cloud.api_url)
    timings: dict[str, float] = {}
    try:
        api.wait_computes(COMPUTES)

        began = time.monotonic()
        ids = [api.create(f"vm-{n}") for n in range(servers)]
        built = api.wait_status(ids, "ACTIVE")
        timings["build_all"] = time.monotonic() - began
        hosts = {server["host"] for server in built.values()}
        assert hosts == set(COMPUTES), f"builds landed on {hosts}, not spread over {COMPUTES}"

        for body, status, back, back_status in (
            ({"pause": None}, "PAUSED", {"unpause": None}, "ACTIVE"),
            ({"os-stop": None}, "SHUTOFF", {"os-start": None}, "ACTIVE"),
        ):
            some = ids[:3]
            for server_id in some:
                api.act(server_id, body)
            changed = api.wait_status(some, status)
            assert {s["power_state"] for s in changed.values()} == {3 if status == "PAUSED" else 4}
            for server_id in some:
                api.act(server_id, back)
            assert {s["power_state"] for s in api.wait_status(some, back_status).values()} == {1}
        for server_id in ids[3:6]:
            api.act(server_id, {"reboot": {"type": "SOFT"}})
        api.wait_status(ids[3:6], "ACTIVE")

        for server_id in ids:
            api.delete(server_id)
        wait_for(lambda: not set(ids) & set(api.servers()), "every server deleted", SETTLE_TIMEOUT)
        assert cloud.scalar("SELECT count(*) FROM instances WHERE deleted != 0") == servers
        assert cloud.scalar("SELECT count(*) FROM instances WHERE deleted = 0") == 0
        used = "SELECT sum(vcpus_used) + sum(memory_mb_used) + sum(disk_gb_used) FROM compute_nodes"
        assert cloud.scalar(used) == 0

        # A compute that dies shows as down, and builds avoid it.
        killed_at = time.monotonic()
        cloud.kill_compute("compute-3")
        api.wait_computes(["compute-1", "compute-2"], down=["compute-3"])
        timings["seen_down_after"] = time.monotonic() - killed_at
        # Down once its last report is older than service_down_time: at most one
        # report interval after the kill, plus the polling and a loaded machine.
        assert timings["seen_down_after"] <= SERVICE_DOWN_TIME + REPORT_INTERVAL + 2.0
        after_kill = [api.create(f"after-kill-{n}") for n in range(6)]
        landed = {s["host"] for s in api.wait_status(after_kill, "ACTIVE").values()}
        assert landed <= {"compute-1", "compute-2"}, landed

        # A compute whose every build fails: its builds are rescheduled elsewhere.
        cloud.start_compute("compute-4", fail_builds=True)
        api.wait_computes(["compute-1", "compute-2", "compute-4"], down=["compute-3"])
        rescheduled = [api.create(f"rescheduled-{n}") for n in range(6)]
        landed = {s["host"] for s in api.wait_status(rescheduled, "ACTIVE").values()}
        assert landed <= {"compute-1", "compute-2"}, landed
        # compute-4 is empty, so the most-free-RAM weigher sends it the first build.
        assert cloud.build_failures("compute-4") >= 1

        for server_id in after_kill + rescheduled:
            api.delete(server_id)
        wait_for(lambda: not api.servers(), "the last servers deleted", SETTLE_TIMEOUT)
        assert cloud.scalar(used) == 0
        return timings
    finally:
        api.close()
