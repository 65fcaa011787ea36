"""``podium db``: schema migrations (every branch), versions, archiving of deleted rows, pruning."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import click

from podium.exceptions import PodiumError

if TYPE_CHECKING:
    from podium.db.engine import Database

F = TypeVar("F", bound=Callable[..., Any])

#: Seconds: ``podium.db.inbox.DEFAULT_RETENTION``, which imports SQLAlchemy (a test
#: keeps the two equal).
DEFAULT_INBOX_RETENTION = 3600


def _database_url_option(function: F) -> F:
    option = click.option(
        "--database-url",
        metavar="URL",
        help=(
            "sqlite:///PATH, postgresql+psycopg://USER:PASS@HOST/DB or "
            "mysql+pymysql://USER:PASS@HOST/DB [PODIUM_DATABASE_URL, or database_url in "
            "the configuration file]"
        ),
    )
    return option(function)


@contextmanager
def _opened(database_url: str | None) -> Iterator[Database]:
    """The command's Database; a wrong setting or a podium error is one line, exit 1.

    No database given is an error: a default file would be made, empty,
    wherever the command happens to run.
    """
    from podium.config_cli import (
        command_flags,
        import_app_settings,
        load_settings,
        require_database,
    )
    from podium.db.engine import Database
    from podium.service.config import ServiceConfig

    import_app_settings()
    flags = command_flags(database_url=("--database-url", database_url))
    config = load_settings(ServiceConfig, flags).config
    database = Database(require_database(config, click.get_current_context().command_path))
    try:
        yield database
    except PodiumError as error:
        raise click.ClickException(str(error)) from None
    finally:
        database.dispose()


@click.group()
def group() -> None:
    """Database schema and maintenance (the conductor's database)."""


@group.command()
@_database_url_option
def sync(database_url: str | None) -> None:
    """Apply the schema migrations of podium and of every installed application."""
    from podium.db import migration

    with _opened(database_url) as database:
        before = migration.current_version(database)
        after = migration.sync(database)
    click.echo(f"{database.safe_url}:")
    width = max(len(branch) for branch in after)
    for branch, version in after.items():
        was = before.get(branch)
        change = f"already at {version}" if was == version else f"{was or 'empty'} -> {version}"
        click.echo(f"{branch:<{width}}  {change}")


@group.command()
@_database_url_option
def version(database_url: str | None) -> None:
    """Print each branch's schema version, one per line ("none" if never migrated)."""
    from podium.db import migration

    with _opened(database_url) as database:
        current = migration.current_version(database)
        behind = migration.branches_behind(current)
    for branch, revision in current.items():
        click.echo(f"{branch} {revision or 'none'}")
    if behind:
        newest = ", ".join(f"{branch} {head}" for branch, head in behind.items())
        click.echo(f"(newest is {newest}; run `podium db sync`)", err=True)


@group.command("archive-deleted-rows")
@_database_url_option
@click.option(
    "--before",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]),
    help="Only rows deleted before this date/time (UTC).",
)
@click.option("--max-rows", type=click.IntRange(min=0), help="Stop after this many rows in total.")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Rows moved per transaction.",
)
def archive_deleted_rows(
    database_url: str | None, before: datetime | None, max_rows: int | None, batch_size: int
) -> None:
    """Move soft-deleted rows into the shadow tables, one transaction per batch."""
    from podium.db import archive, migration

    with _opened(database_url) as database:
        current = migration.current_version(database)
        if not any(current.values()):
            raise PodiumError(
                f"{database.safe_url} has no podium schema; run `podium db sync` first"
            )
        counts = archive.archive_deleted_rows(
            database, before=before, max_rows=max_rows, batch_size=batch_size
        )
    width = max(len("total"), *(len(name) for name in counts))
    click.echo(f"{'table':<{width}}  archived")
    for name, count in counts.items():
        click.echo(f"{name:<{width}}  {count:>8}")
    click.echo(f"{'total':<{width}}  {sum(counts.values()):>8}")


@group.command("prune-inbox")
@_database_url_option
@click.option(
    "--older-than",
    type=click.IntRange(min=0),
    default=DEFAULT_INBOX_RETENTION,
    show_default=True,
    metavar="SECONDS",
    help="Delete records older than this; keep it well above the longest redelivery window.",
)
def prune_inbox(database_url: str | None, older_than: int) -> None:
    """Delete old request records (the conductor's inbox, the RPC de-dup table)."""
    from podium.db import inbox

    with _opened(database_url) as database:
        pruned = inbox.prune_inbox(database, older_than=timedelta(seconds=older_than))
    click.echo(f"pruned {pruned} request records older than {older_than} s")
