"""The ``podium`` command.

Each layer owns its sub-commands (``podium.<layer>.cli:group``), and every
installed application adds its own (``App.commands``); they are imported only
when invoked, so ``podium --help`` stays fast and a worker host never imports
the DB layer just to print help (loading the Apps imports no SQLAlchemy).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from podium.apps import installed_apps, resolve
from podium.config import CONFIG_ENV
from podium.exceptions import AppError

__all__ = ["CliOptions", "UsageLine", "cli_options", "main"]


@dataclass(frozen=True)
class CliOptions:
    """The options given before the sub-command (``podium --config F --debug ...``)."""

    config: Path | None = None
    debug: bool = False


def cli_options() -> CliOptions:
    """The running command's global options (defaults outside a ``podium`` command)."""
    context = click.get_current_context(silent=True)
    found = context.find_object(CliOptions) if context is not None else None
    return found if found is not None else CliOptions()


_FRAMEWORK_COMMANDS: dict[str, str] = {
    "objects": "podium.objects.cli:group",
    "db": "podium.db.cli:group",
    "conductor": "podium.conductor.cli:command",
    "config": "podium.config_cli:group",
    "keys": "podium.keys_cli:group",
    "policy": "podium.conductor.cli:policy",
    "broker": "podium.broker_cli:group",
}


def _subcommands() -> dict[str, tuple[str, str]]:
    """Command name -> (who provides it, "module:attr"); the framework's come first."""
    commands = {name: ("podium", reference) for name, reference in _FRAMEWORK_COMMANDS.items()}
    try:
        apps = installed_apps()
    except AppError as error:
        # A broken installation is the operator's to fix: one line, no traceback.
        raise click.ClickException(str(error)) from None
    for app in apps:
        for name, reference in app.commands.items():
            if name in commands:
                owner = commands[name][0]
                raise click.ClickException(
                    f"application {app.name!r} declares the command {name!r}, "
                    f"which {owner!r} already has"
                )
            commands[name] = (app.name, reference)
    return commands


class UsageLine(click.ClickException):
    """A usage mistake, told in one line with where to read more (click prints three)."""

    exit_code = 2

    @classmethod
    def of(cls, error: click.UsageError) -> UsageLine:
        where = f" (see `{error.ctx.command_path} --help`)" if error.ctx is not None else ""
        return cls(f"{error.format_message()}{where}")


class _LazyGroup(click.Group):
    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as error:
            raise UsageLine.of(error) from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *_subcommands()])

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand as error:
            # click suggests from the commands it holds; this group holds none until asked.
            raise click.exceptions.NoSuchCommand(
                error.command_name, possibilities=self.list_commands(ctx), ctx=ctx
            ) from None

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = _subcommands().get(cmd_name)
        if found is None:
            return super().get_command(ctx, cmd_name)
        owner, reference = found
        if owner == "podium":
            module_name, _, attr = reference.partition(":")
            command: Any = getattr(importlib.import_module(module_name), attr)
        else:
            app = next(app for app in installed_apps() if app.name == owner)
            try:
                command = resolve(app, reference)
            except AppError as error:
                raise click.ClickException(str(error)) from None
        if not isinstance(command, click.Command):
            raise click.ClickException(f"{reference} ({owner}) is not a click command")
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as error:
            raise UsageLine.of(error) from None
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            raise click.Abort() from None
        except Exception as error:
            options = ctx.find_object(CliOptions)
            if options is not None and options.debug:
                raise
            # A person reads this, not a developer: one line, and how to get more.
            from podium._text import text_of

            raise click.ClickException(
                f"{type(error).__name__}: {text_of(error)} (run `podium --debug ...` for the "
                "traceback)"
            ) from None


@click.group(cls=_LazyGroup)
@click.version_option(package_name="podium")
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=CONFIG_ENV,
    help=f"TOML configuration file [{CONFIG_ENV}]; environment variables and flags override it",
)
@click.option("--debug", is_flag=True, help="show tracebacks and debug logs")
@click.pass_context
def main(ctx: click.Context, config: Path | None, debug: bool) -> None:
    """podium: versioned objects over a message bus, one conductor at the DB."""
    ctx.obj = CliOptions(config=config, debug=debug)
