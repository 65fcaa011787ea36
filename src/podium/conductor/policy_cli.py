"""``podium policy``: the rules the conductor enforces, as this host's settings make them."""

from __future__ import annotations

from pathlib import Path

import click

from podium.config_cli import command_flags, import_app_settings, load_settings
from podium.service.config import ServiceConfig

__all__ = ["group"]


@click.group()
def group() -> None:
    """The conductor's policy: who may make which object call."""


@group.command("list")
@click.option(
    "--policy-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="overrides to apply (TOML: rule name = rule) [policy_file]",
)
def list_rules(policy_file: Path | None) -> None:
    """Every rule, the installed applications' defaults with the file's overrides.

    A rule that does not parse, names an unknown rule or refers to itself
    ends the command with the reason, as it would stop the conductor.
    """
    from podium.apps import installed_apps
    from podium.conductor.policy import PolicyError, policy_of

    import_app_settings()
    flags = command_flags(policy_file=("--policy-file", str(policy_file) if policy_file else None))
    config = load_settings(ServiceConfig, flags).config
    try:
        policy = policy_of(installed_apps(), config.policy_file)
    except PolicyError as error:
        raise click.ClickException(str(error)) from None
    if policy is None:
        click.echo("no policy: the installed applications bring no rules, and no policy_file")
        return
    width = max(len(name) for name in policy.texts)
    for name in sorted(policy.texts, key=lambda name: (":" in name, name)):
        text = policy.texts[name]
        changed = policy.defaults.get(name) != text
        mark = "  (overridden)" if changed and name in policy.defaults else ""
        mark = mark or ("  (added)" if changed else "")
        click.echo(f"{name:<{width}}  {text or '@'}{mark}")
