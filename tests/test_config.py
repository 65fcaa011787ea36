"""Settings from the file, the environment and the flags: order, checks, display."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from podium.cli import main
from podium.cloud.config import CloudConfig
from podium.config import ConfigError
from podium.service.config import Origin, ServiceConfig, command_sources


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "podium.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _error(**how: Any) -> str:
    with pytest.raises(ConfigError) as raised:
        CloudConfig.load(**{"environ": {}, **how})
    text = str(raised.value)
    assert "\n" not in text
    return text


# -- sources and their order ---------------------------------------------------------


def test_with_no_source_every_setting_is_its_default_but_the_bus() -> None:
    loaded = CloudConfig.load_with_origins(environ={})
    assert loaded.config == CloudConfig(transport_url="")
    assert set(loaded.origins.values()) == {Origin("default")}
    # Built in Python (the all-in-one, tests), a config keeps the in-process bus.
    assert CloudConfig().transport_url == "memory://"


def test_the_environment_overrides_the_file_and_a_flag_overrides_both(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        'rpc_timeout = 5\nrpc_workers = 2\nhost = "from-file"\nreport_interval = 1.5\n'
        '[client]\napi_url = "http://127.0.0.1:8774"\n',
    )
    loaded = CloudConfig.load_with_origins(
        file=path,
        environ={"PODIUM_RPC_WORKERS": "3", "PODIUM_HOST": "from-env", "PODIUM_OTHER": "x"},
        flags={"host": ("--host", "from-flag"), "rpc_timeout": ("--timeout", None)},
    )
    config = loaded.config
    assert (config.rpc_timeout, config.rpc_workers, config.host) == (5.0, 3, "from-flag")
    assert config.report_interval == 1.5
    assert loaded.origins["rpc_timeout"] == Origin("file", str(path))
    assert loaded.origins["rpc_workers"] == Origin("env", "PODIUM_RPC_WORKERS")
    assert loaded.origins["host"] == Origin("flag", "--host")
    assert loaded.origins["log_level"] == Origin("default")
    assert loaded.file == path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("Yes", True),
        ("on", True),
        ("1", True),
        ("false", False),
        ("no", False),
        ("0", False),
    ],
)
def test_a_boolean_variable_reads_the_usual_words(text: str, expected: bool) -> None:
    config = CloudConfig.load(environ={"PODIUM_FAKE_FAIL_BUILDS": text})
    assert config.fake_fail_builds is expected


def test_values_are_read_as_their_settings_types() -> None:
    config = CloudConfig.load(
        environ={
            "PODIUM_RPC_TIMEOUT": " 2.5 ",
            "PODIUM_API_RATE_LIMIT": "0",
            "PODIUM_LOG_LEVEL": "debug",
            "PODIUM_DATABASE_URL": "",
            "PODIUM_TRANSPORT_URL": "rabbit://u:p@broker:5672/",
        },
        flags={"rpc_workers": ("--workers", "12"), "api_listen": ("--listen", "0.0.0.0:0")},
    )
    assert config.rpc_timeout == 2.5 and config.api_rate_limit == 0
    assert config.rpc_workers == 12 and config.api_listen == "0.0.0.0:0"
    assert config.log_level == "DEBUG"
    # An empty variable is no database (not the empty URL).
    assert config.database_url is None
    assert config.transport_url == "rabbit://u:p@broker:5672/"


def test_a_whole_number_in_the_file_is_a_number_of_seconds(tmp_path: Path) -> None:
    config = CloudConfig.load(file=_file(tmp_path, "rpc_timeout = 7\n"), environ={})
    assert config.rpc_timeout == 7.0 and isinstance(config.rpc_timeout, float)


# -- every kind of wrong value, named with where it was written ------------------------


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("PODIUM_RPC_TIMEOUT", "abc", "PODIUM_RPC_TIMEOUT=abc (environment): not a number"),
        ("PODIUM_RPC_TIMEOUT", "nan", "PODIUM_RPC_TIMEOUT=nan (environment): not a finite number"),
        ("PODIUM_RPC_TIMEOUT", "0", "PODIUM_RPC_TIMEOUT=0 (environment): must be greater than 0"),
        ("PODIUM_RPC_WORKERS", "2.5", "PODIUM_RPC_WORKERS=2.5 (environment): not a whole number"),
        ("PODIUM_RPC_WORKERS", "0", "PODIUM_RPC_WORKERS=0 (environment): must be at least 1"),
        ("PODIUM_USE_LOCAL", "maybe", "PODIUM_USE_LOCAL=maybe (environment): not a boolean"),
        ("PODIUM_LOG_LEVEL", "loud", "PODIUM_LOG_LEVEL=loud (environment): not a log level"),
        ("PODIUM_HOST", "  ", "PODIUM_HOST='  ' (environment): must not be empty"),
        ("PODIUM_API_LISTEN", "8774", "PODIUM_API_LISTEN=8774 (environment): must be HOST:PORT"),
        (
            "PODIUM_TRANSPORT_URL",
            "rabit://u:S3cret@h/",
            "PODIUM_TRANSPORT_URL=rabit://u:***@h/ (environment): unknown transport 'rabit' "
            "(did you mean rabbit://?)",
        ),
        (
            "PODIUM_TRANSPORT_URL",
            "rabbit://u:S3cret@h:notaport/",
            "PODIUM_TRANSPORT_URL=rabbit://u:***@h:notaport/ (environment): invalid transport "
            "URL: host 1: port is not a number",
        ),
        (
            "PODIUM_DATABASE_URL",
            "mysql://u:S3cret@h/db",
            "PODIUM_DATABASE_URL=mysql://u:***@h/db (environment): Invalid database URL",
        ),
        ("PODIUM_DATABASE_URL", "postgres://u:S3cret@h/db", "did you mean postgresql+psycopg://?"),
    ],
)
def test_a_wrong_variable_is_named(variable: str, value: str, expected: str) -> None:
    text = _error(environ={variable: value})
    assert expected in text
    assert "S3cret" not in text


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('rpc_timeout = "abc"', 'rpc_timeout = "abc" in {path}: not a number'),
        ('rpc_workers = "8"', 'rpc_workers = "8" in {path}: not a whole number'),
        ('use_local = "yes"', 'use_local = "yes" in {path}: not a boolean'),
        ("host = 5", "host = 5 in {path}: not a string"),
        ("report_interval = -1", "report_interval = -1 in {path}: must be greater than 0"),
        ("max_build_attempts = 0", "max_build_attempts = 0 in {path}: must be at least 1"),
        ("rpc_timeout = [1]", "rpc_timeout = an array in {path}: not a number"),
        ('api_tokens = ["t0ken"]', 'api_tokens = "***" in {path}: not a string'),
        (
            'transport_url = "kafka://u:S3cret@h/"',
            "transport_url = \"kafka://u:***@h/\" in {path}: unknown transport 'kafka'",
        ),
    ],
)
def test_a_wrong_value_in_the_file_is_named(tmp_path: Path, line: str, expected: str) -> None:
    path = _file(tmp_path, line + "\n")
    text = _error(file=path)
    assert expected.format(path=path) in text
    assert "S3cret" not in text and "t0ken" not in text


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"rpc_workers": ("--workers", "abc")}, "--workers abc: not a whole number"),
        ({"rpc_workers": ("--workers", "0")}, "--workers 0: must be at least 1"),
        ({"fake_spawn_time": ("--spawn-time", "-1")}, "--spawn-time -1: must be at least 0"),
        ({"api_listen": ("--listen", "localhost")}, "--listen localhost: must be HOST:PORT"),
    ],
)
def test_a_wrong_flag_is_named(flags: dict[str, tuple[str, Any]], expected: str) -> None:
    assert expected in _error(flags=flags)


def test_every_wrong_value_is_reported_at_once(tmp_path: Path) -> None:
    path = _file(tmp_path, 'rpc_timeout = "x"\nrpc_timout = 3\n')
    text = _error(
        file=path, environ={"PODIUM_RPC_WORKERS": "many"}, flags={"api_listen": ("--listen", "x")}
    )
    parts = text.split("; ")
    assert len(parts) == 4
    assert "did you mean 'rpc_timeout'" in parts[0]
    assert "in " + str(path) in parts[1]
    assert "PODIUM_RPC_WORKERS" in parts[2] and "--listen" in parts[3]


def test_a_value_overridden_later_is_still_checked_where_it_won(tmp_path: Path) -> None:
    # The flag wins over the wrong variable: nothing of the variable is used.
    config = CloudConfig.load(
        environ={"PODIUM_RPC_WORKERS": "many"}, flags={"rpc_workers": ("--workers", "4")}
    )
    assert config.rpc_workers == 4


# -- the file: unknown keys and tables ------------------------------------------------------


def test_an_unknown_key_is_an_error_with_a_did_you_mean(tmp_path: Path) -> None:
    path = _file(tmp_path, "rpc_timout = 3\n")
    assert _error(file=path) == (
        f"unknown setting 'rpc_timout' in {path} (did you mean 'rpc_timeout'?)"
    )
    path = _file(tmp_path, "colour = 3\n")
    assert _error(file=path) == f"unknown setting 'colour' in {path}"


def test_an_unknown_table_is_an_error_and_client_is_known(tmp_path: Path) -> None:
    path = _file(tmp_path, '[clinet]\napi_url = "http://x"\n')
    assert _error(file=path) == f"unknown table [clinet] in {path} (did you mean [client]?)"
    path = _file(tmp_path, "[upgrade]\nx = 1\n")
    assert _error(file=path) == f"unknown table [upgrade] in {path} (known tables: [client])"
    path = _file(tmp_path, 'client = "x"\n')
    assert "client in " in _error(file=path) and "must be a table" in _error(file=path)
    path = _file(tmp_path, '[client]\napi_url = "http://x"\ntoken = "t"\n')
    assert CloudConfig.load(file=path, environ={}).host


def test_a_file_shared_with_an_applications_services_is_read_by_the_framework(
    tmp_path: Path,
) -> None:
    # The conductor reads ServiceConfig; the cloud's settings in the same file
    # are known keys (CloudConfig is imported), not typos.
    path = _file(tmp_path, 'transport_url = "rabbit://h/"\nreport_interval = 2\n')
    assert ServiceConfig.load(file=path, environ={}).transport_url == "rabbit://h/"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "does not exist"),
        (b"rpc_timeout = \n", "is not valid TOML"),
        (b"\xff\xfe", "is not UTF-8 text"),
    ],
)
def test_a_file_that_cannot_be_read_is_named(
    tmp_path: Path, content: bytes | None, expected: str
) -> None:
    path = tmp_path / "podium.toml"
    if content is not None:
        path.write_bytes(content)
    text = _error(file=path)
    assert str(path) in text and expected in text


# -- code that loads settings by itself --------------------------------------------------


def test_from_env_reads_the_running_commands_sources(tmp_path: Path) -> None:
    path = _file(tmp_path, "max_build_attempts = 7\nrpc_workers = 2\n")
    outside = CloudConfig.from_env(environ={"PODIUM_CONFIG": str(path)})
    assert outside.max_build_attempts == 7
    flags = {"rpc_workers": ("--workers", "5")}
    with command_sources(path, {"PODIUM_REPORT_INTERVAL": "3"}, flags):
        inside = CloudConfig.from_env()
    assert (inside.max_build_attempts, inside.report_interval, inside.rpc_workers) == (7, 3.0, 5)
    assert CloudConfig.from_env(environ={}, rpc_timeout=9).rpc_timeout == 9.0


# -- podium config show ---------------------------------------------------------------


def _show(*args: str, env: dict[str, str | None] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [*args], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_config_show_lists_every_setting_its_value_and_source(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        'database_url = "postgresql+psycopg://podium:S3cret@db/podium"\n'
        "rpc_workers = 4\n"
        '[client]\napi_url = "http://127.0.0.1:8774"\ntoken = "cl13nt-t0ken"\n',
    )
    env: dict[str, str | None] = {
        "PODIUM_TRANSPORT_URL": "rabbit://podium:Br0ker@mq:5672/",
        "PODIUM_API_TOKENS": "s3cr3t-t0ken=admin:admin:admin",
        "PODIUM_TOKEN": None,
        "PODIUM_API_URL": None,
    }
    code, out, err = _show("--config", str(path), "config", "show", env=env)
    assert (code, err) == (0, "")
    for secret in ("S3cret", "Br0ker", "s3cr3t-t0ken", "cl13nt-t0ken"):
        assert secret not in out
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:]}
    assert out.splitlines()[0] == f"configuration file: {path}"
    assert lines["database_url"] == ["postgresql+psycopg://podium:***@db/podium", "file", str(path)]
    assert lines["transport_url"] == [
        "rabbit://podium:***@mq:5672/",
        "env",
        "PODIUM_TRANSPORT_URL",
    ]
    assert lines["api_tokens"] == ["***", "env", "PODIUM_API_TOKENS"]
    assert lines["rpc_workers"] == ["4", "file", str(path)]
    assert lines["rpc_timeout"] == ["60.0", "default"]
    assert lines["report_interval"] == ["10.0", "default"]
    client = [line.split() for line in out.splitlines() if line.startswith("[client]")]
    assert ["[client]", "token", "***", "file", str(path)] in client
    assert ["[client]", "api_url", "http://127.0.0.1:8774", "file", str(path)] in client


def test_config_show_json_is_for_scripts(tmp_path: Path) -> None:
    code, out, _ = _show(
        "--debug",
        "config",
        "show",
        "--json",
        env={"PODIUM_RPC_TIMEOUT": "5", "PODIUM_API_TOKENS": "@/etc/podium/tokens"},
    )
    assert code == 0
    document = json.loads(out)
    settings = document["settings"]
    assert document["file"] is None
    assert settings["rpc_timeout"] == {
        "value": 5.0,
        "source": "env",
        "where": "PODIUM_RPC_TIMEOUT",
        "help": "seconds a call waits for its reply",
    }
    # A file that holds the tokens is named; its name is no secret.
    assert settings["api_tokens"]["value"] == "@/etc/podium/tokens"
    assert settings["transport_url"]["value"] is None
    assert settings["log_level"] == {**settings["log_level"], "value": "DEBUG", "where": "--debug"}
    assert settings["fake_fail_builds"]["value"] is False


def test_config_show_reports_a_wrong_value_like_any_command(tmp_path: Path) -> None:
    code, out, err = _show("config", "show", env={"PODIUM_RPC_TIMEOUT": "soon"})
    assert code == 1 and out == ""
    assert err == "Error: PODIUM_RPC_TIMEOUT=soon (environment): not a number\n"


def test_an_optional_setting_left_empty_in_the_environment_is_not_set() -> None:
    loaded = ServiceConfig.load(environ={"PODIUM_KEY_FILE": "", "PODIUM_POLICY_FILE": " "})
    assert loaded.key_file is None and loaded.policy_file is None
