"""The cloud's services as processes on RabbitMQ, configured to sign and to require signatures."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from podium.cli import main
from service_process import ServiceProcess

pytestmark = [pytest.mark.rabbit]


def make_key(directory: Path, service: str, host: str) -> Path:
    """``podium keys create``: the private key's path (its public half in ``directory/pub``)."""
    private = directory / f"{service}.{host}.key"
    result = CliRunner().invoke(
        main,
        [
            *("keys", "create", "--service", service, "--host", host),
            *("--keys-dir", str(directory / "pub"), "--key-file", str(private)),
        ],
        env={"PODIUM_CONFIG": ""},
    )
    assert result.exit_code == 0, result.output
    return private


@pytest.fixture
def signed_cloud(rabbit_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {
        "PODIUM_CONFIG": "",
        "PODIUM_TRANSPORT_URL": rabbit_url,
        # A topic of the test's own: no other test's conductor or leftovers on it.
        "PODIUM_CONDUCTOR_TOPIC": f"conductor-{uuid.uuid4().hex[:8]}",
        "PODIUM_KEYS_DIR": str(tmp_path / "pub"),
        "PODIUM_REQUIRE_SIGNED": "true",
        "PODIUM_RPC_TIMEOUT": "20",
    }
    conductor = ServiceProcess(
        [
            *("conductor", "--sync-db", "--host", "c1"),
            *("--database-url", f"sqlite:///{tmp_path / 'cloud.sqlite'}"),
        ],
        env={**env, "PODIUM_KEY_FILE": str(make_key(tmp_path, "conductor", "c1"))},
    )
    try:
        yield env
    finally:
        conductor.stop()


def test_a_compute_with_a_trusted_key_runs_and_one_without_is_refused(
    signed_cloud: dict[str, str], tmp_path: Path
) -> None:
    key = make_key(tmp_path, "compute", "h1")
    compute = ServiceProcess(
        ["compute", "--host", "h1"], env={**signed_cloud, "PODIUM_KEY_FILE": str(key)}
    )
    try:
        assert compute.ready_line.startswith("podium-compute ready host=h1")
    finally:
        compute.stop()
    # No key: its first call to the conductor (is it there?) is refused, and it says so.
    unsigned = subprocess.run(
        [sys.executable, "-m", "podium", "compute", "--host", "h2"],
        env={**os.environ, **signed_cloud},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unsigned.returncode != 0
    assert "refused: unsigned request" in unsigned.stderr
    # A key whose public half the conductor does not have: refused as unknown.
    stray = make_key(tmp_path / "elsewhere", "compute", "h3")
    unknown = subprocess.run(
        [sys.executable, "-m", "podium", "compute", "--host", "h3"],
        env={**os.environ, **signed_cloud, "PODIUM_KEY_FILE": str(stray)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unknown.returncode != 0
    assert "compute.h3, whose key is not trusted here" in unknown.stderr
