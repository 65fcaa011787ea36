"""``podium conductor``: run a conductor until SIGTERM/SIGINT; ``podium policy``: its rules."""

from __future__ import annotations

import importlib
import logging
import signal
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from podium.exceptions import PodiumError
from podium.service import ServiceConfig, StopSignals, freeze_heap, setup_logging

if TYPE_CHECKING:
    from podium.conductor.service import ConductorService
    from podium.db import Database
    from podium.rpc import Transport

LOG = logging.getLogger(__name__)


@click.command()
@click.option(
    "--transport-url",
    metavar="URL",
    help="the bus the services share: rabbit://USER:PASS@HOST:5672/ [PODIUM_TRANSPORT_URL]",
)
@click.option("--database-url", metavar="URL", help="SQLAlchemy URL [PODIUM_DATABASE_URL]")
@click.option("--host", help="this conductor's server name [PODIUM_HOST]")
@click.option("--workers", "rpc_workers", metavar="N", help="concurrent calls [PODIUM_RPC_WORKERS]")
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
    metavar="SECONDS",
    help="keep request records this long (0: never prune here, use `podium db prune-inbox`) "
    "[PODIUM_INBOX_RETENTION, 3600]",
)
def command(
    transport_url: str | None,
    database_url: str | None,
    host: str | None,
    rpc_workers: str | None,
    object_modules: tuple[str, ...],
    sync_db: bool,
    inbox_retention: str | None,
) -> None:
    """Serve object calls for workers that hold no database credentials.

    Serves the objects and conductor endpoints of every installed application
    (entry point group ``podium.apps``).
    """
    from podium.config_cli import (
        command_flags,
        import_app_settings,
        load_settings,
        require_bus,
        require_database,
        settings_in_effect,
    )

    # The apps' settings may share the configuration file: known keys, not typos.
    import_app_settings()
    flags = command_flags(
        transport_url=("--transport-url", transport_url),
        database_url=("--database-url", database_url),
        host=("--host", host),
        rpc_workers=("--workers", rpc_workers),
        inbox_retention=("--inbox-retention", inbox_retention),
    )
    loaded = load_settings(ServiceConfig, flags)
    config = loaded.config
    require_bus(config, "podium conductor")
    database_url = require_database(config, "podium conductor")
    for module in object_modules:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise click.ClickException(f"--objects {module}: cannot import it ({error})") from None
    setup_logging(config.log_level)
    with settings_in_effect(loaded, flags):
        service, transport, database, schema = _start(config, database_url, sync_db)
    _serve(config, service, transport, database, schema)


def _start(
    config: ServiceConfig, database_url: str, sync_db: bool
) -> tuple[ConductorService, Transport, Database, dict[str, str]]:
    """The conductor started: a failure says why in one line and leaves nothing open."""
    from podium.apps import conductor_endpoints, import_modules, installed_apps
    from podium.conductor.policy import policy_of
    from podium.conductor.service import ConductorService
    from podium.db import Database
    from podium.db.migration import check_schema, current_version, sync
    from podium.rpc import get_transport

    # One pooled connection per worker: fewer and every burst opens new ones.
    database = Database(database_url, pool_size=config.rpc_workers)
    transport = None
    try:
        apps = installed_apps()
        import_modules(apps, "objects")
        # Parsing the transport URL opens nothing: its mistakes come first.
        # The apps' errors reach their callers as themselves, like podium's.
        transport = get_transport(config.transport_url, signing=config.message_signing("conductor"))
        transport.allowed_remote_exmods.extend(
            module for app in apps for module in app.remote_exceptions
        )
        transport.connect(config.connect_timeout)
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
        policy = policy_of(apps, config.policy_file)
        endpoints = conductor_endpoints(apps, transport, database, config.host)
        service = ConductorService(
            transport,
            database,
            host=config.host,
            topic=config.conductor_topic,
            workers=config.rpc_workers,
            inbox_retention=(
                timedelta(seconds=config.inbox_retention) if config.inbox_retention else None
            ),
            endpoints=endpoints,
            policy=policy,
        )
        service.start()
    except BaseException as error:
        if transport is not None:
            transport.cleanup()
        database.dispose()
        if isinstance(error, PodiumError):
            # Start-up problems are the operator's to fix: say what, not where in our code.
            raise click.ClickException(str(error)) from None
        raise
    return service, transport, database, schema


def _serve(
    config: ServiceConfig,
    service: ConductorService,
    transport: Transport,
    database: Database,
    schema: dict[str, str],
) -> None:
    from podium.db.migration import head_versions
    from podium.rpc import TransportURL

    heads = head_versions()
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
        freeze_heap()
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


@click.group()
def policy() -> None:
    """The conductor's policy: who may make which object call."""


@policy.command("list")
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
    from podium.config_cli import command_flags, import_app_settings, load_settings

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
        if name not in policy.defaults:
            mark = "  (added)"
        elif policy.defaults[name] != text:
            mark = "  (overridden)"
        else:
            mark = ""
        click.echo(f"{name:<{width}}  {text or '@'}{mark}")
