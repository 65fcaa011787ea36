"""The client commands against a real all-in-one (in this process), through ``podium``'s CLI.

Nothing of the API is mocked: every command is an HTTP client of the cloud's
API, which runs on its own threads with the conductor, scheduler and fake
computes behind it. Wrong inputs are run through the same entry point as a
user's and must fail with one line on stderr.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from tests.cloud.conftest import cloud_config

from podium.cli import main
from podium.cloud.allinone import AllInOne
from podium.cloud.client import servers as server_commands
from podium.cloud.datadir import default_data_dir, write_client_config

ADMIN = "admin-secret-token"
MEMBER = "member-secret-token"
TOKENS = f"{ADMIN}=admin:admin:admin;{MEMBER}=demo:demo:member"
UNKNOWN_UUID = "0b4f5e0e-1d2c-4b9a-9a3e-000000000000"


@dataclass
class Cloud:
    aio: AllInOne
    url: str


def _start(tmp: Path) -> AllInOne:
    # Heartbeats far apart from "down": a busy machine must not make a host
    # look dead and turn a build into NoValidHost.
    config = cloud_config(
        api_tokens=TOKENS,
        api_listen="127.0.0.1:0",
        api_rate_limit=0,
        report_interval=1.0,
        service_down_time=60.0,
    )
    aio = AllInOne(config, f"sqlite:///{tmp / 'cloud.sqlite'}", computes=("compute-1", "compute-2"))
    aio.start()
    return aio


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    aio = _start(tmp_path_factory.mktemp("cloud"))
    assert aio.api is not None
    yield Cloud(aio, aio.api.url)
    aio.stop()
    aio.wait()


@contextmanager
def fake_hypervisors(cloud: Cloud, *, fail_builds: bool, spawn_time: float) -> Iterator[None]:
    """Every compute host's fake hypervisor set so for a while (one cloud per process:
    a second all-in-one would share the first one's object routing)."""
    drivers = [
        service.manager.driver
        for name, service in cloud.aio.services.items()
        if name.startswith("compute-")
    ]
    saved = [(driver.fail_builds, driver.spawn_time) for driver in drivers]
    for driver in drivers:
        driver.fail_builds, driver.spawn_time = fail_builds, spawn_time
    try:
        yield
    finally:
        for driver, (failing, seconds) in zip(drivers, saved, strict=True):
            driver.fail_builds, driver.spawn_time = failing, seconds


@pytest.fixture(autouse=True)
def no_user_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's own all-in-one client file is never found (platformdirs reads XDG_DATA_HOME)."""
    home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    for name in ("PODIUM_CONFIG", "PODIUM_API_URL", "PODIUM_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return home


def podium(
    *args: str,
    url: str | None,
    token: str | None = ADMIN,
    env: Mapping[str, str | None] | None = None,
) -> Result:
    environment: dict[str, str | None] = {"PODIUM_API_URL": url, "PODIUM_TOKEN": token}
    environment.update(env or {})
    return CliRunner().invoke(main, list(args), env=environment)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result


def one_error_line(result: Result, *fragments: str, code: int = 1) -> str:
    """The one line on stderr of a failed command, checked for ``fragments``."""
    assert result.exit_code == code, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("Error: "), line
    # An unexpected exception is one line too, but says so: not what these expect.
    assert "Traceback" not in result.output and "--debug" not in line, line
    for fragment in fragments:
        assert fragment in line, line
    return line


def as_json(result: Result) -> Any:
    return json.loads(ok(result).stdout)


# -- servers -------------------------------------------------------------------


def test_a_server_through_its_whole_life(cloud: Cloud) -> None:
    created = as_json(podium("server", "create", "life-1", "--json", url=cloud.url))
    server_id = created["id"]
    assert created["name"] == "life-1" and created["status"] == "BUILD"
    assert created["flavor"]["name"] == "m1.tiny"

    # --wait off a terminal: one line per state, then where it ended.
    shown = ok(podium("server", "show", "life-1", "--json", url=cloud.url))
    assert json.loads(shown.stdout)["id"] == server_id

    steps = [
        ("pause", "PAUSED"),
        ("unpause", "ACTIVE"),
        ("stop", "SHUTOFF"),
        ("start", "ACTIVE"),
        ("reboot", "ACTIVE"),
    ]
    _wait_active(cloud, server_id)
    for action, status in steps:
        result = ok(podium("server", action, "life-1", "--wait", url=cloud.url))
        assert f"life-1: {status} after" in result.stdout, result.stdout
        server = as_json(podium("server", "show", server_id, "--json", url=cloud.url))
        assert (server["status"], server["task_state"]) == (status, None)

    hard = ok(podium("server", "reboot", server_id, "--hard", "--wait", url=cloud.url))
    assert "ACTIVE after" in hard.stdout
    # Without --wait: the request is accepted, and said so in one line.
    paused = ok(podium("server", "pause", server_id, url=cloud.url))
    assert paused.stdout.startswith("pause: asked for server life-1")
    _wait_status(cloud, server_id, "PAUSED")
    one_error_line(podium("server", "reboot", "life-1", url=cloud.url), "conflict (409)", "paused")

    deleted = ok(podium("server", "delete", "life-1", "--wait", url=cloud.url))
    assert "life-1: deleted after" in deleted.stdout
    one_error_line(podium("server", "show", server_id, url=cloud.url), "no server", server_id)
    assert server_id not in ok(podium("server", "list", url=cloud.url)).stdout


def _wait_active(cloud: Cloud, server_id: str) -> None:
    result = ok(podium("server", "show", server_id, "--json", url=cloud.url))
    if json.loads(result.stdout)["status"] != "ACTIVE":
        _wait_status(cloud, server_id, "ACTIVE")


def _wait_status(cloud: Cloud, server_id: str, status: str) -> None:
    from tests.polling import wait_for

    def settled() -> bool:
        server = as_json(podium("server", "show", server_id, "--json", url=cloud.url))
        return bool(server["status"] == status and server["task_state"] is None)

    wait_for(settled, f"server {server_id} to be {status}", timeout=30)


def test_create_wait_prints_each_state_once_then_the_server(cloud: Cloud) -> None:
    result = ok(
        podium(
            "server",
            "create",
            "waited-1",
            "--flavor",
            "m1.small",
            "--property",
            "role=web",
            "--wait",
            url=cloud.url,
        )
    )
    lines = result.stdout.splitlines()
    progress = [line for line in lines if " s  waited-1: " in line]
    assert progress and progress[-1].endswith("waited-1: ACTIVE"), result.stdout
    assert len(progress) == len(set(line.split("  ", 1)[1] for line in progress))
    assert "waited-1: ACTIVE after" in result.stdout
    # Then the server as `server show` prints it.
    assert any(line.split()[:2] == ["status", "ACTIVE"] for line in lines), result.stdout
    assert "m1.small" in result.stdout and "role=web" in result.stdout
    ok(podium("server", "delete", "waited-1", "--wait", url=cloud.url))


def test_create_wait_json_keeps_stdout_for_the_document(cloud: Cloud) -> None:
    result = ok(podium("server", "create", "json-1", "--wait", "--json", url=cloud.url))
    server = json.loads(result.stdout)
    assert (server["name"], server["status"], server["task_state"]) == ("json-1", "ACTIVE", None)
    assert "json-1: ACTIVE after" in result.stderr
    listed = as_json(podium("server", "list", "--json", url=cloud.url))
    assert server["id"] in [item["id"] for item in listed]
    assert all(isinstance(item["status"], str) for item in listed)
    ok(podium("server", "delete", server["id"], "--wait", url=cloud.url))


def test_server_list_table_and_filters(cloud: Cloud) -> None:
    first = as_json(podium("server", "create", "table-1", "--wait", "--json", url=cloud.url))
    table = ok(podium("server", "list", url=cloud.url)).stdout
    header = table.splitlines()[0].split()
    assert header[:3] == ["ID", "Name", "Status"] and "Host" in header
    row = next(line for line in table.splitlines() if first["id"] in line)
    # Off a terminal the table is as wide as its rows: the id is whole, not folded.
    assert row.split()[:3] == [first["id"], "table-1", "ACTIVE"]
    only = as_json(podium("server", "list", "--name", "table-1", "--json", url=cloud.url))
    assert [item["id"] for item in only] == [first["id"]]
    assert as_json(podium("server", "list", "--status", "paused", "--json", url=cloud.url)) == [
        item
        for item in as_json(podium("server", "list", "--json", url=cloud.url))
        if item["status"] == "PAUSED"
    ]
    # A member sees neither the admin's servers nor the host column.
    theirs = as_json(podium("server", "create", "mine", "--json", url=cloud.url, token=MEMBER))
    member = ok(podium("server", "list", url=cloud.url, token=MEMBER)).stdout
    assert theirs["id"] in member and first["id"] not in member
    assert member.splitlines()[0].split()[:3] == ["ID", "Name", "Status"]
    assert "Host" not in member
    ok(podium("server", "delete", theirs["id"], url=cloud.url, token=MEMBER))
    everyone = as_json(podium("server", "list", "--all-projects", "--json", url=cloud.url))
    assert first["id"] in [item["id"] for item in everyone]
    ok(podium("server", "delete", first["id"], url=cloud.url))


def test_server_list_reads_every_page(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = {
        as_json(podium("server", "create", f"paged-{n}", "--json", url=cloud.url))["id"]
        for n in range(5)
    }
    monkeypatch.setattr(server_commands, "_PAGE", 2)
    listed = as_json(podium("server", "list", "--json", url=cloud.url))
    assert ids <= {item["id"] for item in listed}
    assert len(listed) == len({item["id"] for item in listed})
    for server_id in ids:
        ok(podium("server", "delete", server_id, url=cloud.url))


def test_a_name_shared_by_two_servers_is_refused_with_their_ids(cloud: Cloud) -> None:
    ids = [
        as_json(podium("server", "create", "twin", "--json", url=cloud.url))["id"] for _ in range(2)
    ]
    line = one_error_line(podium("server", "show", "twin", url=cloud.url), "2 servers", "twin")
    assert all(server_id in line for server_id in ids)
    one_error_line(podium("server", "delete", "twin", url=cloud.url), "give an id")
    for server_id in ids:
        ok(podium("server", "delete", server_id, "--wait", url=cloud.url))


def test_a_name_that_looks_like_a_uuid_is_still_found(cloud: Cloud) -> None:
    name = "5d0e5f3a-7f7e-4f1b-9d6c-2f2f2f2f2f2f"
    created = as_json(podium("server", "create", name, "--json", url=cloud.url))
    assert as_json(podium("server", "show", name, "--json", url=cloud.url))["id"] == created["id"]
    ok(podium("server", "delete", created["id"], url=cloud.url))


# -- ERROR and --timeout --------------------------------------------------------


def test_a_build_ending_in_error_exits_1_with_its_fault(cloud: Cloud) -> None:
    with fake_hypervisors(cloud, fail_builds=True, spawn_time=0.2):
        result = podium("server", "create", "doomed", "--wait", url=cloud.url)
    line = one_error_line(result, "server doomed is in ERROR after its build")
    server = as_json(podium("server", "show", "doomed", "--json", url=cloud.url))
    assert server["status"] == "ERROR" and server["fault"]["message"]
    assert " ".join(server["fault"]["message"].split())[:150] in line
    # The progress came before it, on stdout.
    assert "doomed: BUILD" in result.stdout
    shown = ok(podium("server", "show", "doomed", url=cloud.url)).stdout
    assert any(line.split()[:1] == ["fault"] for line in shown.splitlines()), shown
    ok(podium("server", "delete", "doomed", "--wait", url=cloud.url))


def test_wait_gives_up_after_its_timeout(cloud: Cloud) -> None:
    with fake_hypervisors(cloud, fail_builds=False, spawn_time=2.0):
        result = podium("server", "create", "slow", "--wait", "--timeout", "0.2", url=cloud.url)
        one_error_line(result, "gave up after 0.2 s", "server slow is still BUILD")
        server = as_json(podium("server", "show", "slow", "--json", url=cloud.url))
        _wait_status(cloud, server["id"], "ACTIVE")
    ok(podium("server", "delete", "slow", "--wait", url=cloud.url))


# -- flavors, services, hypervisors ---------------------------------------------


def test_flavor_list(cloud: Cloud) -> None:
    flavors = as_json(podium("flavor", "list", "--json", url=cloud.url, token=MEMBER))
    assert [f["name"] for f in flavors][:2] == ["m1.tiny", "m1.small"]
    table = ok(podium("flavor", "list", url=cloud.url)).stdout.splitlines()
    assert table[0].split() == ["ID", "Name", "vCPUs", "RAM", "(MiB)", "Disk", "(GiB)", "Public"]
    assert table[2].split() == ["1", "m1.tiny", "1", "512", "1", "yes"]


def test_service_list_and_disable_enable(cloud: Cloud) -> None:
    services = as_json(podium("service", "list", "--json", url=cloud.url))
    computes = [s for s in services if s["binary"] == "podium-compute"]
    assert sorted(s["host"] for s in computes) == ["compute-1", "compute-2"]
    target = next(s for s in computes if s["host"] == "compute-2")
    disabled = as_json(
        podium(
            "service",
            "disable",
            str(target["id"]),
            "--reason",
            "disk swap",
            "--json",
            url=cloud.url,
        )
    )
    assert (disabled["status"], disabled["disabled_reason"]) == ("disabled", "disk swap")
    table = ok(podium("service", "list", "--binary", "podium-compute", url=cloud.url)).stdout
    row = next(line for line in table.splitlines() if "compute-2" in line)
    assert "disabled" in row and "disk swap" in row
    assert "conductor" not in table
    enabled = ok(podium("service", "enable", str(target["id"]), url=cloud.url)).stdout
    assert "enabled" in enabled and "disk swap" not in enabled
    hosts = as_json(podium("hypervisor", "list", "--json", url=cloud.url))
    assert all(node["status"] == "enabled" for node in hosts)


def test_service_force_down_and_clear(cloud: Cloud) -> None:
    services = as_json(podium("service", "list", "--json", url=cloud.url))
    target = next(s for s in services if s["host"] == "compute-2")
    assert target["state"] == "up"
    forced = ok(podium("service", "force-down", str(target["id"]), url=cloud.url)).stdout
    row = next(line for line in forced.splitlines() if "compute-2" in line)
    assert "down (forced)" in row
    nodes = {n["host"]: n for n in as_json(podium("hypervisor", "list", "--json", url=cloud.url))}
    assert nodes["compute-2"]["state"] == "down"
    cleared = as_json(
        podium("service", "force-down", "--clear", str(target["id"]), "--json", url=cloud.url)
    )
    assert (cleared["forced_down"], cleared["state"]) == (False, "up")


def test_hypervisor_list(cloud: Cloud) -> None:
    nodes = as_json(podium("hypervisor", "list", "--json", url=cloud.url))
    assert sorted(node["host"] for node in nodes) == ["compute-1", "compute-2"]
    table = ok(podium("hypervisor", "list", url=cloud.url)).stdout.splitlines()
    assert table[0].split()[:5] == ["ID", "Hostname", "Host", "State", "Status"]
    row = next(line for line in table if "compute-1" in line).split()
    assert row[3:5] == ["up", "enabled"] and row[5].endswith(f"/{cloud_config().compute_vcpus}")


def test_compute_is_still_the_agent_command() -> None:
    result = CliRunner().invoke(main, ["compute", "--help"])
    assert result.exit_code == 0 and "--spawn-time" in result.output


# -- where the settings come from ------------------------------------------------


def _local_data_dir(xdg_data_home: Path) -> Path:
    """The all-in-one's default data directory, made (under the test's XDG_DATA_HOME)."""
    data_dir = default_data_dir()
    assert data_dir.is_relative_to(xdg_data_home), data_dir
    data_dir.mkdir(parents=True)
    return data_dir


def test_the_local_all_in_ones_client_file_is_found(cloud: Cloud, no_user_data_dir: Path) -> None:
    write_client_config(_local_data_dir(no_user_data_dir), cloud.url, ADMIN)
    assert isinstance(as_json(podium("flavor", "list", "--json", url=None, token=None)), list)


def test_a_configuration_file_then_the_environment_then_flags(cloud: Cloud, tmp_path: Path) -> None:
    config = tmp_path / "podium.toml"
    config.write_text(
        f'transport_url = "memory://"\n[client]\napi_url = "{cloud.url}"\n'
        f'token = "{MEMBER}"\ntimeout = 5\n'
    )
    listed = podium("server", "list", "--all-projects", url=None, token=None, env={})
    one_error_line(listed, "no API to talk to", "podium all-in-one", "PODIUM_API_URL")
    # The file's member token: no admin commands.
    member = podium("--config", str(config), "service", "list", url=None, token=None)
    one_error_line(member, "not allowed (403)", "admin")
    # The environment's token wins over the file's, and a flag over both.
    ok(podium("--config", str(config), "service", "list", url=None, token=ADMIN))
    via_env = podium("service", "list", url=None, token=ADMIN, env={"PODIUM_CONFIG": str(config)})
    ok(via_env)
    flag = podium("service", "list", "--token", MEMBER, url=cloud.url, token=ADMIN)
    one_error_line(flag, "not allowed (403)")


# -- wrong inputs: one line each -------------------------------------------------


@dataclass(frozen=True)
class Wrong:
    argv: tuple[str, ...]
    fragments: tuple[str, ...]
    url: str | None = "CLOUD"
    token: str | None = ADMIN
    config: str | None = None  # text of a configuration file given with --config


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


CLOSED = _closed_port()

WRONG = {
    "ftp scheme": Wrong(
        ("server", "list"), ("PODIUM_API_URL", "scheme must be http or https"), url="ftp://h"
    ),
    "no scheme": Wrong(("server", "list"), ("no scheme",), url="localhost:8774"),
    "port out of range": Wrong(("server", "list"), ("not a valid URL",), url="http://h:99999"),
    "flag url without host": Wrong(
        ("server", "list", "--api-url", "http://:8774"), ("--api-url", "names no host"), url=None
    ),
    "url with a query": Wrong(("flavor", "list"), ("no user, query",), url="http://h:1/?x=1"),
    "unreachable port": Wrong(
        ("server", "list"),
        (f"cannot reach the API at http://127.0.0.1:{CLOSED}", "refused"),
        url=f"http://127.0.0.1:{CLOSED}",
    ),
    "bad token": Wrong(
        ("server", "list"), ("refused the token from PODIUM_TOKEN (401)",), token="x"
    ),
    "token with a blank": Wrong(("server", "list"), ("printable ASCII",), token="a b"),
    "no token": Wrong(("server", "list"), ("no token for the API",), token=None),
    "unknown server name": Wrong(("server", "show", "nope"), ("no server 'nope'",)),
    "unknown server id": Wrong(
        ("server", "delete", UNKNOWN_UUID), (f"no server '{UNKNOWN_UUID}'",)
    ),
    "unknown server to pause": Wrong(("server", "pause", "ghost"), ("no server 'ghost'",)),
    "bad flavor": Wrong(
        ("server", "create", "x", "--flavor", "huge"), ("no flavor 'huge'", "m1.tiny")
    ),
    "empty server name": Wrong(
        ("server", "create", " "), ("the API refused the request (400)", "name")
    ),
    "bad property": Wrong(("server", "create", "x", "--property", "novalue"), ("KEY=VALUE",)),
    "member lists services": Wrong(("service", "list"), ("403", "admin role"), token=MEMBER),
    "member lists hypervisors": Wrong(("hypervisor", "list"), ("403", "admin"), token=MEMBER),
    "member disables a service": Wrong(("service", "disable", "1"), ("403",), token=MEMBER),
    "member lists all projects": Wrong(
        ("server", "list", "--all-projects"), ("403", "all projects"), token=MEMBER
    ),
    "unknown service": Wrong(("service", "enable", "999"), ("no service 999",)),
    "unknown key in [client]": Wrong(
        ("server", "list"),
        ("podium.toml", "unknown key 'api_ur' in [client]", "known: api_url"),
        url=None,
        token=None,
        config='[client]\napi_ur = "http://h:1"\n',
    ),
    "token of the wrong type": Wrong(
        ("server", "list"),
        ("podium.toml", "token must be a string, not an integer"),
        url=None,
        token=None,
        config='[client]\napi_url = "http://h:1"\ntoken = 5\n',
    ),
    "negative timeout": Wrong(
        ("server", "list"),
        ("podium.toml", "timeout must be a positive number"),
        config="[client]\ntimeout = -1\n",
    ),
    "client not a table": Wrong(
        ("server", "list"), ("podium.toml", "must be a table"), config='client = "x"\n'
    ),
    "url of the wrong type": Wrong(
        ("server", "list"),
        ("podium.toml", "api_url must be a string, not an array"),
        token=None,
        config="[client]\napi_url = [1]\n",
    ),
    "malformed configuration file": Wrong(
        ("server", "list"), ("podium.toml", "not valid TOML"), config="[client\n"
    ),
}


@pytest.mark.parametrize("case", WRONG.values(), ids=list(WRONG))
def test_wrong_input_fails_in_one_line(cloud: Cloud, tmp_path: Path, case: Wrong) -> None:
    argv = list(case.argv)
    if case.config is not None:
        path = tmp_path / "podium.toml"
        path.write_text(case.config)
        argv = ["--config", str(path), *argv]
    url = cloud.url if case.url == "CLOUD" else case.url
    one_error_line(podium(*argv, url=url, token=case.token), *case.fragments)


def test_a_missing_configuration_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    result = podium("server", "list", url=None, env={"PODIUM_CONFIG": str(missing)})
    one_error_line(result, str(missing), "does not exist")


def test_a_stale_local_client_file_suggests_starting_the_all_in_one(
    no_user_data_dir: Path,
) -> None:
    path = write_client_config(_local_data_dir(no_user_data_dir), f"http://127.0.0.1:{CLOSED}", "t")
    result = podium("server", "list", url=None, token=None)
    one_error_line(result, str(path), "is `podium all-in-one` running?")


class _NotTheApi(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html>hello</html>" if self.path.startswith("/flavors") else b"{]"
        self.send_response(200 if self.path.startswith("/flavors") else 500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def not_the_api() -> Iterator[str]:
    """An HTTP server that is not podium's API."""
    server = HTTPServer(("127.0.0.1", 0), _NotTheApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_a_server_answering_invalid_json_is_named(not_the_api: str) -> None:
    one_error_line(podium("flavor", "list", url=not_the_api), not_the_api, "invalid JSON")
    # An error status with a body that is no API error: its status, not a parse failure.
    one_error_line(podium("service", "list", url=not_the_api), "HTTP 500")


def test_an_api_that_never_answers_times_out_in_one_line(tmp_path: Path) -> None:
    # A listening socket nobody accepts on: the connection is made (the
    # backlog), then no answer ever comes.
    with socket.create_server(("127.0.0.1", 0), backlog=8) as silent:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        config = tmp_path / "podium.toml"
        config.write_text(f'[client]\napi_url = "{url}"\ntoken = "t"\ntimeout = 0.3\n')
        result = podium("--config", str(config), "flavor", "list", url=None, token=None)
    one_error_line(result, url, "did not answer GET /flavors within 0.3 s")
