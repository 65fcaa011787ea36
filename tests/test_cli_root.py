"""The root ``podium`` command: mistakes in one line, tracebacks only on request."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

import podium.cli
from podium.apps import App


@click.command()
def boom() -> None:
    """Fail the way a bug would."""
    raise ZeroDivisionError("an unexpected failure")


@pytest.fixture
def with_boom(monkeypatch: pytest.MonkeyPatch) -> None:
    app = App(name="tester", commands={"boom": f"{__name__}:boom"})
    monkeypatch.setattr(podium.cli, "installed_apps", lambda: (app,))


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["dbb"], "No such command 'dbb'. Did you mean 'db'? (see `podium --help`)"),
        (["--bogus"], "No such option '--bogus'"),
        (["db", "sycn"], "No such command 'sycn'. Did you mean 'sync'? (see `podium db --help`)"),
        (["objects", "versions", "--jsn"], "No such option '--jsn'. Did you mean '--json'?"),
        (["db", "prune-inbox", "--older-than", "-5"], "Invalid value for '--older-than'"),
    ],
)
def test_a_usage_mistake_is_one_line_naming_where_to_read_more(
    argv: list[str], expected: str
) -> None:
    result = CliRunner().invoke(podium.cli.main, argv, prog_name="podium")
    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert expected in lines[0] and "--help`)" in lines[0]


def test_an_unexpected_failure_is_one_line_unless_debug(with_boom: None) -> None:
    result = CliRunner().invoke(podium.cli.main, ["boom"])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "Error: ZeroDivisionError: an unexpected failure "
        "(run `podium --debug ...` for the traceback)"
    ]
    debug = CliRunner().invoke(podium.cli.main, ["--debug", "boom"])
    assert isinstance(debug.exception, ZeroDivisionError)


def test_the_global_options_reach_the_sub_command(
    with_boom: None, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[podium.cli.CliOptions] = []

    @click.command()
    def show() -> None:
        seen.append(podium.cli.cli_options())

    app = App(name="tester", commands={"show": f"{__name__}:SHOW"})
    monkeypatch.setattr(podium.cli, "installed_apps", lambda: (app,))
    monkeypatch.setitem(globals(), "SHOW", show)
    monkeypatch.setenv("PODIUM_CONFIG", "/etc/podium/podium.toml")
    assert CliRunner().invoke(podium.cli.main, ["--debug", "show"]).exit_code == 0
    assert seen == [
        podium.cli.CliOptions(config=podium.cli.Path("/etc/podium/podium.toml"), debug=True)
    ]
    assert podium.cli.cli_options() == podium.cli.CliOptions()
