"""``podium config show``, and how every command loads its settings.

A command calls :func:`load_settings` with its flags; the configuration file
(``--config`` / ``PODIUM_CONFIG``) and the environment come from here, and a
wrong value ends the command with one line saying what and where.

Cheap to import: the settings classes are light, pydantic is imported when
the settings are checked.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

import click

from podium.cli import cli_options
from podium.config import ConfigError, config_file, read_config_file
from podium.exceptions import PodiumError
from podium.service.config import (
    LoadedConfig,
    Origin,
    ServiceConfig,
    command_sources,
    show_value,
)

__all__ = [
    "command_flags",
    "group",
    "import_app_settings",
    "load_settings",
    "require_bus",
    "require_database",
    "settings_in_effect",
]

C = TypeVar("C", bound=ServiceConfig)

#: The client's settings (the ``[client]`` table) and the variables that override them.
CLIENT_ENV = {"api_url": "PODIUM_API_URL", "token": "PODIUM_TOKEN", "timeout": None}


def command_flags(**flags: tuple[str, Any]) -> dict[str, tuple[str, Any]]:
    """Setting -> (flag as typed, value), with ``--debug`` as ``log_level=DEBUG``."""
    chosen = dict(flags)
    if cli_options().debug and chosen.get("log_level", ("", None))[1] is None:
        chosen["log_level"] = ("--debug", "DEBUG")
    return chosen


def import_app_settings() -> None:
    """Import the settings classes of the installed applications.

    A file shared by every service of a host holds their settings too, and
    only settings of an imported class are known keys. An application's
    settings are those its conductor endpoints take, so importing the
    endpoints' module imports them.
    """
    from podium.apps import installed_apps

    try:
        for app in installed_apps():
            reference = getattr(app, "settings", None) or app.conductor_endpoints
            if reference:
                importlib.import_module(reference.partition(":")[0])
    except (PodiumError, ImportError) as error:
        raise click.ClickException(f"cannot load the installed applications: {error}") from None


def load_settings(
    cls: type[C], flags: Mapping[str, tuple[str, Any]] | None = None
) -> LoadedConfig[C]:
    """``cls``'s settings from the file, the environment and ``flags``; one line if wrong."""
    try:
        return cls.load_with_origins(
            file=config_file(cli_options().config), environ=os.environ, flags=flags
        )
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


def require_bus(config: ServiceConfig, binary: str) -> None:
    """Refuse to run a stand-alone service with no bus, or with a private ``memory://`` one."""
    if not config.transport_url:
        raise click.ClickException(
            f"{binary} needs the message bus the other services use: pass --transport-url, "
            "set PODIUM_TRANSPORT_URL, or set transport_url in the configuration file "
            "(--config)"
        )
    if config.transport_url.partition("://")[0].lower() == "memory":
        raise click.ClickException(
            f"{binary} on memory:// would be alone on a bus private to its process: give "
            "it the bus the other services use (rabbit://USER:PASS@HOST:5672/)" + _all_in_one_hint()
        )


def require_database(config: ServiceConfig, command: str) -> str:
    """The database URL, or one line saying the three ways to give it."""
    if config.database_url is None:
        raise click.ClickException(
            f"{command} needs a database: pass --database-url, set PODIUM_DATABASE_URL, "
            "or set database_url in the configuration file (--config)"
        )
    return config.database_url


def _all_in_one_hint() -> str:
    from podium.apps import installed_apps

    try:
        offered = any("all-in-one" in app.commands for app in installed_apps())
    except PodiumError:
        offered = False
    return "; to run everything in one process, use `podium all-in-one`" if offered else ""


@contextmanager
def settings_in_effect(
    loaded: LoadedConfig[Any], flags: Mapping[str, tuple[str, Any]]
) -> Iterator[None]:
    """Code run in the block that loads settings by itself sees the command's sources."""
    with command_sources(loaded.file, os.environ, flags):
        yield


@click.group()
def group() -> None:
    """The configuration: file (--config, PODIUM_CONFIG), PODIUM_* variables, flags."""


def _leaf_classes() -> list[type[ServiceConfig]]:
    found: list[type[ServiceConfig]] = []
    pending: list[type[ServiceConfig]] = [ServiceConfig]
    while pending:
        cls = pending.pop()
        subclasses = cls.__subclasses__()
        if subclasses:
            pending.extend(subclasses)
        else:
            found.append(cls)
    return found


def _source(origin: Origin) -> dict[str, str]:
    return {"source": origin.kind, "where": origin.where}


def _client_rows(file: Path | None) -> dict[str, dict[str, Any]]:
    table: Mapping[str, Any] = {}
    if file is not None:
        document = read_config_file(file)
        found = document.get("client", {})
        table = found if isinstance(found, dict) else {}
    rows: dict[str, dict[str, Any]] = {}
    for key in sorted({*CLIENT_ENV, *table}):
        variable = CLIENT_ENV.get(key)
        if variable is not None and variable in os.environ:
            value: Any = os.environ[variable]
            origin = Origin("env", variable)
        elif key in table:
            value, origin = table[key], Origin("file", str(file))
        else:
            value, origin = None, Origin("default")
        if key == "token" and value:
            value = "***"
        rows[key] = {"value": value, **_source(origin)}
    return rows


@group.command()
@click.option("--json", "as_json", is_flag=True, help="print JSON: each setting's value and source")
def show(as_json: bool) -> None:
    """Print every setting, its value and where it came from (passwords and tokens masked).

    A wrong value is reported as any command would report it.
    """
    import_app_settings()
    settings: dict[str, dict[str, Any]] = {}
    file = None
    for cls in _leaf_classes():
        loaded = load_settings(cls, command_flags())
        file = loaded.file
        for spec in fields(cls):
            value = getattr(loaded.config, spec.name)
            if value is None or value == "":
                value = None
            elif spec.metadata.get("secret"):
                value = show_value(spec, value)
            settings.setdefault(
                spec.name,
                {
                    "value": value,
                    **_source(loaded.origins[spec.name]),
                    "help": spec.metadata.get("help", ""),
                },
            )
    try:
        client = _client_rows(file)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        document = {"file": str(file) if file else None, "settings": settings, "client": client}
        click.echo(json.dumps(document, indent=2))
        return
    click.echo(f"configuration file: {file if file else '(none)'}")
    rows = [(name, row) for name, row in settings.items()]
    rows += [(f"[client] {name}", row) for name, row in client.items()]
    width = max(len(name) for name, _ in rows)
    values = [_text(row["value"]) for _, row in rows]
    value_width = min(max(len(text) for text in values), 48)
    for (name, row), text in zip(rows, values, strict=True):
        where = row["source"] + (f" {row['where']}" if row["where"] else "")
        click.echo(f"{name:<{width}}  {text:<{value_width}}  {where}")


def _text(value: Any) -> str:
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):  # a table setting, as its variable is written
        return ",".join(f"{key}={entry}" for key, entry in value.items()) or "(not set)"
    return str(value)
