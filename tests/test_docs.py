"""The examples of the README and of the layer docs run as written.

(docs/objects.md and docs/db.md have tests of their own, in their layers.)

Python: each document's blocks run in order, in one namespace, in a child
process with warnings as errors: a document is read top to bottom, and an
example may use what an earlier one defined (and registers classes this
process's other tests do not expect).

Shell: each ```` ```sh ```` block runs with bash, in order, in one scratch
directory whose home and data directory are the test's own, with this venv's
``podium`` first on the PATH, and the test's own API port, RabbitMQ vhost and
PostgreSQL schema in place of the fixed ones the documents name. A
```` ```sh background ```` block starts something that runs until stopped
(``podium all-in-one``): the later blocks run once it has printed its ready
line, and it must stop cleanly on SIGTERM at the end, or when the next
background block starts (a new first terminal); one that names ``rabbit://``
or ``postgresql`` needs those services. ```` ```sh setup ```` blocks make the
environment the others run in (the install and test commands): CI runs those
itself, from a fresh clone. ```` ```sh bench ```` blocks take minutes: here
only the suites they name are checked to exist.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DOCUMENTS = [
    "README.md",
    "docs/cloud.md",
    "docs/conductor.md",
    "docs/rpc.md",
    "docs/security.md",
    "docs/testing.md",
    "docs/upgrades.md",
]
FENCE = re.compile(r"^```(\w+)[ \t]*([^\n]*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
SHELL_DOCUMENTS = [
    name
    for name in [*DOCUMENTS, "docs/operations.md"]
    if (ROOT / name).exists()
    and any(
        lang == "sh" and kind != "setup"
        for lang, kind, _ in FENCE.findall((ROOT / name).read_text())
    )
]


def python_blocks(document: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", document.read_text(), re.DOTALL | re.MULTILINE)


@pytest.mark.parametrize("name", DOCUMENTS)
def test_the_examples_run(name: str, tmp_path: Path) -> None:
    blocks = python_blocks(ROOT / name)
    assert blocks, f"{name} has no python example"
    script = tmp_path / "examples.py"
    script.write_text("\n\n".join(blocks))
    done = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    if name == "README.md":
        assert done.stdout.splitlines() == [
            "vm-1 active m1.tiny",
            "web-1",
            "['id', 'name', 'size_gb']",
            "False",
        ]


def _shell_environment(scratch: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PODIUM_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(scratch / "home")
    env["XDG_DATA_HOME"] = str(scratch / "data")
    env["XDG_CONFIG_HOME"] = str(scratch / "config")
    env["COLUMNS"] = "120"
    return env


class Background:
    """A background block's processes (its own process group), ready once each said so."""

    def __init__(self, body: str, env: dict[str, str], cwd: Path) -> None:
        self.body = body
        # One ready line per process the block starts: each line ending in '&', or one.
        expected = max(1, len(re.findall(r"&[ \t]*(#.*)?$", body, re.MULTILINE)))
        self._log = tempfile.TemporaryFile(mode="w+t")  # noqa: SIM115 - closed in stop()
        single = "\n" not in body.strip()
        self.process = subprocess.Popen(
            # One command runs as the group's leader, so its own exit status is the block's.
            ["bash", "-c", f"exec {body.strip()}" if single else body],
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        # Read to the end, always: a process blocked on a full pipe would never stop.
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            self._wait_ready(expected, timeout=120)
        except BaseException:
            self.stop(check=False)
            raise

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _wait_ready(self, expected: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        ready = 0
        while ready < expected:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"{self.body} not ready in {timeout} s:\n{self.log()}"
                ) from None
            if line is None:
                raise AssertionError(f"{self.body} ended before it was ready:\n{self.log()}")
            ready += " ready" in line

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read()[-3000:]

    def stop(self, check: bool = True) -> None:
        """SIGTERM to every process of the block; each must have exited cleanly."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        code = self.process.wait(timeout=60)
        # The pipe ends once the last process holding it (a job started with '&') is gone.
        self._reader.join(timeout=60)
        if self._reader.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            raise AssertionError(f"{self.body}: a process did not stop on SIGTERM")
        assert self.process.stdout is not None
        self.process.stdout.close()
        log = self.log()
        self._log.close()
        assert not check or (code == 0 and "Traceback" not in log), (
            f"{self.body} on SIGTERM: {code}\n{log}"
        )


def _require_services_of(body: str, request: pytest.FixtureRequest) -> None:
    # The fixtures skip on a laptop without the service and fail under CI=true.
    if "rabbit://" in body:
        request.getfixturevalue("rabbit_url")
    if "postgresql" in body:
        request.getfixturevalue("postgres_url")


#: The fixed addresses the documents name, each given a test's own in its place.
API_ADDRESS = "127.0.0.1:8774"
RABBIT_ADDRESS = "rabbit://guest:guest@127.0.0.1:5672/"
POSTGRES_ADDRESS = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


class Addresses:
    """A test's own API port, RabbitMQ vhost and PostgreSQL schema, in place of the
    documents' fixed ones: runs of the suite side by side never meet on them."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.request = request
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.api = f"127.0.0.1:{probe.getsockname()[1]}"
        self._postgres: str | None = None

    def apply(self, body: str) -> str:
        body = body.replace(API_ADDRESS, self.api)
        if RABBIT_ADDRESS in body:
            body = body.replace(RABBIT_ADDRESS, self.request.getfixturevalue("rabbit_url"))
        if POSTGRES_ADDRESS in body:
            if self._postgres is None:
                self._postgres = self.request.getfixturevalue("servers").new_url("postgresql")
            body = body.replace(POSTGRES_ADDRESS, f"'{self._postgres}'")
        return body


@pytest.mark.parametrize("name", SHELL_DOCUMENTS)
def test_the_shell_examples_run(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    env = _shell_environment(tmp_path)
    addresses = Addresses(request)
    # Where the documents rely on the default address (the all-in-one's API).
    env["PODIUM_API_LISTEN"] = addresses.api
    (tmp_path / "home").mkdir()
    running: list[Background] = []
    try:
        for language, kind, body in FENCE.findall((ROOT / name).read_text()):
            if language != "sh" or kind == "setup":
                continue
            if kind == "bench":
                _check_bench_suites(body)
                continue
            _require_services_of(body, request)
            body = addresses.apply(body)
            if kind == "background":
                while running:
                    running.pop().stop()
                running.append(Background(body, env, tmp_path))
                continue
            assert kind == "", f"unknown kind of sh block: {kind!r}"
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", body],
                capture_output=True,
                text=True,
                timeout=180,
                env=env,
                cwd=tmp_path,
            )
            assert done.returncode == 0, f"{body}\n-> {done.returncode}\n{done.stdout}{done.stderr}"
    finally:
        while running:
            running.pop().stop()


def _check_bench_suites(body: str) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from run import SUITES  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(ROOT / "bench"))
    named = set(re.findall(r"\b([a-z]+)\b", body.partition("bench/run.py")[2]))
    assert "bench/run.py" in body and named & set(SUITES), body
    missing = {word for word in named - set(SUITES) if word not in {"or", "bench", "run", "py"}}
    assert not missing, f"{body} names suites bench/run.py does not have: {missing}"


def test_the_operations_guide_lists_every_setting() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "podium", "config", "show", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={key: value for key, value in os.environ.items() if not key.startswith("PODIUM_")},
        check=True,
    )
    settings = json.loads(done.stdout)["settings"]
    guide = (ROOT / "docs/operations.md").read_text()
    rows = set(re.findall(r"^\| `(\w+)` \|", guide, re.MULTILINE))
    assert rows >= set(settings), f"docs/operations.md lacks {sorted(set(settings) - rows)}"
