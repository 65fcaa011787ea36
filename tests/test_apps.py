"""podium.apps: App checks, entry point loading, and the commands ``podium`` lists."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import EntryPoint

import click
import pytest
from click.testing import CliRunner

import podium.apps
import podium.cli
from podium.apps import App, installed_apps
from podium.exceptions import AppError

GREET = click.Command("greet", callback=lambda: click.echo("hello"), help="Say hello.")
NOT_AN_APP = "a string"


def test_app_fields_are_checked() -> None:
    with pytest.raises(AppError, match="lower-case"):
        App(name="Bad Name")
    with pytest.raises(AppError, match="framework's own branch"):
        App(name="podium")
    with pytest.raises(AppError, match="models must be a tuple"):
        App(name="a", models=["x.models"])  # type: ignore[arg-type]
    with pytest.raises(AppError, match="is not 'module:attribute'"):
        App(name="a", commands={"go": "no_colon"})
    app = App(name="a", commands={"go": "m:attr"})
    with pytest.raises(TypeError):
        app.commands["other"] = "m:x"  # type: ignore[index]


def _entry_points(monkeypatch: pytest.MonkeyPatch, *values: tuple[str, str]) -> None:
    points = [EntryPoint(name, value, podium.apps.ENTRY_POINT_GROUP) for name, value in values]
    monkeypatch.setattr(podium.apps, "entry_points", lambda group: points)
    installed_apps.cache_clear()


def test_installed_apps_say_which_entry_point_is_broken(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        _entry_points(monkeypatch, ("bad", "no_such_module_here:APP"))
        with pytest.raises(AppError, match=r"'bad' \(no_such_module_here:APP\) does not load"):
            installed_apps()
        _entry_points(monkeypatch, ("odd", f"{__name__}:NOT_AN_APP"))
        with pytest.raises(AppError, match=r"'odd' .* is a str, not a podium\.apps\.App"):
            installed_apps()
    finally:
        installed_apps.cache_clear()


def test_podium_lists_and_runs_an_apps_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    app = App(name="greeter", commands={"greet": f"{__name__}:GREET"})
    monkeypatch.setattr(podium.cli, "installed_apps", lambda: (app,))
    result = CliRunner().invoke(podium.cli.main, ["--help"])
    assert result.exit_code == 0, result.output
    assert "greet" in result.output and "Say hello." in result.output
    assert "conductor" in result.output and "db" in result.output
    assert CliRunner().invoke(podium.cli.main, ["greet"]).output == "hello\n"
    clash = App(name="clash", commands={"db": f"{__name__}:GREET"})
    monkeypatch.setattr(podium.cli, "installed_apps", lambda: (clash,))
    result = CliRunner().invoke(podium.cli.main, ["db"])
    assert result.exit_code == 1 and "'clash' declares the command 'db'" in result.output


def test_loading_the_apps_imports_no_sqlalchemy() -> None:
    code = (
        "import sys, podium.cli\n"
        "apps = podium.cli.installed_apps()\n"
        "podium.cli._subcommands()\n"
        "print(len(apps), 'sqlalchemy' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    count, imported = done.stdout.split()
    assert int(count) >= 1 and imported == "False"
