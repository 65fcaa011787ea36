"""``podium conductor``: run a conductor until SIGTERM/SIGINT."""

from __future__ import annotations

import importlib
import logging
import signal
from datetime import timedelta

import click

from podium.exceptions import PodiumError
from podium.service import ServiceConfig, StopSignals, setup_logging

LOG = logging.getLogger(__name__)


@click.command()
@click.option(
    "--transport-url", help="memory:// or rabbit://user:pass@host:5672/ [PODIUM_TRANSPORT_URL]"
)
@click.option("--database-url", help="SQLAlchemy URL [PODIUM_DATABASE_URL]")
@click.option("--host", help="this conductor's server name [PODIUM_HOST]")
@click.option("--workers", "rpc_workers", type=int, help="concurrent calls [PODIUM_RPC_WORKERS]")
@click.option(
    "--objects",
    "object_modules",
    multiple=True,
    help="module(s) whose object classes this conductor serves, beside those of every "
    "installed application",
)
@click.option("--sync-db/--no-sync-db", default=False, help="apply migrations first")
@click.option(
    "--inbox-retention",
    type=click.IntRange(min=0),
    default=3600,
    show_default=True,
    envvar="PODIUM_INBOX_RETENTION",
    metavar="SECONDS",
    help="keep request records this long (0: never prune here, use `podium db prune-inbox`) "
    "[PODIUM_INBOX_RETENTION]",
)
def command(
    transport_url: str | None,
    database_url: str | None,
    host: str | None,
    rpc_workers: int | None,
    object_modules: tuple[str, ...],
    sync_db: bool,
    inbox_retention: int,
) -> None:
    """Serve object calls for workers that hold no database credentials.

    Serves the objects and conductor endpoints of every installed application
    (entry point group ``podium.apps``).
    """
    from podium.apps import import_modules, installed_apps, resolve
    from podium.conductor.service import ConductorService
    from podium.db import Database
    from podium.db.migration import check_schema, current_version, head_versions, sync
    from podium.rpc import TransportURL, get_transport

    config = ServiceConfig.from_env(
        transport_url=transport_url,
        database_url=database_url,
        host=host,
        rpc_workers=rpc_workers,
    )
    setup_logging(config.log_level)
    # One pooled connection per worker: fewer and every burst opens new ones.
    database = Database(config.database_url, pool_size=config.rpc_workers)
    try:
        apps = installed_apps()
        import_modules(apps, "objects")
        for module in object_modules:
            importlib.import_module(module)
        # Parsing the transport URL opens nothing: its mistakes come first.
        # The apps' errors reach their callers as themselves, like podium's.
        transport = get_transport(config.transport_url)
        transport.allowed_remote_exmods.extend(
            module for app in apps for module in app.remote_exceptions
        )
        if sync_db:
            before = current_version(database)
            after = sync(database)
            for branch, version in after.items():
                if before.get(branch) != version:
                    LOG.info(
                        "database branch %s migrated from %s to %s",
                        branch,
                        before.get(branch) or "none",
                        version,
                    )
        schema = check_schema(database)
        heads = head_versions()
        endpoints = [
            endpoint
            for app in apps
            if app.conductor_endpoints is not None
            for endpoint in resolve(app, app.conductor_endpoints)(transport, database, config.host)
        ]
        service = ConductorService(
            transport,
            database,
            host=config.host,
            topic=config.conductor_topic,
            workers=config.rpc_workers,
            inbox_retention=timedelta(seconds=inbox_retention) if inbox_retention else None,
            endpoints=endpoints,
        )
        service.start()
    except PodiumError as exc:
        # Start-up problems are the operator's to fix: say what, not where in our code.
        raise click.ClickException(str(exc)) from None
    # Stop signals are caught before "ready" is announced; until then (start-up,
    # connection retries) Ctrl-C and SIGTERM act at once.
    with transport, StopSignals() as stop_signals:
        LOG.info(
            "conductor %s serving topic %r on %s, database %s at schema %s",
            config.host,
            config.conductor_topic,
            TransportURL.masked(config.transport_url),
            database.safe_url,
            ", ".join(f"{branch} {version}" for branch, version in schema.items()),
        )
        for branch, version in schema.items():
            if version != heads[branch]:
                LOG.warning(
                    "database branch %s at %s is newer than this conductor's %s: serving it "
                    "(a rolling upgrade); upgrade this conductor next",
                    branch,
                    version,
                    heads[branch],
                )
        # Flushed on its own line so a parent process can wait for readiness.
        click.echo(f"podium-conductor ready host={config.host}", err=False)
        signum = stop_signals.wait()
        LOG.info(
            "conductor %s stopping on %s: taking no new requests, finishing those in hand",
            config.host,
            signal.Signals(signum).name,
        )
        service.stop()
        service.wait()
        database.dispose()
    LOG.info("conductor %s stopped", config.host)
