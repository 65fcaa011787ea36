"""Wrong inputs to every command: one line on stderr, no traceback, a non-zero exit.

Each case runs the installed ``podium`` console script in a child process, as
an operator would, in an empty directory and with no ``PODIUM_*`` variable
but the case's own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

PODIUM = Path(sys.executable).parent / "podium"
SECRET = "S3cret"
#: The unreachable-broker cases give up after this (connect_timeout).
CONNECT_TIMEOUT = "1"
NO_BROKER = f"rabbit://guest:{SECRET}@127.0.0.1:1/"
NO_POSTGRES = f"postgresql+psycopg://podium:{SECRET}@127.0.0.1:1/podium"


@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...]
    phrase: str
    env: dict[str, str] = field(default_factory=dict)
    exit_code: int = 1
    #: Files the case writes first: name (in the case's directory) -> content.
    files: dict[str, str] = field(default_factory=dict)
    #: Whether the case needs the real RabbitMQ ("{rabbit}" in argv or env).
    rabbit: bool = False
    #: The longest the command may take, in seconds.
    within: float = 30.0


def case(*argv: str, phrase: str, **how: Any) -> Any:
    made = Case(argv, phrase, **how)
    marks = [pytest.mark.rabbit] if made.rabbit else []
    return pytest.param(made, marks=marks, id=" ".join(argv)[:70] or "podium")


SQLITE = "sqlite:///{dir}/podium.sqlite"

CASES = [
    # -- podium conductor
    case("conductor", phrase="needs the message bus the other services use"),
    case(
        "conductor",
        "--transport-url",
        "memory://",
        "--database-url",
        SQLITE,
        phrase="use `podium all-in-one`",
    ),
    case("conductor", "--transport-url", NO_BROKER, phrase="needs a database: pass --database-url"),
    case(
        "conductor",
        "--transport-url",
        "kafka://broker/",
        "--database-url",
        SQLITE,
        phrase="--transport-url kafka://broker/: unknown transport 'kafka'",
    ),
    case(
        "conductor",
        "--workers",
        "many",
        "--transport-url",
        NO_BROKER,
        phrase="--workers many: not a whole number",
    ),
    case(
        "conductor",
        "--transport-url",
        NO_BROKER,
        "--database-url",
        "mysql://podium:S3cret@db/podium",
        phrase="use mysql+pymysql://",
    ),
    case(
        "conductor",
        "--transport-url",
        NO_BROKER,
        "--database-url",
        SQLITE,
        "--objects",
        "nosuch.module",
        phrase="--objects nosuch.module: cannot import it (No module named 'nosuch')",
    ),
    case(
        "conductor",
        "--database-url",
        SQLITE,
        env={"PODIUM_TRANSPORT_URL": NO_BROKER, "PODIUM_CONNECT_TIMEOUT": CONNECT_TIMEOUT},
        phrase="cannot connect to RabbitMQ at 127.0.0.1:1/: Connection refused",
        within=10.0,
    ),
    case(
        "conductor",
        "--transport-url",
        "{rabbit}",
        "--database-url",
        NO_POSTGRES,
        phrase="Cannot reach the database at postgresql+psycopg://podium:***@127.0.0.1:1/podium",
        rabbit=True,
    ),
    case(
        "--config",
        "{dir}/podium.toml",
        "conductor",
        files={"podium.toml": '[clinet]\napi_url = "http://127.0.0.1:8774"\n'},
        phrase="unknown table [clinet] in {dir}/podium.toml (did you mean [client]?)",
    ),
    # -- podium scheduler / compute / api
    case(
        "scheduler", phrase="pass --transport-url, set PODIUM_TRANSPORT_URL, or set transport_url"
    ),
    case(
        "scheduler",
        "--transport-url",
        NO_BROKER,
        env={"PODIUM_CONNECT_TIMEOUT": CONNECT_TIMEOUT},
        phrase="(gave up after 1 s, the connect_timeout)",
        within=10.0,
    ),
    case("compute", "--transport-url", "memory://", phrase="private to its process"),
    case(
        "compute",
        "--transport-url",
        NO_BROKER,
        "--spawn-time",
        "soon",
        phrase="--spawn-time soon: not a number",
    ),
    case(
        "compute",
        env={"PODIUM_TRANSPORT_URL": NO_BROKER, "PODIUM_FAKE_FAIL_BUILDS": "maybe"},
        phrase="PODIUM_FAKE_FAIL_BUILDS=maybe (environment): not a boolean",
    ),
    case(
        "compute",
        "--transport-url",
        NO_BROKER,
        env={"PODIUM_CONNECT_TIMEOUT": "0"},
        phrase="PODIUM_CONNECT_TIMEOUT=0 (environment): must be greater than 0",
    ),
    case("api", "--transport-url", NO_BROKER, "--listen", "8774", phrase="--listen 8774: must be"),
    case(
        "api",
        env={"PODIUM_TRANSPORT_URL": f"rabbit://guest:{SECRET}@broker:notaport/"},
        phrase="PODIUM_TRANSPORT_URL=rabbit://guest:***@broker:notaport/ (environment): "
        "invalid transport URL: host 1: port is not a number",
    ),
    case(
        "api",
        "--transport-url",
        "{rabbit}",
        "--listen",
        "127.0.0.1:0",
        env={"PODIUM_API_TOKENS": "@{dir}/missing-tokens"},
        phrase="api_tokens: cannot read {dir}/missing-tokens",
        rabbit=True,
    ),
    # -- podium all-in-one
    case("all-in-one", "--data-dir", "{dir}/data", "--listen", "nope", phrase="--listen nope"),
    case(
        "all-in-one",
        "--data-dir",
        "{dir}/a-file/data",
        "--listen",
        "127.0.0.1:0",
        files={"a-file": ""},
        phrase="data directory {dir}/a-file/data: Not a directory",
    ),
    case(
        "all-in-one",
        "--data-dir",
        "{dir}/data",
        env={"PODIUM_CONFIG": "{dir}/missing.toml"},
        phrase="configuration file {dir}/missing.toml does not exist",
    ),
    # -- podium db
    case("db", "sync", phrase="podium db sync needs a database: pass --database-url"),
    case(
        "db", "version", "--database-url", "postgres://u:S3cret@db/x", phrase="postgresql+psycopg"
    ),
    case(
        "db",
        "version",
        env={"PODIUM_DATABASE_URL": "mysql://u:S3cret@db/x"},
        phrase="PODIUM_DATABASE_URL=mysql://u:***@db/x (environment): Invalid database URL",
    ),
    case(
        "db",
        "archive-deleted-rows",
        "--database-url",
        "sqlite:///{dir}/no-such-directory/podium.sqlite",
        phrase="unable to open database file",
    ),
    case(
        "db",
        "prune-inbox",
        "--database-url",
        NO_POSTGRES,
        phrase="Cannot reach the database at postgresql+psycopg://podium:***@127.0.0.1:1/podium",
    ),
    case(
        "--config",
        "{dir}/podium.toml",
        "db",
        "version",
        files={"podium.toml": 'database_url = "sqlite:///x.sqlite"\nrpc_timout = 3\n'},
        phrase="unknown setting 'rpc_timout' in {dir}/podium.toml (did you mean 'rpc_timeout'?)",
    ),
    # -- podium objects versions
    case("objects", "versions", "--check", "{dir}/missing.json", phrase="no such file"),
    case(
        "objects",
        "versions",
        "--check",
        "{dir}/bad.json",
        files={"bad.json": "{not json"},
        phrase="--check {dir}/bad.json: not valid JSON",
    ),
    case(
        "objects",
        "versions",
        "--check",
        "{dir}/list.json",
        files={"list.json": "[1, 2]"},
        phrase="expected a JSON object of name -> fingerprint",
    ),
    case("objects", "versions", "-m", "nosuch", phrase="--module nosuch: cannot import it"),
    # -- usage mistakes (click's checks): exit 2, and where to read more
    case(
        "db",
        "archive-deleted-rows",
        "--batch-size",
        "0",
        phrase="Invalid value for '--batch-size'",
        exit_code=2,
    ),
    case(
        "db",
        "archive-deleted-rows",
        "--before",
        "yesterday",
        phrase="(see `podium db archive-deleted-rows --help`)",
        exit_code=2,
    ),
    case("db", "prune-inbox", "--older-than", "-1", phrase="'--older-than'", exit_code=2),
    case(
        "all-in-one", "--computes", "0", phrase="'--computes': 0 is not in the range", exit_code=2
    ),
    case("conductor", "--sync", phrase="No such option '--sync'", exit_code=2),
    case("config", "shwo", phrase="No such command 'shwo'. Did you mean 'show'?", exit_code=2),
    # -- podium config show
    case(
        "config",
        "show",
        env={"PODIUM_RPC_TIMEOUT": "abc"},
        phrase="PODIUM_RPC_TIMEOUT=abc (environment): not a number",
    ),
    case(
        "--config",
        "{dir}/podium.toml",
        "config",
        "show",
        files={"podium.toml": "rpc_timeout = \n"},
        phrase="configuration file {dir}/podium.toml is not valid TOML",
    ),
    case(
        "config",
        "show",
        "--json",
        env={"PODIUM_TRANSPORT_URL": "mysql://u:S3cret@db/"},
        phrase="unknown transport 'mysql'",
    ),
]


def _environment(case: Case, directory: Path, rabbit: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PODIUM_")}
    # The all-in-one's default data directory is under the user's: keep it here.
    env["XDG_DATA_HOME"] = str(directory / "xdg")
    env.update({key: _fill(value, directory, rabbit) for key, value in case.env.items()})
    return env


def _fill(text: str, directory: Path, rabbit: str) -> str:
    return text.replace("{dir}", str(directory)).replace("{rabbit}", rabbit)


@pytest.mark.parametrize("case", CASES)
def test_a_wrong_input_is_one_line_on_stderr(
    case: Case, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    rabbit = request.getfixturevalue("rabbit_url") if case.rabbit else ""
    for name, content in case.files.items():
        (tmp_path / name).write_text(content, encoding="utf-8")
    before = set(tmp_path.iterdir())
    began = time.monotonic()
    done = subprocess.run(
        [str(PODIUM), *(_fill(arg, tmp_path, rabbit) for arg in case.argv)],
        env=_environment(case, tmp_path, rabbit),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    took = time.monotonic() - began
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == case.exit_code, done.stderr
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert lines[0].startswith("Error: ")
    assert _fill(case.phrase, tmp_path, rabbit) in lines[0]
    assert SECRET not in done.stderr + done.stdout
    assert "ready" not in done.stdout
    assert took < case.within, f"took {took:.1f} s"
    # Nothing made where the command ran (an empty ./podium.sqlite above all).
    assert set(tmp_path.iterdir()) - before <= {tmp_path / "xdg"}


def test_at_least_25_cases_cover_every_command() -> None:
    cases = [param.values[0] for param in CASES]
    assert len(cases) >= 25
    commands = {next(a for a in c.argv if not a.startswith(("-", "{"))) for c in cases}
    assert commands == {
        "conductor",
        "scheduler",
        "compute",
        "api",
        "all-in-one",
        "db",
        "objects",
        "config",
    }
    assert {c.argv[1] for c in cases if c.argv[0] == "db"} == {
        "sync",
        "version",
        "archive-deleted-rows",
        "prune-inbox",
    }


def test_the_db_commands_default_retention_is_the_inbox_default() -> None:
    from podium.db import inbox
    from podium.db.cli import DEFAULT_INBOX_RETENTION

    assert inbox.DEFAULT_RETENTION.total_seconds() == DEFAULT_INBOX_RETENTION
