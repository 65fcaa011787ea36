"""The whole cloud, end to end through its REST API: distributed and embedded."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from tests.cloud.scenario import (
    API_TOKENS,
    COMPUTES,
    REPORT_INTERVAL,
    SERVICE_DOWN_TIME,
    run_scenario,
)
from tests.conftest import Servers
from tests.service_process import ServiceProcess

from podium.cloud.allinone import AllInOne
from podium.cloud.config import CloudConfig
from podium.db import Database
from podium.rpc import Sender, SigningKey

BUILD_FAILED = "build of instance"


def _cloud_settings() -> dict[str, str]:
    return {
        "PODIUM_REPORT_INTERVAL": str(REPORT_INTERVAL),
        "PODIUM_SERVICE_DOWN_TIME": str(SERVICE_DOWN_TIME),
        "PODIUM_API_TOKENS": API_TOKENS,
        "PODIUM_API_LISTEN": "127.0.0.1:0",
        "PODIUM_API_RATE_LIMIT": "0",
        "PODIUM_RPC_TIMEOUT": "30",
        "PODIUM_LOG_LEVEL": "INFO",
    }


class DistributedCloud:
    """One process per service on RabbitMQ and PostgreSQL, as a deployment runs it.

    With ``keys_dir``, every service has a key of its own there and requires
    signed requests: the conductor then enforces the cloud's policy on each.
    """

    def __init__(self, transport_url: str, database_url: str, keys_dir: Path | None = None) -> None:
        self.env = {**_cloud_settings(), "PODIUM_TRANSPORT_URL": transport_url}
        self.keys_dir = keys_dir
        if keys_dir is not None:
            self.env.update(PODIUM_KEYS_DIR=str(keys_dir), PODIUM_REQUIRE_SIGNED="true")
        self.database = Database(database_url)
        self.processes: dict[str, ServiceProcess] = {}
        self.logs: dict[str, str] = {}
        self._start(
            "conductor-1",
            ["conductor", "--sync-db", "--host", "conductor-1", "--database-url", database_url],
        )
        self._start("scheduler-1", ["scheduler", "--host", "scheduler-1"])
        for host in COMPUTES:
            self.start_compute(host, fail_builds=False)
        api = self._start("api-1", ["api", "--host", "api-1"])
        self.api_url = api.ready_value("url")

    def _start(self, name: str, argv: list[str]) -> ServiceProcess:
        env = self.env
        if self.keys_dir is not None:
            # Each process signs as SERVICE.HOST: its command, and its --host.
            key = SigningKey.generate(Sender(argv[0], name))
            (self.keys_dir / f"{key.sender.name}.pub").write_bytes(key.public_pem())
            key_file = self.keys_dir.parent / f"{key.sender.name}.key"
            key_file.write_bytes(key.private_pem())
            key_file.chmod(0o600)
            env = {**env, "PODIUM_KEY_FILE": str(key_file)}
        process = ServiceProcess(argv, env=env)
        self.processes[name] = process
        return process

    def start_compute(self, host: str, *, fail_builds: bool) -> None:
        argv = ["compute", "--host", host, *(["--fail-builds"] if fail_builds else [])]
        self._start(host, argv)

    def kill_compute(self, host: str) -> None:
        self.logs[host] = self.processes.pop(host).kill()

    def scalar(self, sql: str) -> Any:
        with self.database.connection() as connection:
            return connection.execute(sa.text(sql)).scalar()

    def build_failures(self, host: str) -> int:
        log = self.processes[host].log()
        return sum(
            BUILD_FAILED in line and f"failed on {host}" in line for line in log.splitlines()
        )

    def stop(self) -> None:
        # Workers first, the conductor last: their goodbyes still reach it.
        for name in sorted(self.processes, key=lambda name: name.startswith("conductor")):
            self.logs[name] = self.processes[name].stop()
        self.database.dispose()


@pytest.mark.rabbit
@pytest.mark.postgres
@pytest.mark.timeout(600)
def test_distributed_cloud_builds_acts_deletes_and_survives_a_dead_compute(
    rabbit_url: str, servers: Servers, tmp_path: Path
) -> None:
    """Signed, under the cloud's policy: nothing a service does in a normal life is refused."""
    (tmp_path / "keys").mkdir()
    cloud = DistributedCloud(rabbit_url, servers.new_url("postgresql"), tmp_path / "keys")
    try:
        timings = run_scenario(cloud)
    except BaseException:
        cloud.stop()
        for name, log in cloud.logs.items():
            print(f"===== {name} =====\n{log[-6000:]}")
        raise
    cloud.stop()
    print(f"distributed: {timings}")
    # Every service stopped cleanly on SIGTERM (the killed compute aside).
    for name, log in cloud.logs.items():
        if name != "compute-3":
            assert "Traceback" not in log, f"{name}:\n{log[-4000:]}"
        assert "refused" not in log, f"{name}:\n{log[-4000:]}"


class _BuildFailures(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.hosts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(BUILD_FAILED):
            self.hosts.append(message.split(" failed on ")[1].split(":")[0])


class EmbeddedCloud:
    """The all-in-one: one process, memory:// and SQLite."""

    def __init__(self, database_url: str) -> None:
        config = CloudConfig(
            report_interval=REPORT_INTERVAL,
            service_down_time=SERVICE_DOWN_TIME,
            api_tokens=API_TOKENS,
            api_listen="127.0.0.1:0",
            api_rate_limit=0,
            rpc_timeout=30.0,
        )
        self.cloud = AllInOne(config, database_url, computes=COMPUTES)
        self.failures = _BuildFailures()
        logging.getLogger("podium.cloud.compute").addHandler(self.failures)
        self.cloud.start()
        assert self.cloud.api is not None
        self.api_url = self.cloud.api.url

    def kill_compute(self, host: str) -> None:
        self.cloud.stop_compute(host)

    def start_compute(self, host: str, *, fail_builds: bool) -> None:
        self.cloud.start_compute(host, fail_builds=fail_builds)

    def scalar(self, sql: str) -> Any:
        with self.cloud.database.connection() as connection:
            return connection.execute(sa.text(sql)).scalar()

    def build_failures(self, host: str) -> int:
        return self.failures.hosts.count(host)

    def stop(self) -> None:
        logging.getLogger("podium.cloud.compute").removeHandler(self.failures)
        self.cloud.stop()
        self.cloud.wait()


@pytest.fixture
def embedded(servers: Servers) -> Iterator[EmbeddedCloud]:
    cloud = EmbeddedCloud(servers.new_url("sqlite"))
    yield cloud
    cloud.stop()


@pytest.mark.timeout(600)
def test_embedded_cloud_runs_the_same_scenario(embedded: EmbeddedCloud) -> None:
    timings = run_scenario(embedded)
    print(f"embedded: {timings}")
