"""``podium server create --wait`` in a pseudo-terminal: a live progress display, then the end.

The cloud is an in-process all-in-one whose fake hypervisor takes a while to
spawn, so the display has a transitional state to show; the client is the
installed ``podium`` script in a child process on a pty, as a person runs it.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest
from tests.cloud.conftest import cloud_config

from podium.cloud.allinone import AllInOne

PODIUM = Path(sys.executable).with_name("podium")
TOKEN = "terminal-test-token"
SPAWN_SECONDS = 2.0


@pytest.fixture
def api_url(tmp_path: Path) -> Iterator[str]:
    config = cloud_config(
        api_tokens=f"{TOKEN}=admin:admin:admin",
        api_listen="127.0.0.1:0",
        api_rate_limit=0,
        report_interval=1.0,
        service_down_time=60.0,
        fake_spawn_time=SPAWN_SECONDS,
    )
    with AllInOne(config, f"sqlite:///{tmp_path / 'cloud.sqlite'}", computes=["compute-1"]) as aio:
        assert aio.api is not None
        yield aio.api.url


@pytest.mark.timeout(180)
def test_create_wait_shows_live_progress_then_active(api_url: str, tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("PODIUM_")}
    env.update(
        PODIUM_API_URL=api_url,
        PODIUM_TOKEN=TOKEN,
        XDG_DATA_HOME=str(tmp_path / "xdg"),
        TERM="xterm-256color",
        COLUMNS="100",
    )
    for name in ("NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "FORCE_COLOR"):
        env.pop(name, None)
    child = pexpect.spawn(
        str(PODIUM),
        ["server", "create", "vm-tty", "--wait"],
        env=env,
        dimensions=(30, 100),
        encoding="utf-8",
        timeout=90,
    )
    try:
        # The live line: the server's status and task, with the time so far.
        child.expect(r"vm-tty: BUILD \(spawning\)\s+\d+\.\d s")
        during = child.before + child.after
        # Redrawn in place (cursor control), not printed as a log of lines.
        child.expect(r"vm-tty: ACTIVE after \d+\.\d s")
        redraws = child.before
        child.expect(pexpect.EOF)
        rest = child.before
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, during + redraws + rest
    assert "\x1b[" in during + redraws
    # Off a terminal each state is a line "  0.1 s  vm-tty: ..."; here none is.
    assert not re.search(r"^\s+\d+\.\d s  vm-tty: ", during + redraws, re.MULTILINE)
    # Then the server, as `server show` prints it.
    assert re.search(r"status\s+ACTIVE", rest), rest
