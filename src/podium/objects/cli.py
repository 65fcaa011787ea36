"""``podium objects``: commands of this layer."""

from __future__ import annotations

import importlib
import json

import click


@click.group()
def group() -> None:
    """Commands of the objects layer."""


@group.command("versions")
@click.option(
    "--module",
    "-m",
    "modules",
    multiple=True,
    metavar="PKG.MOD",
    help="Import this module first (it registers objects); repeatable.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print a JSON table (the expected-file format)."
)
@click.option(
    "--check",
    "expected_file",
    metavar="FILE",
    help="Compare with this expected table; exit 1 on any difference.",
)
def versions(modules: tuple[str, ...], as_json: bool, expected_file: str | None) -> None:
    """Print the version fingerprint of every registered object."""
    # Here, not at the top: `podium --help` imports this module for its help line.
    from podium.objects.fixture import ObjectVersionChecker

    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise click.ClickException(f"--module {name}: cannot import it ({exc})") from None
    checker = ObjectVersionChecker()
    hashes = checker.get_hashes()
    if expected_file is not None:
        expected = _expected(expected_file)
        want, have = checker.test_hashes(expected)
        if want != have:
            click.echo(checker.explain(want, have), err=True)
            raise SystemExit(1)
        click.echo(f"{len(hashes)} object fingerprints match {expected_file}")
        return
    if as_json:
        click.echo(json.dumps(hashes, indent=4, sort_keys=True))
        return
    if not hashes:
        click.echo("no registered objects (use --module to import the modules defining them)")
        return
    width = max(len(name) for name in hashes)
    for name, fingerprint in hashes.items():
        click.echo(f"{name:<{width}}  {fingerprint}")


def _expected(path: str) -> dict[str, str]:
    """The expected table of ``--check``; whatever is wrong with the file, in one line."""
    from podium.objects.fixture import load_expected

    where = f"--check {path}"
    try:
        return load_expected(path)
    except FileNotFoundError:
        raise click.ClickException(f"{where}: no such file") from None
    except IsADirectoryError:
        raise click.ClickException(f"{where}: a directory, not a file") from None
    except OSError as exc:
        raise click.ClickException(f"{where}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise click.ClickException(f"{where}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise click.ClickException(
            f"{where}: not valid JSON ({exc.msg}, line {exc.lineno} column {exc.colno})"
        ) from None
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
