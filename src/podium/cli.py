"""The ``podium`` command.

Each layer owns its sub-commands (``podium.<layer>.cli:group``); they are
imported only when invoked, so ``podium --help`` stays fast and a worker host
never imports the DB layer just to print help.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

_SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "objects": ("podium.objects.cli", "group"),
    "db": ("podium.db.cli", "group"),
    "conductor": ("podium.conductor.cli", "command"),
    "demo": ("podium.cloud.demo", "command"),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *_SUBCOMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _SUBCOMMANDS:
            module_name, attr = _SUBCOMMANDS[cmd_name]
            command: Any = getattr(importlib.import_module(module_name), attr)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup)
@click.version_option(package_name="podium")
def main() -> None:
    """podium: versioned objects over a message bus, one conductor at the DB."""
