"""``podium api|scheduler|compute|all-in-one``: the cloud's services as processes.

Each worker service holds no database credentials: it calls
``block_db_access()`` first and reaches the database only through the
conductor on the bus. ``podium conductor`` (the framework's command) serves
the cloud too, since the cloud is an installed app.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from podium.cloud.app import APP
from podium.exceptions import PodiumError

if TYPE_CHECKING:
    from podium.cloud.config import CloudConfig

LOG = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


def _service_options(function: F) -> F:
    function = click.option(
        "--transport-url",
        metavar="URL",
        help="rabbit://user:pass@host:5672/ the services share [PODIUM_TRANSPORT_URL]",
    )(function)
    function = click.option("--host", help="this service's host name [PODIUM_HOST]")(function)
    return function


def _config(**flags: tuple[str, Any]) -> CloudConfig:
    """The settings from the file, the environment and these flags; one line if one is wrong."""
    from podium.cloud.config import CloudConfig
    from podium.config_cli import command_flags, import_app_settings, load_settings

    # Other applications' settings may share the configuration file.
    import_app_settings()
    config = load_settings(CloudConfig, command_flags(**flags)).config
    from podium.cloud.releases import UnknownRelease, check_upgrade_levels

    try:
        check_upgrade_levels(config.upgrade_levels)
    except UnknownRelease as error:
        raise click.UsageError(str(error)) from None
    return config


def worker_exceptions() -> list[str]:
    """Exception modules a cloud service re-raises as themselves."""
    return ["podium.exceptions", *APP.remote_exceptions]


@contextmanager
def _worker(config: CloudConfig, binary: str) -> Iterator[Any]:
    """A transport for a worker service whose objects go through the conductor."""
    from podium.cloud.objects import CloudObject
    from podium.conductor import configure_worker
    from podium.config_cli import require_bus
    from podium.context import get_admin_context
    from podium.db import block_db_access
    from podium.rpc import get_transport
    from podium.service import setup_logging

    require_bus(config, click.get_current_context().command_path)
    setup_logging(config.log_level)
    block_db_access(binary)
    try:
        transport = get_transport(
            config.transport_url,
            allowed_remote_exmods=worker_exceptions(),
            # Signed as its service type: podium-compute is compute.<host>.
            signing=config.message_signing(binary.removeprefix("podium-")),
        )
    except PodiumError as error:
        raise click.ClickException(str(error)) from None
    with transport:
        try:
            # A wrong address is reported now, in one line; a broker lost later
            # is retried for as long as it takes.
            transport.connect(config.connect_timeout)
        except PodiumError as error:
            raise click.ClickException(str(error)) from None
        conductor = configure_worker(
            transport, base=CloudObject, topic=config.conductor_topic, timeout=config.rpc_timeout
        )
        assert conductor is not None  # a worker never runs its objects locally
        try:
            # Started before the conductor (a host boot, `... &` in a script), a
            # worker waits for it instead of failing its first object call.
            conductor.wait_until_ready(get_admin_context(), timeout=config.rpc_timeout)
        except PodiumError as error:
            raise click.ClickException(str(error)) from None
        try:
            yield transport
        finally:
            with contextlib.suppress(AttributeError):
                del CloudObject.indirection_api


def serve(service: Any, binary: str, host: str, ready_detail: str = "") -> None:
    """Start ``service``, say ready on stdout, run until SIGTERM/SIGINT, stop cleanly."""
    from podium.service import StopSignals, freeze_heap

    with StopSignals() as stop_signals:
        try:
            service.start()
        except (PodiumError, RuntimeError) as error:
            raise click.ClickException(str(error)) from None
        freeze_heap()
        # Its own line on stdout, flushed, so a supervisor can wait for readiness.
        click.echo(f"{binary} ready host={host}{' ' + ready_detail if ready_detail else ''}")
        signum = stop_signals.wait()
        LOG.info("%s on %s stopping on %s", binary, host, signal.Signals(signum).name)
        service.stop()
        service.wait()
    LOG.info("%s on %s stopped", binary, host)


@click.command()
@_service_options
def scheduler(transport_url: str | None, host: str | None) -> None:
    """Pick a compute host for each build and claim its resources there."""
    from podium.cloud.scheduler import SCHEDULER_BINARY, scheduler_service

    config = _config(transport_url=("--transport-url", transport_url), host=("--host", host))
    with _worker(config, SCHEDULER_BINARY) as transport:
        serve(scheduler_service(transport, config, config.host), SCHEDULER_BINARY, config.host)


@click.command()
@_service_options
@click.option(
    "--spawn-time", metavar="SECONDS", help="seconds a fake build takes [PODIUM_FAKE_SPAWN_TIME]"
)
@click.option(
    "--fail-builds/--no-fail-builds",
    default=None,
    help="make every build on this host fail [PODIUM_FAKE_FAIL_BUILDS]",
)
def compute(
    transport_url: str | None,
    host: str | None,
    spawn_time: str | None,
    fail_builds: bool | None,
) -> None:
    """Run instances on this host's (fake) hypervisor; no database credentials needed."""
    from podium.cloud.compute import COMPUTE_BINARY, compute_service

    config = _config(
        transport_url=("--transport-url", transport_url),
        host=("--host", host),
        fake_spawn_time=("--spawn-time", spawn_time),
        fake_fail_builds=("--fail-builds", fail_builds),
    )
    with _worker(config, COMPUTE_BINARY) as transport:
        serve(compute_service(transport, config, config.host), COMPUTE_BINARY, config.host)


@click.command()
@_service_options
@click.option("--listen", help="HOST:PORT to serve the REST API on [PODIUM_API_LISTEN]")
def api(transport_url: str | None, host: str | None, listen: str | None) -> None:
    """Serve the REST API; it holds no database credentials either."""
    from podium.cloud.api import api_service
    from podium.cloud.api.auth import TokenError, parse_tokens

    config = _config(
        transport_url=("--transport-url", transport_url),
        host=("--host", host),
        api_listen=("--listen", listen),
    )
    try:
        # A tokens file that cannot be read is said before any wait on the bus.
        parse_tokens(config.api_tokens)
    except TokenError as error:
        raise click.ClickException(str(error)) from None
    with _worker(config, "podium-api") as transport:
        try:
            service = api_service(transport, config, config.host)
        except (TokenError, ValueError, OSError) as error:
            raise click.ClickException(str(error)) from None
        serve(service, "podium-api", config.host, f"url={service.url}")


@click.command("all-in-one")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="where the database and the API tokens live [default: ~/.local/share/podium]",
)
@click.option("--fresh", is_flag=True, help="start from an empty database")
@click.option(
    "--computes",
    type=click.IntRange(1, 64),
    default=3,
    show_default=True,
    help="fake compute hosts to run",
)
@click.option("--listen", help="HOST:PORT of the REST API [PODIUM_API_LISTEN, 127.0.0.1:8774]")
def all_in_one(data_dir: Path | None, fresh: bool, computes: int, listen: str | None) -> None:
    """The whole cloud in one process (memory:// bus, SQLite): api, conductor, scheduler,
    and fake compute hosts."""
    from podium.cloud.allinone import AllInOne
    from podium.cloud.datadir import (
        default_data_dir,
        ensure_tokens,
        read_tokens,
        write_client_config,
    )
    from podium.service import setup_logging

    config = _config(api_listen=("--listen", listen))
    if not config.transport_url:
        # The one command that may run on a private bus: every service is in it.
        config = replace(config, transport_url="memory://")
    data_dir = data_dir or default_data_dir()
    database_file = data_dir / "podium.sqlite"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        if fresh:
            database_file.unlink(missing_ok=True)
        tokens_file = ensure_tokens(data_dir)
    except OSError as error:
        raise click.ClickException(
            f"data directory {data_dir}: {error.strerror or error}"
        ) from None
    if not config.api_tokens:
        config = replace(config, api_tokens=f"@{tokens_file}")
    setup_logging(config.log_level)
    cloud = AllInOne(
        config,
        f"sqlite:///{database_file}",
        computes=[f"compute-{n}" for n in range(1, computes + 1)],
    )
    try:
        cloud.start()
    except (PodiumError, RuntimeError, OSError) as error:
        raise click.ClickException(str(error)) from None
    assert cloud.api is not None
    tokens = read_tokens(tokens_file)
    client_file = write_client_config(data_dir, cloud.api.url, tokens.get("admin", ""))
    click.echo(f"API:      {cloud.api.url}")
    click.echo(f"database: {database_file}")
    for user, token in tokens.items():
        click.echo(f"token:    {user:6} {token}")
    click.echo(f"client:   {client_file}")
    if data_dir != default_data_dir():
        click.echo(f"          (export PODIUM_CONFIG={client_file} in the client's shell)")
    click.echo("try:      podium server create vm-1 --wait")
    from podium.service import StopSignals, freeze_heap

    with StopSignals() as stop_signals:
        freeze_heap()
        click.echo(f"podium all-in-one ready url={cloud.api.url}")
        stop_signals.wait()
        cloud.stop()
        cloud.wait()
