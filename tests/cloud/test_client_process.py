"""The README's main command, as a user runs it: ``podium all-in-one`` in one process, the
client commands in others, found through the client file the all-in-one writes.

Every process is the installed ``podium`` console script (the one next to this
interpreter), so the entry point, the lazy command loading and the client's
start-up are the user's, not an in-process shortcut's.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

PODIUM = Path(sys.executable).with_name("podium")
READY = "podium all-in-one ready url="


class AllInOneProcess:
    """``podium all-in-one --data-dir DIR --listen 127.0.0.1:0``, waited for until ready."""

    def __init__(self, data_dir: Path, env: dict[str, str], ready_timeout: float = 90.0) -> None:
        self.data_dir = data_dir
        # The log goes to a file: a pipe nobody reads would block the process.
        self._log = tempfile.TemporaryFile(mode="w+t")  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(PODIUM), "all-in-one", "--data-dir", str(data_dir), "--listen", "127.0.0.1:0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        assert self.process.stdout is not None
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout,))
        self._reader.start()
        self.stdout: list[str] = []
        self.url = self._wait_ready(ready_timeout)

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line)
        self.lines.put(None)

    def _wait_ready(self, timeout: float) -> str:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                self.stop(signal.SIGKILL)
                raise AssertionError(
                    f"no ready line within {timeout:.0f} s\n{self.log()}"
                ) from None
            if line is None:
                self.stop(signal.SIGKILL)
                raise AssertionError(f"the all-in-one exited before ready:\n{self.log()}")
            self.stdout.append(line)
            if line.startswith(READY):
                return line[len(READY) :].strip()

    def log(self) -> str:
        self._log.seek(0)
        return "".join(self.stdout) + self._log.read()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Send ``sig``, wait for the exit; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
            raise AssertionError(f"the all-in-one ignored {sig} for {timeout:.0f} s") from None
        self._reader.join(timeout=30)
        return code

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self._reader.join(timeout=30)
        assert self.process.stdout is not None
        self.process.stdout.close()
        self._log.close()


def user_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a user with no podium settings and a data directory of the test's."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("PODIUM_") and name != "XDG_DATA_HOME"
    }
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    env.update(extra)
    return env


@pytest.fixture
def all_in_one(tmp_path: Path) -> Iterator[AllInOneProcess]:
    assert PODIUM.exists(), f"the podium console script is not installed next to {sys.executable}"
    cloud = AllInOneProcess(tmp_path / "data", user_env(tmp_path, PODIUM_FAKE_SPAWN_TIME="0.3"))
    try:
        yield cloud
    finally:
        cloud.close()


def podium(
    argv: list[str], env: dict[str, str], timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PODIUM), *argv], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.timeout(300)
def test_all_in_one_then_the_client_from_other_processes(
    all_in_one: AllInOneProcess, tmp_path: Path
) -> None:
    client_file = all_in_one.data_dir / "client.toml"
    assert client_file.is_file() and (client_file.stat().st_mode & 0o077) == 0
    # What the all-in-one tells the user to do in the second terminal.
    assert f"export PODIUM_CONFIG={client_file}" in all_in_one.log()
    env = user_env(tmp_path, PODIUM_CONFIG=str(client_file))

    created = podium(["server", "create", "vm-1", "--wait"], env)
    assert created.returncode == 0, created.stdout + created.stderr
    assert "vm-1: ACTIVE after" in created.stdout, created.stdout
    assert created.stderr == ""

    listed = podium(["server", "list", "--json"], env)
    assert listed.returncode == 0, listed.stderr
    servers = json.loads(listed.stdout)
    assert [(s["name"], s["status"]) for s in servers] == [("vm-1", "ACTIVE")]

    assert all_in_one.stop(signal.SIGTERM) == 0, all_in_one.log()
    log = all_in_one.log()
    assert "Traceback" not in log, log[-4000:]

    # The API is gone: the client says where it looked, in one line.
    after = podium(["server", "list"], env)
    assert after.returncode == 1
    lines = after.stderr.splitlines()
    assert len(lines) == 1, after.stderr
    assert lines[0].startswith(f"Error: cannot reach the API at {all_in_one.url}"), lines
    assert lines[0].endswith("is `podium all-in-one` running?"), lines
