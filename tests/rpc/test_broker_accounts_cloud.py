"""The cloud's services as processes, each on the broker account ``podium broker setup`` made.

Every service runs with ``routing=exchange`` on an account of its own (the
conductor's, the scheduler's, the api's, one per compute host): builds,
actions, a console read (a call from the api that a compute answers) and
deletes go through, and no service logs a refusal by the broker.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.cloud.scenario import COMPUTES, Api
from tests.cloud.test_cloud_e2e import DistributedCloud
from tests.conftest import Servers
from tests.polling import wait_for

from podium import testing
from podium.broker_cli import group
from podium.testing import DEFAULT_RABBIT_URL

pytestmark = [pytest.mark.rabbit, pytest.mark.timeout(600)]


class RestrictedCloud(DistributedCloud):
    """The distributed cloud, each process on its own service's account."""

    def __init__(self, urls: dict[str, str], database_url: str) -> None:
        self.urls = urls
        super().__init__(urls["conductor"], database_url)

    def _start(self, name: str, argv: list[str]) -> object:
        service = argv[0]
        account = f"compute.{name}" if service == "compute" else service
        shared = self.env
        self.env = {**shared, "PODIUM_TRANSPORT_URL": self.urls[account]}
        try:
            return super()._start(name, argv)
        finally:
            self.env = shared


@dataclass(frozen=True)
class Accounts:
    urls: dict[str, str]
    vhost: str
    prefix: str

    def queues(self) -> list[str]:
        listed = subprocess.run(
            ["rabbitmqctl", "-q", "list_queues", "-p", self.vhost, "name", "--no-table-headers"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return listed.stdout.split()


@pytest.fixture
def accounts(tmp_path: Path) -> Iterator[Accounts]:
    testing.require_service("RabbitMQ", "127.0.0.1", 5672)
    prefix = f"podium-test-{secrets.token_hex(3)}-"
    with testing.rabbit_vhost(DEFAULT_RABBIT_URL, prefix="podium-broker-cloud") as url:
        vhost = url.rsplit("/", 1)[1]
        args = ["setup", "--vhost", vhost, "--prefix", prefix, "--secrets-dir", str(tmp_path)]
        args += ["--service", "conductor", "--service", "scheduler", "--service", "api"]
        for host in COMPUTES:
            args += ["--compute-host", host]
        try:
            done = CliRunner().invoke(group, args)
            assert done.exit_code == 0, done.output
            urls = {
                path.name[len(prefix) : -len(".url")]: path.read_text().strip()
                for path in tmp_path.glob(f"{prefix}*.url")
            }
            yield Accounts(urls, vhost, prefix)
        finally:
            for path in tmp_path.glob(f"{prefix}*.url"):
                user = path.name[: -len(".url")]
                subprocess.run(["rabbitmqctl", "-q", "delete_user", user], timeout=60)


def test_the_cloud_runs_with_each_service_on_its_own_restricted_account(
    accounts: Accounts, servers: Servers
) -> None:
    cloud = RestrictedCloud(accounts.urls, servers.new_url("sqlite"))
    api = Api(cloud.api_url)
    try:
        api.wait_computes(COMPUTES)
        ids = [api.create(f"vm-{n}") for n in range(6)]
        built = api.wait_status(ids, "ACTIVE")
        assert len({server["host"] for server in built.values()}) > 1
        api.act(ids[0], {"pause": None})
        api.wait_status(ids[:1], "PAUSED")
        # A call from the api that the compute answers: through amq.topic, to
        # a reply queue only the api's account may read.
        console = api.user.post(
            f"/servers/{ids[1]}/action", json={"os-getConsoleOutput": {"length": 5}}
        )
        assert console.status_code == 200, console.text
        assert console.json()["output"]
        # Each service on its own account: their reply queues bear its name.
        queues = accounts.queues()
        for account in ("api", "scheduler", "compute.compute-1"):
            mine = f"reply_{accounts.prefix}{account}_"
            assert any(q.startswith(mine) for q in queues), (mine, queues)
        for server_id in ids:
            api.delete(server_id)
        wait_for(lambda: not set(ids) & set(api.servers()), "every server deleted", 120)
    finally:
        api.close()
        cloud.stop()
    for name, log in cloud.logs.items():
        assert "ACCESS_REFUSED" not in log, f"{name} was refused by the broker:\n{log[-4000:]}"
