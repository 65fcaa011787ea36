"""``podium compute`` of release acacia, as its own process, for the upgrade tests.

    python -m tests.upgrade.release_n1.compute --transport-url URL --host HOST

Settings come as for any service (file, ``PODIUM_*``, flags). It prints
``podium-compute ready host=HOST release=acacia`` when it serves, and stops
on SIGTERM, as the real command does.

It never imports this release's cloud objects, RPC APIs or compute manager:
what it knows of them is what acacia knew (the modules beside this one). For
the test to see what reached it, it logs one line per request, before the
arguments are read: ``acacia received METHOD rpc=VERSION Instance=1.2 ...``
(the version of each object as it came over the wire), and one per object
it had the conductor backport: ``acacia backported Flavor 1.1 -> 1.0``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

import click
from tests.upgrade.release_n1.driver import FakeDriver
from tests.upgrade.release_n1.manager import COMPUTE_BINARY, ComputeManager
from tests.upgrade.release_n1.objects import CloudObject
from tests.upgrade.release_n1.rpcapi import COMPUTE_TOPIC
from tests.upgrade.release_n1.service import CloudService

from podium.cloud.config import CloudConfig
from podium.conductor import configure_worker
from podium.config_cli import command_flags, load_settings, require_bus
from podium.context import get_admin_context
from podium.db import block_db_access
from podium.exceptions import PodiumError
from podium.objects import IndirectionAPI
from podium.rpc import RPCDispatcher, get_transport
from podium.service import StopSignals, setup_logging

LOG = logging.getLogger("acacia")
RELEASE = "acacia"


def _object_versions(value: Any, found: list[str]) -> list[str]:
    """``Name=version`` of every object primitive in ``value``, outermost first."""
    keys = CloudObject._obj_keys
    if isinstance(value, dict):
        if keys[0] in value:
            found.append(f"{value[keys[0]]}={value.get(keys[2])}")
            _object_versions(value.get(keys[3]), found)
        else:
            for item in value.values():
                _object_versions(item, found)
    elif isinstance(value, list):
        for item in value:
            _object_versions(item, found)
    return found


class ObservingDispatcher(RPCDispatcher):
    def dispatch(self, message: dict[str, Any]) -> tuple[Any, Any]:
        objects = _object_versions(message.get("args"), [])
        LOG.info(
            "%s received %s rpc=%s %s",
            RELEASE,
            message.get("method"),
            message.get("version"),
            " ".join(objects),
        )
        return super().dispatch(message)


class ObservedBackports:
    """The worker's indirection API, logging each backport it asks the conductor for."""

    def __init__(self, api: IndirectionAPI) -> None:
        self._api = api

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)

    def object_backport_versions(
        self, context: Any, objinst: Mapping[str, Any], object_versions: Mapping[str, str]
    ) -> Any:
        keys = CloudObject._obj_keys
        name, version = objinst.get(keys[0]), objinst.get(keys[2])
        result = self._api.object_backport_versions(context, objinst, object_versions)
        got = result.VERSION if hasattr(result, "VERSION") else result.get(keys[2])
        LOG.info("%s backported %s %s -> %s", RELEASE, name, version, got)
        return result


@click.command()
@click.option("--transport-url", help="rabbit://user:pass@host:5672/vhost")
@click.option("--host", help="this service's host name")
def main(transport_url: str | None, host: str | None) -> None:
    config = load_settings(
        CloudConfig,
        command_flags(transport_url=("--transport-url", transport_url), host=("--host", host)),
    ).config
    require_bus(config, "acacia compute")
    setup_logging(config.log_level)
    block_db_access(COMPUTE_BINARY)
    transport = get_transport(
        config.transport_url,
        allowed_remote_exmods=["podium.exceptions", "podium.cloud.exceptions"],
    )
    with transport:
        transport.connect(config.connect_timeout)
        conductor = configure_worker(
            transport, base=CloudObject, topic=config.conductor_topic, timeout=config.rpc_timeout
        )
        assert conductor is not None
        conductor.wait_until_ready(get_admin_context(), timeout=config.rpc_timeout)
        CloudObject.indirection_api = ObservedBackports(conductor)  # type: ignore[assignment]
        manager = ComputeManager(transport, config, config.host, FakeDriver.from_config(config))
        service = CloudService(
            transport,
            binary=COMPUTE_BINARY,
            host=config.host,
            config=config,
            topic=COMPUTE_TOPIC,
            manager=manager,
        )
        server = service._server
        assert server is not None
        server.dispatcher = ObservingDispatcher([manager], server.dispatcher.serializer)
        with StopSignals() as stop_signals:
            try:
                service.start()
            except PodiumError as error:
                raise click.ClickException(str(error)) from None
            click.echo(f"{COMPUTE_BINARY} ready host={config.host} release={RELEASE}")
            sys.stdout.flush()
            stop_signals.wait()
            service.stop()
            service.wait()
        CloudObject.indirection_api = None


if __name__ == "__main__":
    main()
