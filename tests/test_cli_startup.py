"""The ``podium`` command starts fast: help and the client commands import no server stack.

A client command runs on a laptop against a remote API, and ``--help`` is
what a new user types first; neither may pay for SQLAlchemy, Alembic, the
AMQP client or the web server. The start-up time itself is measured in
``bench/bench_startup.py``; these tests guard the cause.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from podium.cli import _subcommands

SERVER_STACK = ("sqlalchemy", "alembic", "pika", "fastapi", "uvicorn", "starlette")

# Runs `podium ARGV...` in a fresh interpreter, then reports which of the
# watched top-level packages got imported (the command's exit is ignored:
# only what it imported on the way matters here).
_PROBE = """
import json, sys
from podium.cli import main
watched = json.loads(sys.argv[1])
try:
    main(sys.argv[2:], prog_name="podium")
except SystemExit:
    pass
loaded = sorted({name.split(".")[0] for name in sys.modules} & set(watched))
print("\\nIMPORTED " + json.dumps(loaded))
"""


def imported_by(
    argv: list[str], watched: tuple[str, ...], env: dict[str, str] | None = None
) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(watched), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    marker = done.stdout.rpartition("IMPORTED ")[2]
    assert marker, f"the probe did not finish: {done.stderr[-2000:]}"
    return list(json.loads(marker))


def test_podium_help_imports_neither_the_server_stack_nor_the_client_libraries() -> None:
    assert imported_by(["--help"], (*SERVER_STACK, "httpx", "rich", "pydantic")) == []


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_every_commands_help_imports_no_server_stack(command: str) -> None:
    assert imported_by([command, "--help"], SERVER_STACK) == []


def test_a_client_command_imports_no_server_stack(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"  # nobody listens there
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("PODIUM_")},
        "PODIUM_API_URL": url,
        "PODIUM_TOKEN": "t0ken",
        "XDG_DATA_HOME": str(tmp_path),
    }
    # It ran as far as the request: the client libraries are in, the server stack is not.
    assert imported_by(["server", "list"], (*SERVER_STACK, "pydantic", "httpx"), env) == ["httpx"]
